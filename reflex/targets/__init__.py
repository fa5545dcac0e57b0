"""Inference targets: one module per ``target.kind``."""
