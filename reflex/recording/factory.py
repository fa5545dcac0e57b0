"""Build recorder objects for the formats a session asked for."""

from __future__ import annotations

import inspect
from pathlib import Path

from reflex.config.base import load_object
from reflex.ports import Recorder
from reflex.recording.formats import FORMATS


def build_recorders(
    formats: list[str], directory: Path, images: bool, image_encoding: str = "lossy"
) -> list[Recorder]:
    """``image_encoding`` goes to the recorders that take it (all four built-in formats)."""
    recorders = []
    for name in formats:
        cls = load_object(FORMATS[name])
        kwargs: dict[str, object] = {"images": images}
        if "image_encoding" in inspect.signature(cls).parameters:
            kwargs["image_encoding"] = image_encoding
        recorders.append(cls(directory, **kwargs))
    return recorders
