"""``target.kind: http``: POST observations to ``reflex serve``'s /act or another HTTP policy server."""
