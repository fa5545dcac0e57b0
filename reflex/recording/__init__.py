"""Recorders: one module per format, all fed off the control thread."""
