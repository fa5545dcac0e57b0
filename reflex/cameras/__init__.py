"""Camera sources: one module per ``cameras.<name>.kind``."""
