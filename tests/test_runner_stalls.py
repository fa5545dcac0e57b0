"""A gap in the commands while motors are live is a fact in the result, and one beyond
``safety.max_command_gap_ms`` ends the session ok: false (reflex/runtime/stalls.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import base_session, write_session

from reflex.hardware.sim.config import SimConfig
from reflex.hardware.sim.robot import SimRobot
from reflex.runtime import stalls
from reflex.runtime.session import run_session_file
from reflex.runtime.stalls import StallMeter, cpu_wait_s, is_simulated


def session(tmp_path: Path, mode: str, **faults: Any) -> dict[str, Any]:
    data = base_session(mode=mode, max_steps=30)
    data["hardware"] = {"kind": "sim", "config": {"faults": faults}}
    data["record"] = {"enabled": False}
    return data


def test_a_300_ms_stall_ends_the_session_not_ok_with_the_gap_in_the_result(tmp_path: Path) -> None:
    data = session(tmp_path, "apply_actions", stall_at_step=10, stall_s=0.3)
    out = run_session_file(write_session(tmp_path, data)).to_json()
    assert out["ok"] is False and out["exitCode"] == 1 and out["safeStops"] == 1
    assert out["stopReason"] == "incident:stall"
    stalls = out["loop"]["stalls"]
    assert stalls["count"] >= 1 and stalls["maxGapMs"] >= 300 and stalls["boundMs"] == 150
    assert any("no command to the robot for" in e and "safety.max_command_gap_ms = 150" in e for e in out["errors"])


def test_without_a_stall_the_gaps_are_still_measured(tmp_path: Path) -> None:
    data = session(tmp_path, "apply_actions")
    data["safety"] = {"max_command_gap_ms": 1000}  # this test is about the measurement, not the bound
    out = run_session_file(write_session(tmp_path, data)).to_json()
    assert out["ok"] is True and 0 < out["loop"]["stalls"]["maxGapMs"] < 1000
    assert out["loop"]["stalls"]["boundMs"] == 1000
    data["safety"] = {}
    data["max_steps"] = 3
    out = run_session_file(write_session(tmp_path, data, "default.yaml")).to_json()
    assert out["loop"]["stalls"]["boundMs"] == 150  # the default bound
    dry = run_session_file(write_session(tmp_path, session(tmp_path, "dry_run"), "dry.yaml")).to_json()
    assert "stalls" not in dry["loop"]  # nothing is live in dry_run


def test_host_cpu_wait_counts_on_a_real_robot_and_is_excused_only_on_simulated_hardware(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def meter(simulated: bool) -> StallMeter:
        waits = iter([0.0, 0.25])  # the kernel's run-queue delay: 250 ms of the next 300 ms gap
        monkeypatch.setattr(stalls, "cpu_wait_s", lambda: next(waits))
        m = StallMeter(0.01, 0.15, excuse_host_wait=simulated)
        assert m.note(1.0) is None
        return m

    real = meter(False)
    assert real.note(1.3) == pytest.approx(0.3)  # live motors went 300 ms without a command
    assert real.summary()["hostWaitMs"] == pytest.approx(250)
    sim = meter(True)
    assert sim.note(1.3) is None  # 50 ms of the simulated robot's own time
    assert sim.summary()["hostWaitMs"] == pytest.approx(250) and sim.summary()["maxGapMs"] == pytest.approx(300)


def test_only_simulated_hardware_declares_itself_simulated() -> None:
    assert is_simulated(SimRobot(SimConfig())) is True
    assert is_simulated(object()) is False  # a robot that says nothing is real


@pytest.mark.skipif(not Path("/proc/thread-self/schedstat").exists(), reason="the kernel reports no run-queue delay")
def test_time_waiting_for_a_cpu_is_the_hosts_not_the_runners() -> None:
    """A runner thread sharing its one CPU with a busy process waits in the run queue for part
    of a gap: that part is reported as the host's; on simulated hardware only the rest is the
    runner's own, on a real robot the whole gap counts."""
    cpu = min(os.sched_getaffinity(0))
    busy = f"import os\nos.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    burner = subprocess.Popen([sys.executable, "-c", busy])
    allowed = os.sched_getaffinity(0)
    meter = StallMeter(period_s=0.01, bound_s=0.01, excuse_host_wait=True)
    real = StallMeter(period_s=0.01, bound_s=0.01)
    try:
        os.sched_setaffinity(0, {cpu})  # this thread only (pid 0: the calling thread)
        while burner.poll() is None and cpu_wait_s() == 0.0:
            pass  # the burner is up and competing once this thread has waited at least once
        t0 = time.monotonic()
        meter.note(t0)
        real.note(t0)
        cpu_before = time.thread_time()
        x = 0
        for i in range(3_000_000):  # busy work: a slow "tick" on a shared CPU
            x += i
        cpu_used = time.thread_time() - cpu_before
        t1 = time.monotonic()
        own = meter.note(t1)
        whole = real.note(t1)
    finally:
        os.sched_setaffinity(0, allowed)
        burner.kill()
        burner.wait()
    gap = meter.max_gap_s
    assert own is not None and 0 < meter.host_wait_s < gap
    assert own == pytest.approx(gap - meter.host_wait_s)
    assert own >= cpu_used * 0.9  # the runner's own part still holds all the work it did
    assert meter.summary()["hostWaitMs"] == round(meter.host_wait_s * 1e3, 3)
    assert whole == pytest.approx(gap) and real.host_wait_s > 0  # a real robot: measured, not excused
