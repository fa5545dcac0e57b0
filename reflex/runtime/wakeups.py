"""Why a tick started late: was the loop's thread waiting for a CPU, or for something else?

A tick that starts more than ``late_s`` after its time is a *late wake-up*. Linux keeps, per
thread, the time it spent runnable but not running (``/proc/thread-self/schedstat``, second
field: waiting on a run queue for the scheduler to give it a CPU). The meter reads it once per
tick; the part of a late wake-up covered by the growth of that wait is the operating system's
doing (other processes, a busy or oversubscribed VM: isolate a core or use a real-time
scheduling class), the rest is ours or the timer's (sleep overshoot, waiting for the
interpreter lock held by another of our threads). The result reports both under
``loop.lateWakeups``; where the file does not exist (not Linux) only the count is reported.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

SCHEDSTAT = "/proc/thread-self/schedstat"


class RunqueueClock:
    """The calling thread's time spent runnable but not running, in seconds (None: unknown).
    The file is opened by the first call, so that call must come from the thread measured."""

    def __init__(self, path: str = SCHEDSTAT) -> None:
        self._path = path
        self._fd: int | None = None
        self._failed = False

    def __call__(self) -> float | None:
        if self._failed:
            return None
        try:
            if self._fd is None:
                self._fd = os.open(self._path, os.O_RDONLY)
            fields = os.pread(self._fd, 128, 0).split()
            return int(fields[1]) / 1e9
        except (OSError, IndexError, ValueError):
            self._failed = True
            return None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class WakeMeter:
    """Late wake-ups of the loop and how much of their lateness the OS scheduler explains."""

    def __init__(self, late_s: float, runqueue: Callable[[], float | None] | None = None) -> None:
        self.late_s = late_s
        self.count = 0
        self.late_total_s = 0.0
        self.runnable_s = 0.0  # of that, the thread was runnable, waiting for a CPU
        self.max_late_s = 0.0
        self._runqueue = runqueue if runqueue is not None else RunqueueClock()
        self._last: float | None = None
        self._measured = False

    def woke(self, late_s: float) -> None:
        """The tick started ``late_s`` after its time (call on the loop's thread, once a tick)."""
        now = self._runqueue()
        last, self._last = self._last, now
        if late_s <= self.late_s:
            return
        self.count += 1
        self.late_total_s += late_s
        self.max_late_s = max(self.max_late_s, late_s)
        if now is not None and last is not None:
            self._measured = True
            self.runnable_s += min(late_s, max(0.0, now - last))

    def close(self) -> None:
        close = getattr(self._runqueue, "close", None)
        if callable(close):
            close()

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "count": self.count,
            "thresholdMs": round(self.late_s * 1e3, 3),
            "maxMs": round(self.max_late_s * 1e3, 3),
            "totalMs": round(self.late_total_s * 1e3, 3),
        }
        if self._measured or (self.count == 0 and self._last is not None):
            out["runnableMs"] = round(self.runnable_s * 1e3, 3)  # the OS did not run the thread
            out["otherMs"] = round((self.late_total_s - self.runnable_s) * 1e3, 3)  # timer, GIL
        return out
