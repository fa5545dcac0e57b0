"""Two-stage Ctrl-C / SIGTERM handling.

* during connect: abort at once (:class:`SessionAborted`), nothing has been powered;
* running, first signal: finish the current step and stop cleanly;
* running, second signal: :class:`ForcedExit` is raised wherever the loop is; the runner
  safe-stops, flushes what it can within a short bound and leaves.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from reflex.errors import SessionAborted


class ForcedExit(BaseException):
    """Second signal: leave now (BaseException so generic handlers do not swallow it)."""


class SignalGate:
    def __init__(self) -> None:
        self.phase = "connecting"
        self.count = 0
        self.last_signal: str | None = None
        self.stop_requested = threading.Event()
        self.leave_now = threading.Event()
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signals only reach the main thread; in-process callers stop via request_stop
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def request_stop(self) -> None:
        self.stop_requested.set()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.last_signal = signal.Signals(signum).name
        if self.phase == "connecting":
            raise SessionAborted(f"{self.last_signal} during connect: aborted before powering anything")
        if self.phase == "stopping":
            self.leave_now.set()  # shutdown is already under way: just cut the flush short
            return
        if self.count == 1:
            self.stop_requested.set()
            return
        raise ForcedExit(f"second {self.last_signal}: leaving now")
