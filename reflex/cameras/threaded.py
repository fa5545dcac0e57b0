"""A camera that pulls frames from a FrameSource on its own thread and keeps the newest one.

Used by the ``v4l2`` and ``video`` kinds; ``latest()`` only reads an attribute, so it never
blocks the control loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from reflex.cameras.expect import check_size
from reflex.cameras.sources.base import FrameSource, SourceError, SourceInfo
from reflex.errors import SetupError
from reflex.ports import Frame

log = logging.getLogger("reflex.cameras")
JOIN_TIMEOUT_S = 2.0


class SourceCamera:
    def __init__(
        self,
        name: str,
        make_source: Callable[[threading.Event], FrameSource],
        expected: tuple[int | None, int | None],
    ) -> None:
        self.name = name
        self._make_source = make_source
        self._expected = expected
        self._stop = threading.Event()
        self._source: FrameSource | None = None
        self._thread: threading.Thread | None = None
        self._frame: Frame | None = None
        self.info: SourceInfo | None = None
        self.error: str | None = None  # why the reader thread ended early, if it did

    def start(self) -> None:
        source = self._make_source(self._stop)
        try:
            info = source.open()
        except SourceError as exc:
            raise SetupError(f"cameras.{self.name}", str(exc)) from exc
        try:
            check_size(self.name, info.description, self._expected, (info.width, info.height))
        except SetupError:
            source.close()
            raise
        self._source, self.info = source, info
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()

    def latest(self) -> Frame | None:
        return self._frame

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(JOIN_TIMEOUT_S)
            self._thread = None
        if self._source is not None:
            self._source.close()
            self._source = None

    def _run(self) -> None:
        assert self._source is not None
        seq = 0
        try:
            while not self._stop.is_set():
                item = self._source.read()
                if item is None:
                    break
                seq += 1
                self._frame = Frame(image=item[0], t_capture=item[1], seq=seq)
        except Exception as exc:  # the loop's age check turns the silence into stale steps
            self.error = f"{type(exc).__name__}: {exc}"
            log.error("camera '%s': source failed: %s", self.name, self.error)
        if not self._stop.is_set():
            what = self.info.description if self.info else "source"
            log.warning("camera '%s': %s ended; no new frames", self.name, what)
