"""Real-time scheduling for the control-loop thread (``loop.realtime``), the way robot control
loops are usually run: the loop thread alone in SCHED_FIFO, optionally pinned to one CPU.

Why: at 500 Hz-1 kHz the remaining late ticks are the OS scheduler's (the thread runnable but not
given a CPU, ``loop.lateWakeups.runnableMs``). A SCHED_FIFO thread runs before every normal thread
the moment it wakes.

Only the loop's thread: on Linux ``sched_setscheduler(0, ...)`` and ``sched_setaffinity(0, ...)``
act on the calling thread, and the policy is set with ``SCHED_RESET_ON_FORK`` so threads and
processes the loop thread starts (a recorder opening lazily, a connector subprocess) begin in the
normal class. The thread gets its old policy and CPU set back when the loop ends.

Safety: a SCHED_FIFO thread runs until it blocks, so one that never sleeps would keep every normal
thread off its CPU (the kernel's RT throttling, ``kernel.sched_rt_runtime_us``, leaves them only
5 %). The loop sleeps until every tick; a tick that starts late, where it would not sleep at all,
still gives up the CPU for :data:`YIELD_S` (see ``ControlLoop._ticks``).

Refusal (no CAP_SYS_NICE and no rtprio limit, a CPU the process may not use, not Linux) is
detected at set-up by trying it once on the calling thread and putting the thread back:
``required: false`` warns once and runs normally, ``required: true`` fails the set-up (exit 3)
before the target connects or anything is powered.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reflex.config.loop import RealtimeConfig
from reflex.errors import SetupError

YIELD_S = 0.0001  # a late tick still sleeps this long, so a real-time loop never spins
POLICY_NAMES = {getattr(os, name): name for name in ("SCHED_OTHER", "SCHED_FIFO", "SCHED_RR", "SCHED_BATCH",
                                                     "SCHED_IDLE") if hasattr(os, name)}


def thread_policy(tid: int = 0) -> int:
    """The scheduling policy of a thread (0: the calling one), without the reset-on-fork flag."""
    return os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)


def policy_name(policy: int) -> str:
    return POLICY_NAMES.get(policy, str(policy))


def warn_stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class _Saved:
    policy: int
    priority: int
    cpus: set[int] | None  # None: the CPU set was not changed


class RealtimeThread:
    """``loop.realtime`` for one session: checked at set-up, entered and left by the loop's thread."""

    def __init__(self, config: RealtimeConfig | None, warn: Callable[[str], None] = warn_stderr) -> None:
        self.config = config
        self.granted = False
        self.reason: str | None = None if config is not None else "not requested"
        self.late_yields = 0  # ticks that started late and gave up the CPU for YIELD_S anyway
        self._warn = warn
        self._saved: _Saved | None = None
        self._checked = False

    @property
    def requested(self) -> bool:
        return self.config is not None

    @property
    def active(self) -> bool:
        """The calling loop thread is running real-time now."""
        return self._saved is not None

    # -- set-up ---------------------------------------------------------------------------
    def check(self) -> None:
        """Try what is asked on the calling thread and put the thread back at once. Refused:
        :class:`SetupError` with ``required: true``, else one warning and a normal loop."""
        config = self.config
        if config is None or self._checked:
            return
        self._checked = True
        problem = self._attempt(keep=False)
        if problem is None:
            self.granted = True
            self.reason = None
            return
        self.reason = problem
        if config.required:
            raise SetupError("loop.realtime", f"{problem}; loop.realtime.required is true, so the session "
                             "stops here: nothing was connected or powered")
        self._warn(f"loop.realtime: {problem}; running the control loop in the normal scheduling class "
                   "(set loop.realtime.required: true to refuse to run instead)")

    # -- the loop's thread ----------------------------------------------------------------
    def enter(self) -> str | None:
        """Make the calling thread (the loop's) real-time, as checked at set-up. Returns a problem
        only when the OS refuses now although it agreed at set-up and ``required`` is true."""
        if not self.granted or self._saved is not None:
            return None
        problem = self._attempt(keep=True)
        if problem is None:
            return None
        self.granted = False
        self.reason = f"refused when the loop started: {problem}"
        assert self.config is not None
        if self.config.required:
            return f"loop.realtime: {self.reason}"
        self._warn(f"loop.realtime: {self.reason}; running the control loop in the normal scheduling class")
        return None

    def leave(self) -> None:
        """Give the calling thread its old policy and CPU set back."""
        saved, self._saved = self._saved, None
        if saved is not None:
            _restore(saved)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requested": self.requested, "granted": self.granted, "reason": self.reason}
        if self.config is not None:
            out.update(policy="SCHED_FIFO" if self.granted else None, priority=self.config.priority,
                       cpu=self.config.cpu, required=self.config.required, lateYields=self.late_yields)
        return out

    # -- helpers --------------------------------------------------------------------------
    def _attempt(self, keep: bool) -> str | None:
        """Apply the configuration to the calling thread; None when it holds. ``keep``: stay so
        (saving what to restore), else restore at once either way."""
        assert self.config is not None
        priority, cpu = self.config.priority, self.config.cpu
        if not sys.platform.startswith("linux") or not hasattr(os, "sched_setscheduler"):
            return f"real-time scheduling is only supported on Linux (this is {sys.platform})"
        saved = _Saved(thread_policy(), os.sched_getparam(0).sched_priority,
                       None if cpu is None else os.sched_getaffinity(0))
        if saved.cpus is not None and cpu not in saved.cpus:
            return f"CPU {cpu} is not one this process may use (allowed: {sorted(saved.cpus)})"
        try:
            try:
                os.sched_setscheduler(0, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
            except OSError as exc:
                return _refusal(exc, priority)
            if cpu is not None:
                try:
                    os.sched_setaffinity(0, {cpu})
                except OSError as exc:
                    _restore(_Saved(saved.policy, saved.priority, None))
                    return f"pinning to CPU {cpu} was refused: {exc.strerror or exc}"
        except BaseException:
            _restore(saved)
            raise
        if keep:
            self._saved = saved
        else:
            _restore(saved)
        return None


def _restore(saved: _Saved) -> None:
    os.sched_setscheduler(0, saved.policy, os.sched_param(saved.priority))
    if saved.cpus is not None:
        os.sched_setaffinity(0, saved.cpus)


def _refusal(exc: OSError, priority: int) -> str:
    if exc.errno == errno.EPERM:
        import resource  # Unix only, like the rest of this path

        soft, _ = resource.getrlimit(resource.RLIMIT_RTPRIO)
        return (f"the OS refused SCHED_FIFO priority {priority} (EPERM): the process needs CAP_SYS_NICE "
                f"(root, or `setcap cap_sys_nice+ep` on the interpreter) or an rtprio limit of at least "
                f"{priority} (limits.conf; this process has {soft}); in a container, also the cgroup's "
                "real-time budget")
    return f"the OS refused SCHED_FIFO priority {priority}: {exc.strerror or exc}"
