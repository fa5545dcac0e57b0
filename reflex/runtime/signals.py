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
_early_pending: list[int] = []  # signals that arrived while the ``reflex`` process was starting
_early_active = False


def hold_until_exit() -> None:
    global _hold_until_exit
    _hold_until_exit = True


def catch_early_signals() -> None:
    """First line of the ``reflex`` process: a signal that arrives while Python imports the CLI is
    held (not a KeyboardInterrupt traceback) until the command takes the signals over — ``connect``
    then aborts cleanly with exit 130 and its JSON — or gives them back (other commands)."""
    global _early_active
    if threading.current_thread() is not threading.main_thread():
        return
    hold_until_exit()
    _early_active = True
    for sig in SIGNALS:
        signal.signal(sig, _hold_early)


def _hold_early(signum: int, _frame: FrameType | None) -> None:
    _early_pending.append(signum)


def _take_early() -> list[int]:
    global _early_active
    if not _early_active:
        return []
    _early_active = False
    pending = list(_early_pending)
    _early_pending.clear()
    return pending


def release_early_signals() -> None:
    """A command that does not take the signals over: Python's defaults back, and a signal held
    during start-up acts now as the default would have (Ctrl-C -> KeyboardInterrupt)."""
    if not _early_active:
        return
    pending = _take_early()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for sig in SIGNALS[1:]:
        signal.signal(sig, signal.SIG_DFL)
    for signum in pending[:1]:
        signal.raise_signal(signum)


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
        self._pending: list[int] = []

    def install(self) -> bool:
        """Take over the signals (main thread only); False when already installed or impossible."""
        if self._previous or threading.current_thread() is not threading.main_thread():
            return False  # signals only reach the main thread; in-process callers stop via request_stop
        early = _early_active
        for sig in SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
            if early:
                self._previous[sig] = signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL
        self._pending = _take_early()
        return True

    def act_on_early_signals(self) -> None:
        """A signal held while the process started counts as arriving now (during connect: abort)."""
        pending, self._pending = self._pending, []
        for signum in pending:
            self._handle(signum, None)

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
