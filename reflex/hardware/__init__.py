"""Robot connectors: one sub-package or module per ``hardware.kind``."""
