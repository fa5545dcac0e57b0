"""Offline replay of recorded sessions through a policy: ``reflex replay`` and ``hardware.kind: replay``."""
