"""Ctrl-C / SIGTERM against a real ``reflex connect`` subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, base_session, subprocess_env, write_session
from reflex_test_plugins import read_journal


def start(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
    )


def wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def recorded_steps(path: Path) -> int:
    if not path.is_file():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.startswith('{"type":"step"'))


def journal_hw(journal: Path) -> dict[str, object]:
    return {"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal)}}


def test_sigint_mid_run_stops_cleanly_with_complete_recording(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    rec = tmp_path / "rec"
    session = base_session(mode="apply_actions", max_steps=0, hardware=journal_hw(journal),
                           record={"formats": ["jsonl"]})
    proc = start(write_session(tmp_path, session), "--record", str(rec))
    wait_for(lambda: sum(1 for e in read_journal(journal) if e["call"] == "apply") >= 30)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] is True and result["stopReason"] == "signal:SIGINT"
    assert result["safeStops"] == 0 and result["steps"] >= 30
    lines = [json.loads(x) for x in (rec / "jsonl" / "steps.jsonl").read_text().splitlines()]
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "end"
    steps = [x for x in lines if x["type"] == "step"]
    assert len(steps) == result["steps"] == result["recording"]["writtenSteps"]["jsonl"]
    calls = [e["call"] for e in read_journal(journal)]
    assert calls[-1] == "close"


def test_sigint_during_target_connect_starts_no_hardware(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    marker = tmp_path / "connecting"
    target = {"kind": "reflex_test_plugins:ScriptedTarget",
              "config": {"connect_marker": str(marker), "connect_delay_s": 60}}
    session = base_session(mode="apply_actions", hardware=journal_hw(journal), target=target)
    proc = start(write_session(tmp_path, session))
    wait_for(marker.exists)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"] is False and result["stopReason"] == "aborted"
    assert read_journal(journal) == [], "hardware was touched during an aborted connect"


def test_second_sigint_leaves_now_after_a_safe_stop(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    # slow inference keeps the loop busy; the first SIGINT asks to stop, the second forces it
    target = {"kind": "reflex_test_plugins:ScriptedTarget", "config": {"infer_delay_s": 0.01}}
    session = base_session(mode="apply_actions", max_steps=0, hardware=journal_hw(journal), target=target,
                           record={"formats": ["jsonl"]}, control_rate_hz=20)
    proc = start(write_session(tmp_path, session), "--record", str(tmp_path / "rec"))
    wait_for(lambda: any(e["call"] == "apply" for e in read_journal(journal)))
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    calls = [e["call"] for e in read_journal(journal)]
    assert calls[-1] == "close"
    if result["stopReason"] == "forced_exit":  # the second signal landed while the loop still ran
        assert proc.returncode == 130 and result["safeStops"] == 1 and "safe_stop" in calls
    else:  # both arrived after the loop had ended cleanly: shutdown was only cut short
        assert result["stopReason"] == "signal:SIGINT" and proc.returncode == 0


def test_sigterm_is_handled_like_sigint(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    rec = tmp_path / "rec"
    session = base_session(mode="dry_run", max_steps=0, hardware=journal_hw(journal), record={"formats": ["jsonl"]})
    proc = start(write_session(tmp_path, session), "--record", str(rec))
    wait_for(lambda: recorded_steps(rec / "jsonl" / "steps.jsonl") > 0)  # the loop is running
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    result = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == 0 and result["stopReason"] == "signal:SIGTERM" and result["steps"] > 0
