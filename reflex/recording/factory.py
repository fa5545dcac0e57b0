"""Build recorder objects for the formats a session asked for."""

from __future__ import annotations

from pathlib import Path

from reflex.config.base import load_object
from reflex.ports import Recorder
from reflex.recording.formats import spec


def build_recorders(
    formats: list[str], directory: Path, images: bool, image_encoding: str = "lossy"
) -> list[Recorder]:
    """Each format's recorder, built by the one contract of ``reflex/recording/formats.py``."""
    return [load_object(spec(name).recorder)(directory, images=images, image_encoding=image_encoding)
            for name in formats]
