"""Scenario suite, resources: connector output that would exhaust memory, and recording
directories that must never be overwritten or shared.

RSS tests feed 10x (or far more than) the cap and assert the peak resident set of the process
under test grew by a bounded amount relative to the cap, never by what was fed.
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
from conftest import REPO, base_session, subprocess_env, write_session
from reflex_test_plugins import read_journal
from rss_testutil import MIB, run_measured
from typer.testing import CliRunner

from reflex.cli.app import app

FLOOD_MIB = 256  # stderr written without a single newline


def test_persistent_connector_stderr_flood_keeps_rss_flat() -> None:
    """The measured case: a connector writing stderr endlessly with no newline took the runner
    to 3 GB. Now the drain keeps a bounded tail whatever arrives."""
    result = run_measured(f'''
        from pathlib import Path
        from reflex.hardware.subprocess.persistent import PersistentProcess
        from reflex.hardware.subprocess.process import CommandSpec

        def flood(mib):
            code = f"import sys; b = b'x' * 1048576\\nfor _ in range({{mib}}): sys.stderr.buffer.write(b)"
            spec = CommandSpec("command", "flood", (sys.executable, "-c", code), Path("."), {{}})
            proc = PersistentProcess(spec, {{}})
            proc.start()
            proc.wait_exit(60)
            return proc.stderr_tail()

        flood(2)  # warm-up: the same path with a small input
        base = peak_kib()
        tail = flood({FLOOD_MIB})
        report(base=base, peak=peak_kib(), tail_len=len(tail), tail=tail[-200:])
    ''')
    growth_mib = (result["peak"] - result["base"]) / 1024
    assert growth_mib < 16, f"{growth_mib:.1f} MiB for {FLOOD_MIB} MiB of stderr"
    assert "more bytes" in result["tail"] and result["tail_len"] <= 1000


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_per_call_command_output_flood_keeps_rss_flat(stream: str) -> None:
    """A per-call command's stdout is capped (10x the cap is fed: the call fails at the cap);
    its stderr is drained into a bounded tail."""
    cap = 4 * MIB
    fed = 10 * cap if stream == "stdout" else FLOOD_MIB * MIB
    result = run_measured(f'''
        from pathlib import Path
        from reflex.hardware.subprocess.process import CommandSpec, run_once

        def call(nbytes):
            code = (f"import sys; b = b'x' * 1048576\\nfor _ in range({{nbytes}} // 1048576): "
                    "sys.{stream}.buffer.write(b)")
            spec = CommandSpec("observe_command", "flood", (sys.executable, "-c", code), Path("."), {{}})
            return run_once(spec, b"{{}}", 60.0, {{}}, max_stdout={cap})

        call(1048576)
        base = peak_kib()
        res = call({fed})
        report(base=base, peak=peak_kib(), overflow=res.overflow, returncode=res.returncode,
               out=len(res.stdout), err=len(res.stderr))
    ''')
    growth_mib = (result["peak"] - result["base"]) / 1024
    fed_mib = fed / MIB
    if stream == "stdout":
        assert result["overflow"] is True and result["returncode"] is None
        assert result["out"] == cap
        assert growth_mib < 3 * cap / MIB + 8, f"{growth_mib:.1f} MiB for {fed_mib:.0f} MiB of stdout"
    else:
        assert result["overflow"] is False and result["returncode"] == 0
        assert result["err"] < 8192 and growth_mib < 16, f"{growth_mib:.1f} MiB for {fed_mib:.0f} MiB"


def test_persistent_reply_line_over_the_cap_breaks_the_channel_with_flat_rss() -> None:
    cap = 4 * MIB
    result: dict[str, Any] = run_measured(f'''
        from pathlib import Path
        from reflex.hardware.subprocess.persistent import ChannelBroken, PersistentProcess
        from reflex.hardware.subprocess.process import CommandSpec

        def reply(nbytes):
            code = (f"import sys; sys.stdin.readline(); b = b'x' * 1048576\\n"
                    f"for _ in range({{nbytes}} // 1048576): sys.stdout.buffer.write(b)\\nsys.stdout.flush()")
            spec = CommandSpec("command", "big", (sys.executable, "-c", code), Path("."), {{}})
            proc = PersistentProcess(spec, {{}}, max_reply_bytes={cap})
            proc.start()
            try:
                proc.exchange(b'{{"id": 1}}\\n', 1, 60.0)
            except ChannelBroken as exc:
                return str(exc)
            return "no error"

        reply(1048576)
        base = peak_kib()
        error = reply({10 * cap})
        report(base=base, peak=peak_kib(), error=error)
    ''')
    growth_mib = (result["peak"] - result["base"]) / 1024
    assert f"exceeded {cap} bytes without a newline" in result["error"]
    assert growth_mib < 3 * cap / MIB + 8, f"{growth_mib:.1f} MiB for {10 * cap / MIB:.0f} MiB"


# -- recording directories ---------------------------------------------------------------------

def journal_config(tmp_path: Path, name: str, **overrides: Any) -> tuple[Path, Path]:
    journal = tmp_path / f"{name}.jsonl"
    hardware = {"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal)}}
    overrides.setdefault("record", {"formats": ["jsonl"]})
    session = base_session(hardware=hardware, **overrides)
    return write_session(tmp_path, session, f"{name}.yaml"), journal


def connect_in_process(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(app, ["connect", "--config", str(config), "--json", *args])
    payload = json.loads(next(ln for ln in result.stdout.splitlines() if ln.startswith("{")))
    assert payload["exitCode"] == result.exit_code
    return result.exit_code, payload


def read_steps(rec: Path) -> list[dict[str, Any]]:
    """Every line parses: the recording is readable up to where it stopped."""
    return [json.loads(x) for x in (rec / "jsonl" / "steps.jsonl").read_text().splitlines()]


def test_a_finished_recording_is_never_overwritten(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    first, _ = journal_config(tmp_path, "first", max_steps=5)
    code, _ = connect_in_process(first, "--record", str(rec))
    assert code == 0
    before = (rec / "jsonl" / "steps.jsonl").read_bytes()
    second, journal = journal_config(tmp_path, "second", max_steps=9)
    code, payload = connect_in_process(second, "--record", str(rec))
    assert code == 2 and payload["ok"] is False
    message = " ".join(payload["errors"])
    assert "--record" in message and str(rec) in message and "already holds a recording" in message
    assert read_journal(journal) == [], "the robot was touched although the recording was refused"
    assert (rec / "jsonl" / "steps.jsonl").read_bytes() == before
    assert json.loads((rec / "recording.json").read_text())["status"] == "complete"


def test_record_dir_from_the_config_file_is_refused_the_same_way(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    config, _ = journal_config(tmp_path, "a", max_steps=3, record={"formats": ["jsonl"], "dir": str(rec)})
    assert connect_in_process(config)[0] == 0
    code, payload = connect_in_process(config)
    assert code == 2 and "record.dir" in payload["errors"][0] and "already holds a recording" in payload["errors"][0]


def test_two_live_sessions_never_share_a_directory(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    first, _ = journal_config(tmp_path, "a", max_steps=0)
    proc = subprocess.Popen([sys.executable, "-m", "reflex", "connect", "--config", str(first), "--json",
                             "--record", str(rec)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(), cwd=REPO)
    try:
        deadline = time.monotonic() + 90
        steps = rec / "jsonl" / "steps.jsonl"
        while not (steps.exists() and steps.read_text().count("\n") >= 3):  # A is running its loop
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        second, journal_b = journal_config(tmp_path, "b", max_steps=5)
        code, payload = connect_in_process(second, "--record", str(rec))
        assert code == 2 and "live session" in payload["errors"][0] and f"pid {proc.pid}" in payload["errors"][0]
        assert read_journal(journal_b) == []
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert out.strip(), err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == result["exitCode"] == 0, err[-2000:]
    lines = read_steps(rec)
    assert lines[0]["type"] == "header" and lines[-1]["type"] == "end"
    assert len({ln.get("session_id") for ln in lines if ln["type"] == "header"}) == 1
    assert not (rec / ".reflex.lock").exists()


def test_stale_lock_of_a_killed_session_is_detected(tmp_path: Path) -> None:
    """kill -9 mid-session: the lock is left but not held. The next session names it as stale and
    refuses the half-written recording (which stays readable up to the kill)."""
    rec = tmp_path / "rec"
    first, journal_a = journal_config(tmp_path, "a", max_steps=0)
    proc = subprocess.Popen([sys.executable, "-m", "reflex", "connect", "--config", str(first),
                             "--record", str(rec)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=subprocess_env(), cwd=REPO)
    deadline = time.monotonic() + 90
    while sum(1 for e in read_journal(journal_a) if e["call"] == "apply") < 1 and \
            not (rec / "jsonl" / "steps.jsonl").exists():
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(1.5)  # past the recorder's 1 s flush
    proc.kill()
    proc.wait(timeout=30)
    assert (rec / ".reflex.lock").exists()
    second, journal_b = journal_config(tmp_path, "b", max_steps=5)
    code, payload = connect_in_process(second, "--record", str(rec))
    message = payload["errors"][0]
    assert code == 2 and "stale lock of a killed session" in message and f"pid {proc.pid}" in message
    assert "status recording" in message and "reflex recordings repair" in message
    assert read_journal(journal_b) == []
    lines = [json.loads(x) for x in (rec / "jsonl" / "steps.jsonl").read_text().splitlines() if x.endswith("}")]
    assert lines and lines[0]["type"] == "header"


def test_stale_lock_without_a_recording_is_taken_over(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    killed = subprocess.run(
        [sys.executable, "-c", "import os, sys; from pathlib import Path; "
         "from reflex.recording.dir_lock import claim_recording_dir; "
         f"claim_recording_dir(Path({str(rec)!r}), 'killed'); os._exit(9)"],
        env=subprocess_env(), cwd=REPO, timeout=60,
    )
    assert killed.returncode == 9 and (rec / ".reflex.lock").exists()
    config, _ = journal_config(tmp_path, "a", max_steps=4)
    code, payload = connect_in_process(config, "--record", str(rec))
    assert code == 0, payload
    assert [x["type"] for x in read_steps(rec)].count("step") == 4
    assert not (rec / ".reflex.lock").exists()


def test_default_directories_are_distinct_per_session(tmp_path: Path, recordings: Path) -> None:
    config, _ = journal_config(tmp_path, "a", max_steps=2)
    paths = [connect_in_process(config)[1]["recording"]["path"] for _ in range(2)]
    assert paths[0] != paths[1] and all(Path(p).parent.parent == recordings for p in paths)
