"""A camera that renders its frames on its own thread at a nominal rate (sim and test cameras).

The control loop's ``latest()`` only reads the newest frame, so rendering (or any other per-frame
work) never runs on the control thread and the observe stage stays flat as cameras are added.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from reflex.cameras.pacing import FramePacer
from reflex.ports import Frame

log = logging.getLogger("reflex.cameras")
JOIN_TIMEOUT_S = 2.0


class PacedCamera:
    """``render()`` returns the next image; it is called ``fps`` times a second on a thread."""

    def __init__(self, name: str, fps: float, render: Callable[[], np.ndarray]) -> None:
        self.name = name
        self._render_image = render
        self._pacer = FramePacer(fps)
        self._frame: Frame | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None  # why the render thread ended early, if it did

    def start(self) -> None:
        self._render(time.monotonic())  # a frame exists as soon as start() returns
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def latest(self) -> Frame | None:
        return self._frame

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            self._thread = None
        self._frame = None

    def _run(self) -> None:
        try:
            while True:
                wait = self._pacer.next_due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
                if self._stop.is_set():
                    return
                self._render(time.monotonic())
        except Exception as exc:  # the loop's age check turns the silence into stale steps
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("camera '%s': render failed: %s", self.name, self.error)

    def _render(self, now: float) -> None:
        image = self._render_image()
        self._seq += 1
        self._frame = Frame(image=image, t_capture=now, seq=self._seq)
        self._pacer.rendered(now)
