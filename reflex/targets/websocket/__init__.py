"""``target.kind: websocket``: any openpi-protocol policy server, ``reflex serve`` included."""
