"""``hardware.kind: replay``: a recorded session played back as a robot (read-only)."""
