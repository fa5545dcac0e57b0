"""``record.isolation: process``: the recorders in a child process, fed through shared memory.

The same read-back checks as thread mode (the round-trip tests run again on a process-isolated
session), a failing format, the recording process killed mid-session, the session's process
killed (the files must still be complete), and the frame transfer held to its byte budget while
the child does not read (stopped with SIGSTOP)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("av")
pytest.importorskip("mcap_protobuf")
pytest.importorskip("rerun")

from conftest import REPO, json_result, subprocess_env
from test_record_hub import small_disk
from test_record_roundtrip import (  # run again here on the process-isolated session (the `applied` fixture below)
    test_jsonl_matches_robot_cameras_and_actions,
    test_lerobot_loader_returns_every_frame_and_value,
    test_mcap_decodes_to_what_happened,
    test_rerun_reads_back_and_verifies,
)
from test_record_roundtrip import test_result_and_manifest_report_every_format_complete as _thread_result_test
from test_record_support import (
    Truth,
    jsonl_records,
    make_meta,
    make_step,
    read_lines,
    record_session,
    rerun_cli,
    result_after,
    run_cli_proc,
)

from reflex.recording.inspect import info
from reflex.recording.manifest import read_json
from reflex.recording.process_hub import ProcessRecordingHub, ring_bytes
from reflex.runtime.session import run_session_file

FORMATS = ["jsonl", "lerobot", "mcap", "rerun"]
STEPS = 90
CHILD_MODULE = "reflex.recording.process_child"

__all__ = [
    "test_jsonl_matches_robot_cameras_and_actions",
    "test_lerobot_loader_returns_every_frame_and_value",
    "test_mcap_decodes_to_what_happened",
    "test_rerun_reads_back_and_verifies",
]


def _process_record(tmp: Path, formats: list[str], **extra: Any) -> dict[str, Any]:
    return {"enabled": True, "formats": formats, "dir": str(tmp / "rec"), "isolation": "process", **extra}


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The round-trip session of test_record_roundtrip, with the recorders in their own process."""
    tmp = tmp_path_factory.mktemp("process")
    config, rec_dir, hw, cams = record_session(tmp, FORMATS, max_steps=STEPS, record=_process_record(tmp, FORMATS))
    result = run_session_file(config)
    assert result.ok, result.errors
    assert result.steps == STEPS
    return {"result": result, "dir": rec_dir, "truth": Truth(hw, cams), "jsonl": jsonl_records(rec_dir)}


def test_the_result_reports_every_format_and_the_recording_process(applied: dict[str, Any]) -> None:
    _thread_result_test(applied)
    iso = applied["result"].recording["isolation"]
    assert iso["mode"] == "process" and iso["processExit"] is None
    assert iso["transferDropped"] == 0 and iso["transferDroppedFrames"] == 0
    assert 0 < iso["maxTransferMiB"] <= iso["transferMiB"]
    assert iso["pid"] != os.getpid()


