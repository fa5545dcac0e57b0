"""Reflex: run a trained vision-language-action policy on a real robot, safely, and record it."""

__version__ = "0.1.0"
