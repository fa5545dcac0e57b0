"""Late wake-ups of the control loop are counted, and the part the OS scheduler explains (the
thread runnable but not running) is told apart from the rest (timer, interpreter lock)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from conftest import base_session, write_session

from reflex.runtime.wakeups import SCHEDSTAT, RunqueueClock, WakeMeter


class Readings:
    """Run-queue wait readings, as the kernel would give them, one per tick."""

    def __init__(self, values: list[float | None]) -> None:
        self.values = list(values)

    def __call__(self) -> float | None:
        return self.values.pop(0)


def test_late_wake_ups_are_split_into_run_queue_wait_and_the_rest() -> None:
    # ticks: on time; 3 ms late with 2.5 ms more run-queue wait; 0.5 ms late (under the 1 ms
    # threshold, not counted); 4 ms late with no run-queue wait (the GIL or the timer)
    meter = WakeMeter(0.001, Readings([10.0, 10.0025, 10.0025, 10.0025]))
    for late in (0.0, 0.003, 0.0005, 0.004):
        meter.woke(late)
    out = meter.summary()
    assert out["count"] == 2 and out["thresholdMs"] == 1.0 and out["maxMs"] == 4.0
    assert out["totalMs"] == pytest.approx(7.0)
    assert out["runnableMs"] == pytest.approx(2.5) and out["otherMs"] == pytest.approx(4.5)


def test_run_queue_wait_never_counts_for_more_than_the_lateness() -> None:
    meter = WakeMeter(0.001, Readings([1.0, 1.5]))  # 500 ms runnable (a preempted tick), 2 ms late
    meter.woke(0.0)
    meter.woke(0.002)
    assert meter.summary()["runnableMs"] == pytest.approx(2.0) and meter.summary()["otherMs"] == 0.0


def test_without_the_kernel_figures_only_the_count_is_reported(tmp_path: Path) -> None:
    clock = RunqueueClock(str(tmp_path / "missing"))
    assert clock() is None and clock() is None
    meter = WakeMeter(0.001, clock)
    meter.woke(0.005)
    out = meter.summary()
    assert out["count"] == 1 and "runnableMs" not in out and "otherMs" not in out


@pytest.mark.skipif(not os.path.exists(SCHEDSTAT), reason="Linux schedstat only")
def test_the_run_queue_clock_reads_the_calling_thread() -> None:
    clock = RunqueueClock()
    first = clock()
    assert first is not None and first >= 0.0
    second = clock()
    assert second is not None and second >= first  # a cumulative counter
    other: list[float | None] = []
    thread_clock = RunqueueClock()
    worker = threading.Thread(target=lambda: other.append(thread_clock()))
    worker.start()
    worker.join(30.0)
    assert other and other[0] is not None
    clock.close()
    thread_clock.close()
    assert clock() is not None  # reopens after close (an episodes session runs the loop again)
    clock.close()


def test_a_session_reports_late_wake_ups(tmp_path: Path) -> None:
    from reflex.runtime.session import run_session_file

    result = run_session_file(write_session(tmp_path, base_session(max_steps=30, control_rate_hz=100)))
    assert result.ok, result.errors
    wakeups = result.to_json()["loop"]["lateWakeups"]
    assert wakeups["thresholdMs"] == 10.0 and wakeups["count"] >= 0
    assert wakeups["totalMs"] >= wakeups["count"] * 10.0
    if os.path.exists(SCHEDSTAT):
        assert wakeups["runnableMs"] + wakeups["otherMs"] == pytest.approx(wakeups["totalMs"], abs=0.01)