# -- a format failing in the child -------------------------------------------------------------
def test_a_full_disk_in_the_recording_process_safe_stops_the_session(tmp_path: Path) -> None:
    rec_dir = tmp_path / "disk"
    with small_disk(rec_dir, 512) as disk:
        if disk["run"]:  # a file-size limit, not a full disk: it would refuse the frame ring's shared memory too
            pytest.skip("needs root to mount a small tmpfs")
        config, _, hw, _ = record_session(
            tmp_path, ["jsonl"], max_steps=600,
            record={"enabled": True, "formats": ["jsonl"], "dir": str(rec_dir), "isolation": "process",
                    "image_encoding": "lossless", "on_error": "safe_stop"},
        )
        proc = subprocess.run([sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json"],
                              capture_output=True, text=True, timeout=180, env=subprocess_env(), cwd=REPO,
                              **disk["run"])
    result = json_result(proc)
    assert proc.returncode == 1 and not result["ok"]
    assert result["stopReason"] == "incident:record" and result["safeStops"] == 1
    recording = result["recording"]
    assert recording["isolation"]["mode"] == "process"
    assert recording["failures"] and all(("Errno 28" in f) or ("Errno 27" in f) for f in recording["failures"])
    assert result["steps"] < 600
    calls = [e["call"] for e in read_lines(hw)]
    assert "apply" not in calls[calls.index("safe_stop"):]


# -- either process dying --------------------------------------------------------------------
NEEDS_PROC = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds the recording process in /proc")


def _recording_child(pid: int) -> int | None:
    """The pid of ``pid``'s recording process, if it has one yet."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if CHILD_MODULE.encode() in cmdline:
                return int(child)
    return None


def _start_and_wait_for_steps(tmp_path: Path, steps_on_disk: int = 30) -> tuple[subprocess.Popen[str], int, Path, Path]:
    config, rec_dir, hw, _ = record_session(tmp_path, FORMATS, max_steps=100000,
                                            record=_process_record(tmp_path, FORMATS))
    proc = run_cli_proc(["connect", "--config", str(config), "--json"])
    deadline = time.monotonic() + 120
    child = None
    while time.monotonic() < deadline and proc.poll() is None:
        child = child or _recording_child(proc.pid)
        lines = read_lines(rec_dir / "jsonl" / "steps.jsonl")
        if child and sum(1 for e in lines if e.get("type") == "step") >= steps_on_disk:
            return proc, child, rec_dir, hw
        time.sleep(0.2)
    proc.kill()
    _, stderr = proc.communicate(timeout=60)
    raise AssertionError(f"the session did not record {steps_on_disk} steps (child {child}):\n{stderr[-3000:]}")


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@NEEDS_PROC
def test_the_recording_process_killed_mid_session_is_a_recording_failure(tmp_path: Path) -> None:
    proc, child, _, hw = _start_and_wait_for_steps(tmp_path)
    result, stderr = result_after(proc, lambda: os.kill(child, signal.SIGKILL))
    assert not result["ok"] and result["stopReason"] == "incident:record", stderr[-2000:]
    assert result["safeStops"] == 1
    recording = result["recording"]
    assert recording["isolation"]["processExit"] and "code -9" in recording["isolation"]["processExit"]
    assert {f.split(":")[0] for f in recording["failures"]} == set(FORMATS)
    assert recording["unfinished"] == FORMATS and recording["degraded"] is True
    manifest = read_json(tmp_path / "rec" / "recording.json")
    assert manifest is not None and "code -9" in manifest["recording_process"]
    assert info(tmp_path / "rec")["status"] == "interrupted"  # `reflex recordings repair` finishes it
    calls = [e["call"] for e in read_lines(hw)]
    assert "apply" not in calls[calls.index("safe_stop"):]


@NEEDS_PROC
def test_the_session_killed_leaves_every_format_complete(tmp_path: Path) -> None:
    from mcap.reader import make_reader

    proc, child, rec_dir, _ = _start_and_wait_for_steps(tmp_path)
    proc.kill()  # SIGKILL: the session cannot close anything
    try:
        proc.communicate(timeout=120)  # stderr stays open until the recording process exits too
        deadline = time.monotonic() + 120
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(child), "the recording process outlived its session"
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)
    manifest = read_json(rec_dir / "recording.json")
    assert manifest is not None and manifest["status"] == "complete", manifest
    steps = manifest["steps"]
    assert steps >= 30
    details = info(rec_dir)["details"]
    assert {n: d["state"] for n, d in details.items()} == {f: "complete" for f in FORMATS}
    assert json.loads((rec_dir / "lerobot" / "meta/info.json").read_text())["total_frames"] == steps
    with (rec_dir / "mcap" / "session.mcap").open("rb") as fh:
        summary = make_reader(fh).get_summary()
    assert summary is not None and summary.statistics is not None
    by_topic = {ch.topic: summary.statistics.channel_message_counts.get(cid, 0) for cid, ch in summary.channels.items()}
    assert by_topic["/reflex/step"] == steps
    assert rerun_cli("rrd", "verify", str(rec_dir / "rerun" / "session.rrd")).returncode == 0
    assert jsonl_records(rec_dir)["end"][0]["counts"]["step"] == steps


# -- the frame transfer's byte budget ------------------------------------------------------------
def test_a_recording_process_that_does_not_read_makes_the_session_drop_and_count(tmp_path: Path) -> None:
    budget = 4 * 2**20
    hub = ProcessRecordingHub(["jsonl"], tmp_path / "rec", make_meta(cameras=("top",)), queue_size=8,
                              budget_bytes=budget)
    assert hub.start() == []
    pid = hub.report()["isolation"]["pid"]
    os.kill(pid, signal.SIGSTOP)  # the child falls behind as far as it can: it takes nothing out
    submitted = 0
    try:
        # one step at a time, each handed to the socket, until the ring is full and frames drop
        while not hub.stats()[0].dropped_frames and submitted < 1000:
            hub.submit(make_step(submitted, {"top": (0, submitted + 1)}))
            submitted += 1
            deadline = time.monotonic() + 30
            while hub._queue.qsize() and time.monotonic() < deadline:
                time.sleep(0.001)
        # then as fast as possible, until the socket and the send queue are full and steps drop
        while not hub.failures() and submitted < 100_000:
            hub.submit(make_step(submitted, {"top": (0, submitted + 1)}))
            submitted += 1
        stopped = hub.report()
        stats = hub.stats()[0]
    finally:
        os.kill(pid, signal.SIGCONT)
    iso = stopped["isolation"]
    assert iso["transferMiB"] == ring_bytes(budget) / 2**20
    assert 0 < iso["maxTransferMiB"] <= iso["transferMiB"]  # the ring filled, never past its size
    assert stats.dropped_frames > 0 and stats.dropped > 0  # first frames, then whole steps
    assert hub.failures() == [f"jsonl: {stats.fell_behind}"] and "queue full" in str(stats.fell_behind)
    assert hub.close(60.0) == []
    final = hub.stats()[0]
    assert final.written_steps + final.dropped == submitted
    assert final.dropped_frames >= stats.dropped_frames
    lines = read_lines(tmp_path / "rec" / "jsonl" / "steps.jsonl")
    written = [e for e in lines if e.get("type") == "step"]
    assert len(written) == final.written_steps
    without_frame = sum(1 for e in written if not e["frames"])
    assert without_frame <= final.dropped_frames  # every frame left out of a written step is counted
    manifest = read_json(tmp_path / "rec" / "recording.json")
    assert manifest is not None and manifest["status"] == "degraded"
    assert manifest["formats"]["jsonl"]["dropped"] == final.dropped
    assert manifest["formats"]["jsonl"]["dropped_frames"] == final.dropped_frames


# -- start-up failures ---------------------------------------------------------------------------
def test_a_format_that_cannot_open_fails_set_up_as_in_thread_mode(tmp_path: Path) -> None:
    results = {}
    for isolation in ("thread", "process"):
        tmp = tmp_path / isolation
        tmp.mkdir()
        (tmp / "rec" / "jsonl" / "steps.jsonl").mkdir(parents=True)  # the file's place is taken
        config, _, hw, _ = record_session(tmp, ["jsonl"], max_steps=10,
                                          record={**_process_record(tmp, ["jsonl"]), "isolation": isolation})
        result = run_session_file(config)
        assert result.recording is not None
        said = json.dumps([result.errors, result.recording["failures"]]).replace(str(tmp), "TMP")
        results[isolation] = (result.exit_code, result.stop_reason, said)
        assert "enable" not in [e["call"] for e in read_lines(hw)]
    assert results["process"] == results["thread"]
    code, reason, said = results["process"]
    assert code == 3 and reason == "setup_failed" and "jsonl: open: IsADirectoryError" in said


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="posix_fallocate on /dev/shm is Linux's")
def test_shared_memory_that_cannot_be_had_is_an_error_at_set_up_and_leaves_nothing(tmp_path: Path) -> None:
    from reflex.recording.frame_ring import FrameRing

    with pytest.raises(OSError) as err:
        FrameRing.create(2**40)  # more than any /dev/shm here: reserved at creation, refused there
    assert err.value.errno in (28, 27, 12)  # ENOSPC, EFBIG, ENOMEM
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(f"reflex-rec-{os.getpid()}-")]
