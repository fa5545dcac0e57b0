"""Scenario suite, signals: SIGHUP, SIGTERM and SIGINT against a real ``reflex connect`` child.

Every scenario asserts that the process status equals the ``exitCode`` it printed, what the
robot (a journalling sim, or a real persistent connector process) was told, and that the
recording was finalised and reads back line by line up to the end.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO, base_session, subprocess_env, write_session
from reflex_test_plugins import read_journal
from test_subprocess_session import session_file

# These tests run beside others on a loaded machine: a loop frozen by the scheduler must not end
# the session as a stall before the signal under test arrives.
LOADED_GAP_MS = 1000


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=subprocess_env(), cwd=REPO,
    )


def wait_for(predicate: Any, proc: subprocess.Popen[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"reflex exited early: {proc.communicate()}"
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def finish(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=90)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, f"expected one JSON result; stdout={out!r} stderr={err[-3000:]!r}"
    result: dict[str, Any] = json.loads(lines[0])
    assert proc.returncode == result["exitCode"], (proc.returncode, result, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    return result


def assert_recording_finalised(rec: Path, result: dict[str, Any]) -> None:
    manifest = json.loads((rec / "recording.json").read_text())
    assert manifest["status"] in ("complete", "degraded"), manifest["status"]
    lines = [json.loads(x) for x in (rec / "jsonl" / "steps.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "end"
    steps = [x for x in lines if x["type"] == "step"]
    assert len(steps) == result["recording"]["writtenSteps"]["jsonl"]


def press_again_if_coalesced(
    proc: subprocess.Popen[str], seen: Any, sig: signal.Signals = signal.SIGINT
) -> None:
    """Two signals that arrive before the interpreter runs its handler merge into one (POSIX does
    not queue them). A user then presses again: so does the test, until the second is seen."""
    for _ in range(20):
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            if seen() or proc.poll() is not None:
                return
            time.sleep(0.01)
        proc.send_signal(sig)


def journal_session(tmp_path: Path, **overrides: Any) -> tuple[Path, Path]:
    journal = tmp_path / "journal.jsonl"
    hardware = {"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal), "home_s": 2.0}}
    session = base_session(mode="apply_actions", max_steps=0, hardware=hardware, record={"formats": ["jsonl"]},
                           safety={"home_on_stop": True, "max_command_gap_ms": LOADED_GAP_MS}, **overrides)
    return write_session(tmp_path, session), journal


def calls(journal: Path) -> list[str]:
    return [str(e["call"]) for e in read_journal(journal)]


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_one_signal_stops_cleanly_and_finalises(tmp_path: Path, sig: signal.Signals) -> None:
    config, journal = journal_session(tmp_path)
    rec = tmp_path / "rec"
    proc = start(config, "--record", str(rec))
    wait_for(lambda: calls(journal).count("apply") >= 10, proc)
    proc.send_signal(sig)
    result = finish(proc)
    assert result["exitCode"] == 0 and result["ok"] is True
    assert result["stopReason"] == f"signal:{sig.name}" and result["safeStops"] == 0
    done = calls(journal)
    assert done[-3:] == ["home_start", "home_end", "close"] and "safe_stop" not in done
    assert_recording_finalised(rec, result)


@pytest.mark.parametrize("gap_ms", [5, 100, 300])
def test_double_ctrl_c_status_equals_printed_exit_code(tmp_path: Path, gap_ms: int) -> None:
    """Two Ctrl-Cs, any gap: exit 130 printed and returned, one safe stop while the motors were
    live (the drive home takes 2 s, so the second always lands before the hardware closes)."""
    config, journal = journal_session(tmp_path)
    rec = tmp_path / "rec"
    proc = start(config, "--record", str(rec))
    wait_for(lambda: calls(journal).count("apply") >= 10, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap_ms / 1e3)
    proc.send_signal(signal.SIGINT)
    press_again_if_coalesced(proc, lambda: "safe_stop" in calls(journal))
    result = finish(proc)
    assert result["exitCode"] == 130 and result["stopReason"] == "forced_exit" and result["ok"] is False
    assert result["safeStops"] == 1 and result["safeStopFailures"] == []
    done = calls(journal)
    assert done.count("safe_stop") == 1 and done[-1] == "close"
    assert done.index("safe_stop") < done.index("close")
    assert_recording_finalised(rec, result)


def test_signal_storm_after_the_result_never_changes_the_status(tmp_path: Path) -> None:
    """Ten SIGINTs 2 ms apart from mid-run to exit: the status is still the printed code."""
    config, journal = journal_session(tmp_path)
    proc = start(config, "--no-record")
    wait_for(lambda: calls(journal).count("apply") >= 5, proc)
    for _ in range(10):
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGINT)
        time.sleep(0.002)
    result = finish(proc)
    assert result["exitCode"] == 130 and result["safeStops"] == 1


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_during_connect_aborts_with_nothing_powered(tmp_path: Path, sig: signal.Signals) -> None:
    journal = tmp_path / "journal.jsonl"
    marker = tmp_path / "connecting"
    target = {"kind": "reflex_test_plugins:ScriptedTarget",
              "config": {"connect_marker": str(marker), "connect_delay_s": 60}}
    hardware = {"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal)}}
    session = base_session(mode="apply_actions", hardware=hardware, target=target)
    proc = start(write_session(tmp_path, session), "--record", str(tmp_path / "rec"))
    wait_for(marker.exists, proc)
    proc.send_signal(sig)
    result = finish(proc)
    assert result["exitCode"] == 130 and result["stopReason"] == "aborted"
    assert read_journal(journal) == [], "hardware was touched during an aborted connect"
    assert not (tmp_path / "rec").exists()


def connector_session(tmp_path: Path) -> Path:
    path = session_file(tmp_path, "persistent", {})
    data = yaml.safe_load(path.read_text())
    data["max_steps"] = 0
    data["record"] = {"formats": ["jsonl"]}
    data["safety"] = {"max_command_gap_ms": LOADED_GAP_MS}
    path.write_text(yaml.safe_dump(data))
    return path


def pipe_ops(tmp_path: Path) -> list[str]:
    path = tmp_path / "pipe.log"
    return [json.loads(x)["op"] for x in path.read_text().splitlines()] if path.exists() else []


def test_kill_hup_of_a_real_connect_with_a_connector_process(tmp_path: Path) -> None:
    """``kill -HUP`` (a dropped SSH session): the connector process still gets ``close``."""
    rec = tmp_path / "rec"
    proc = start(connector_session(tmp_path), "--record", str(rec))
    wait_for(lambda: "enable" in pipe_ops(tmp_path), proc)
    wait_for(lambda: (rec / "jsonl" / "steps.jsonl").exists()
             and (rec / "jsonl" / "steps.jsonl").stat().st_size > 2000, proc)
    subprocess.run(["kill", "-HUP", str(proc.pid)], check=True)
    result = finish(proc)
    assert result["exitCode"] == 0 and result["stopReason"] == "signal:SIGHUP", (result["errors"],
                                                                               result["safeStopFailures"])
    assert pipe_ops(tmp_path)[-1] == "close"
    assert_recording_finalised(rec, result)


def test_double_hup_of_a_connector_session_is_consistent(tmp_path: Path) -> None:
    """Two hang-ups 5 ms apart. A connector session shuts down in milliseconds, so the second may
    land while it closes or after the result is decided: either way the status is the printed
    code, and a forced stop sends at most one ``safe_stop``, always before ``close``."""
    rec = tmp_path / "rec"
    proc = start(connector_session(tmp_path), "--record", str(rec))
    wait_for(lambda: "enable" in pipe_ops(tmp_path), proc)
    wait_for(lambda: (rec / "jsonl" / "steps.jsonl").exists()
             and (rec / "jsonl" / "steps.jsonl").stat().st_size > 2000, proc)
    proc.send_signal(signal.SIGHUP)
    time.sleep(0.005)
    proc.send_signal(signal.SIGHUP)
    result = finish(proc)
    ops = pipe_ops(tmp_path)
    assert ops[-1] == "close"
    if result["exitCode"] == 130:  # forced: a safe stop unless the process was already closing
        assert result["stopReason"] == "forced_exit"
        assert ops.count("safe_stop") == result["safeStops"] <= 1
        assert "safe_stop" not in ops or ops.index("safe_stop") < ops.index("close")
    else:
        assert result["exitCode"] == 0 and result["stopReason"] == "signal:SIGHUP"
        assert "safe_stop" not in ops and result["safeStops"] == 0
    assert_recording_finalised(rec, result)
