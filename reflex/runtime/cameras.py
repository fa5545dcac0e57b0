"""The cameras of one session, each with exactly one owner.

* Cameras of the session's ``cameras:`` block are built, started and stopped here.
* Cameras a robot brings (:class:`~reflex.ports.CameraProvider`) belong to the robot: it starts
  them in ``connect`` and stops them in ``close``; the session only reads them.

The loop sees one name -> camera map with each camera's staleness bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from reflex.errors import SetupError
from reflex.ports import Camera, CameraHealth, CameraProvider, Frame, Hardware

DEFAULT_MAX_AGE_S = 0.2  # cameras a robot provides have no config block of their own


@dataclass
class _Entry:
    camera: Camera
    owned: bool  # started and stopped by this set (else by the robot that provides it)
    max_age_s: float
    size: tuple[int | None, int | None] = (None, None)  # expected (width, height), if configured


class SessionCameras:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def add_provided(self, hardware: Hardware) -> None:
        """The robot's own cameras (if it provides any); the robot keeps their lifecycle."""
        if isinstance(hardware, CameraProvider):
            for name, camera in hardware.cameras().items():
                self._entries[name] = _Entry(camera, owned=False, max_age_s=DEFAULT_MAX_AGE_S)

    def add_started(self, name: str, camera: Camera, max_age_s: float, width: int | None = None,
                    height: int | None = None) -> None:
        """A configured camera this set now owns (already started; stopped by :meth:`stop`)."""
        self._entries[name] = _Entry(camera, owned=True, max_age_s=max_age_s, size=(width, height))

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)

    def items(self) -> Iterator[tuple[str, Camera]]:
        return ((name, e.camera) for name, e in self._entries.items())

    def max_ages_s(self) -> dict[str, float]:
        return {name: e.max_age_s for name, e in self._entries.items()}

    def check_sizes(self, frames: dict[str, Frame]) -> None:
        """Frames of a configured size must have it (checked on the first observation)."""
        for name, entry in self._entries.items():
            frame = frames.get(name)
            width, height = entry.size
            if frame is None or (width is None and height is None):
                continue
            h, w = frame.image.shape[:2]
            if (width is not None and w != width) or (height is not None and h != height):
                raise SetupError(f"cameras.{name}", f"frames are {w}x{h}, config expects {width}x{height}")

    def health(self) -> dict[str, Any]:
        """What each camera that can describe its source says about it (errors included)."""
        out: dict[str, Any] = {}
        for name, entry in self._entries.items():
            if isinstance(entry.camera, CameraHealth):
                try:
                    out[name] = entry.camera.health()
                except Exception as exc:
                    out[name] = {"error": str(exc)}
        return out

    def stop(self) -> list[str]:
        """Stop the cameras this set owns; returns the problems (never raises)."""
        errors = []
        for name, entry in self._entries.items():
            if not entry.owned:
                continue
            try:
                entry.camera.stop()
            except Exception as exc:
                errors.append(f"cameras.{name}: stop: {exc}")
        return errors
