"""Build recorder objects for the formats a session asked for."""

from __future__ import annotations

from pathlib import Path

from reflex.config.base import load_object
from reflex.ports import Recorder
from reflex.recording.formats import FORMATS


def build_recorders(formats: list[str], directory: Path, images: bool) -> list[Recorder]:
    recorders = []
    for name in formats:
        cls = load_object(FORMATS[name])
        recorders.append(cls(directory, images=images))
    return recorders
