"""Gaps in the commands a robot gets while its motors are live, measured where every kind of
hardware shares them: between the control ticks (each tick applies an action or holds), so a
runner freeze, a slow ``apply`` (a subprocess robot's included) or a GIL-hogging policy call all
show up, named, in the result (``loop.stalls``). A gap beyond ``safety.max_command_gap_ms`` is
an incident: the session ends ``ok: false``. Unset, the bound is ``DEFAULT_COMMAND_GAP_S``, or
what the robot declares as ``command_gap_bound_s`` (None: measured only; a connector that runs a
process per call does, since every one of its steps takes that long).

Time the runner's thread was ready to run but the host gave it no CPU (other processes had every
core) is reported as ``hostWaitMs``. On a real robot it counts like any other gap: live motors
went without commands whatever the reason. Only on simulated hardware (which declares
``simulated = True``: its world does not move while its process is not run) is it left out of
the bound, so a loaded test machine is not a stalled robot; a runner that is itself frozen,
sleeping or waiting for the interpreter is still stopped on time there too."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

_SCHEDSTAT = Path("/proc/thread-self/schedstat")

DEFAULT_COMMAND_GAP_S = 0.15  # well under a Damiao motor's 400 ms watchdog


def command_gap_bound(configured_ms: float | None, hardware: object) -> float | None:
    """The bound in force: the session's, else the robot's own, else the default."""
    if configured_ms is not None:
        return configured_ms / 1e3
    declared = getattr(hardware, "command_gap_bound_s", DEFAULT_COMMAND_GAP_S)
    return None if declared is None else float(declared)


def is_simulated(hardware: object) -> bool:
    """Whether ``hardware`` declares itself simulated (a real robot never does)."""
    return getattr(hardware, "simulated", False) is True


def cpu_wait_s() -> float:
    """Time the calling thread has spent runnable but waiting for a CPU (Linux schedstat: its
    run-queue delay); 0.0 where the kernel does not say, so every gap then counts in full."""
    try:
        return int(_SCHEDSTAT.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


@dataclass
class StallMeter:
    period_s: float  # the control period: a gap longer than two of them counts as a stall
    bound_s: float | None  # a gap longer than this is an incident (None: measured only)
    excuse_host_wait: bool = False  # simulated hardware only: the host's CPU wait is not a gap
    count: int = 0
    max_gap_s: float = 0.0
    host_wait_s: float = 0.0  # of the gaps: the runner's thread ready, but given no CPU
    _last: float | None = None
    _waited: float = 0.0

    def note(self, t: float) -> float | None:
        """A command (or hold) went out at ``t``; returns the gap before it if beyond the bound
        (on simulated hardware, the gap less the host's CPU wait)."""
        waited, self._waited = self._waited, cpu_wait_s()
        last, self._last = self._last, t
        if last is None:
            return None
        gap = t - last
        host = min(max(self._waited - waited, 0.0), gap)
        self.host_wait_s += host
        self.max_gap_s = max(self.max_gap_s, gap)
        if gap > 2 * self.period_s:
            self.count += 1
        own = gap - host if self.excuse_host_wait else gap
        return own if self.bound_s is not None and own > self.bound_s else None

    def restart(self) -> None:
        """The robot's own connector had charge meanwhile (an episode reset): the next command's
        gap is measured from the next one on."""
        self._last = None

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "maxGapMs": round(self.max_gap_s * 1e3, 3),
            "hostWaitMs": round(self.host_wait_s * 1e3, 3),
            "boundMs": None if self.bound_s is None else round(self.bound_s * 1e3, 3),
        }
