"""The built-in camera kinds. A new kind adds its spec class here."""

from __future__ import annotations

from reflex.cameras.base import CameraSpec
from reflex.cameras.sim import SimCameraSpec

BUILTIN_CAMERAS: list[type[CameraSpec]] = [SimCameraSpec]
