"""The built-in camera kinds. A new kind adds its spec class here."""

from __future__ import annotations

from reflex.cameras.base import CameraSpec
from reflex.cameras.shm import ShmCameraSpec
from reflex.cameras.sim import SimCameraSpec
from reflex.cameras.v4l2 import V4L2CameraSpec
from reflex.cameras.video import VideoCameraSpec

BUILTIN_CAMERAS: list[type[CameraSpec]] = [SimCameraSpec, ShmCameraSpec, V4L2CameraSpec, VideoCameraSpec]
