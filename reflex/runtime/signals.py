"""One path for SIGINT (Ctrl-C), SIGTERM and SIGHUP (a closed terminal, a dropped SSH session).

* during connect: abort at once (:class:`SessionAborted`), nothing has been powered;
* running, first signal: finish the current step and stop cleanly;
* running, second signal: :class:`ForcedExit` is raised wherever the loop is; the runner
  safe-stops, flushes what it can within a short bound and leaves;
* stopping (the loop has ended, shutdown is under way), a second signal: the session is forced
  too (``forced``): a safe stop if the hardware is still open, the flush is cut short;
* done (the result is decided): signals are only counted. The handlers stay installed until the
  process exits, so the exit status is always the ``exitCode`` the result printed, whatever the
  gap between two Ctrl-Cs.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from reflex.errors import SessionAborted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# Set by the ``reflex`` entry point: a command's signals then stay handled until the process exits
# (restoring Python's default first would let a late Ctrl-C turn a printed exit code 0 into
# status 130). In-process callers (tests, notebooks) get their handlers back.
_hold_until_exit = False


def hold_until_exit() -> None:
    global _hold_until_exit
    _hold_until_exit = True


class ForcedExit(BaseException):
    """Second signal: leave now (BaseException so generic handlers do not swallow it)."""


class SignalGate:
    def __init__(self) -> None:
        self.phase = "connecting"  # connecting -> running -> stopping -> done
        self.count = 0
        self.last_signal: str | None = None
        self.stop_requested = threading.Event()
        self.leave_now = threading.Event()
        self.forced = False  # a second signal arrived before the result was decided
        self._previous: dict[int, Any] = {}

    def install(self) -> bool:
        """Take over the signals (main thread only); False when already installed or impossible."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return False  # signals only reach the main thread; in-process callers stop via request_stop
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return True

    def release(self) -> None:
        """Give the signals back; in the ``reflex`` process itself, ignore them instead until it
        exits (the interpreter's shutdown would reinstate the default handler, and a late Ctrl-C
        would then kill the process with a status other than the printed one)."""
        if not _hold_until_exit:
            self.restore()
            return
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def request_stop(self) -> None:
        self.stop_requested.set()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.count += 1
        self.last_signal = signal.Signals(signum).name
        if self.phase == "done":
            return
        if self.phase == "connecting":
            self.phase = "stopping"  # the abort is under way: a further signal must not interrupt it
            raise SessionAborted(f"{self.last_signal} during connect: aborted before powering anything")
        if self.count == 1:
            self.stop_requested.set()
            return
        self.forced = True
        self.leave_now.set()
        if self.phase == "running":
            self.phase = "stopping"  # raise once; later signals only cut the shutdown short
            raise ForcedExit(f"second {self.last_signal}: leaving now")
