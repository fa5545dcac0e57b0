"""Never block, never lie: drops are counted, a failing format leaves the others alone, and a
full disk marks the recording degraded while the session goes on or safe-stops per config."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, json_result, run_cli, subprocess_env
from test_record_support import make_meta, make_step, read_lines, record_session

from reflex.recording.hub import ITEM_OVERHEAD_BYTES, RecordingHub
from reflex.recording.inspect import info
from reflex.recording.jsonl import JsonlRecorder
from reflex.recording.manifest import read_json


class SlowJsonl(JsonlRecorder):
    """The real JSONL recorder on a disk that takes 20 ms per step (cannot keep up with 1 kHz)."""

    name = "slow"

    def write_step(self, rec: Any) -> None:
        time.sleep(0.02)
        super().write_step(rec)


class FailingJsonl(JsonlRecorder):
    """The real JSONL recorder whose disk starts failing at step 10."""

    name = "failing"

    def write_step(self, rec: Any) -> None:
        if rec.step >= 10:
            raise OSError(28, "No space left on device")
        super().write_step(rec)


def _run_hub(recorders: list[Any], tmp_path: Path, steps: int, queue_size: int) -> RecordingHub:
    hub = RecordingHub(recorders, make_meta(), queue_size, tmp_path)
    assert hub.start() == []
    for i in range(steps):
        hub.submit(make_step(i, {"top": (0, i + 1)}))
        time.sleep(0.002)  # a 500 Hz control loop
    assert hub.close(60.0) == []
    return hub


def test_a_slow_format_drops_and_counts_without_holding_up_the_others(tmp_path: Path) -> None:
    slow = SlowJsonl(tmp_path / "slow")
    fast = JsonlRecorder(tmp_path / "fast")
    hub = _run_hub([slow, fast], tmp_path, steps=200, queue_size=64)
    stats = {s.name: s for s in hub.stats()}
    assert stats["slow"].dropped > 0  # submit() never waited for the slow writer
    assert stats["slow"].dropped + stats["slow"].written_steps == 200
    assert stats["jsonl"].dropped == 0 and stats["jsonl"].written_steps == 200
    written = [e["step"] for e in read_lines(tmp_path / "slow" / "jsonl" / "steps.jsonl") if e["type"] == "step"]
    assert len(written) == stats["slow"].written_steps and written == sorted(written)
    report = hub.report()
    assert report["lagging"] == ["slow"] and report["degraded"] is True
    manifest = read_json(tmp_path / "recording.json")
    assert manifest is not None and manifest["status"] == "degraded"
    assert manifest["formats"]["slow"]["dropped"] == stats["slow"].dropped
    assert manifest["formats"]["jsonl"]["dropped"] == 0 and manifest["steps"] == 200


class StuckJsonl(JsonlRecorder):
    """The real JSONL recorder on a disk that hangs until the test releases it."""

    name = "stuck"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.release = threading.Event()

    def write_step(self, rec: Any) -> None:
        self.release.wait(60.0)
        super().write_step(rec)


def test_a_format_that_falls_behind_drops_frames_then_steps_within_its_byte_budget(tmp_path: Path) -> None:
    stuck = StuckJsonl(tmp_path / "stuck")
    frame_bytes = 128 * 96 * 3
    # the budget holds 4 steps with a frame, then a few more without (no timing involved: the
    # stuck writer takes at most one item off its queue before it hangs)
    budget = 4 * (frame_bytes + ITEM_OVERHEAD_BYTES) + 3 * ITEM_OVERHEAD_BYTES
    hub = RecordingHub([stuck], make_meta(), 1024, tmp_path, budget_bytes=budget)
    assert hub.start() == []
    writer = {w.stats.name: w for w in hub._writers}
    steps = 40
    for i in range(steps):
        hub.submit(make_step(i, {"top": (0, i + 1)}))
        queued = writer["stuck"].stats.queued_bytes
        assert queued <= budget, f"step {i}: {queued} bytes queued, budget {budget}"
    stats = {s.name: s for s in hub.stats()}
    assert stats["stuck"].dropped_frames > 0 and stats["stuck"].dropped > 0
    assert stats["stuck"].max_queued_bytes <= budget
    assert len(hub.failures()) == 1 and hub.failures()[0].startswith("stuck: fell behind at step")
    stuck.release.set()
    assert hub.close(60.0) == []
    stats = {s.name: s for s in hub.stats()}
    # every step is either written or counted as dropped; every frame written or counted
    assert stats["stuck"].written_steps + stats["stuck"].dropped == steps
    lines = [x for x in read_lines(tmp_path / "stuck" / "jsonl" / "steps.jsonl") if x["type"] == "step"]
    with_frames = sum(1 for x in lines if x["frames"])
    assert with_frames + stats["stuck"].dropped_frames == steps  # a dropped step's frame counts too
    assert 1 <= with_frames <= 5 and stats["stuck"].queued_bytes == 0
    report = hub.report()
    assert report["lagging"] == ["stuck"] and report["degraded"] is True
    assert report["droppedFrames"] == {"stuck": stats["stuck"].dropped_frames}
    manifest = read_json(tmp_path / "recording.json")
    assert manifest["formats"]["stuck"]["dropped_frames"] == stats["stuck"].dropped_frames
    assert manifest["formats"]["stuck"]["fell_behind"].startswith("fell behind at step")


def test_formats_share_the_budget_counting_each_frame_once(tmp_path: Path) -> None:
    first, second = StuckJsonl(tmp_path / "a"), StuckJsonl(tmp_path / "b")
    second.name = "stuck2"
    frame_bytes = 128 * 96 * 3
    budget = 8 * (frame_bytes + 2 * ITEM_OVERHEAD_BYTES)
    hub = RecordingHub([first, second], make_meta(), 1024, tmp_path, budget_bytes=budget)
    assert hub.start() == []
    writers = hub._writers
    for i in range(30):
        hub.submit(make_step(i, {"top": (0, i + 1)}))
        held = [w.stats.queued_bytes for w in writers]
        assert hub.budget.used <= budget and all(h <= budget // 2 for h in held), (i, held)
        if i == 2:  # each stuck writer took at most step 0: both queues hold steps 1 and 2's frames,
            assert hub.budget.used < sum(held)  # one array each, counted once, not twice
    stats = {s.name: s for s in hub.stats()}
    assert stats["stuck"].dropped_frames > 0 and stats["stuck2"].dropped_frames > 0
    first.release.set()
    second.release.set()
    assert hub.close(60.0) == []
    assert hub.budget.used == 0 and hub.budget.max_used <= budget


def test_a_failing_format_does_not_take_the_others_down(tmp_path: Path) -> None:
    failing = FailingJsonl(tmp_path / "failing")
    ok = JsonlRecorder(tmp_path / "ok")
    hub = _run_hub([failing, ok], tmp_path, steps=40, queue_size=64)
    stats = {s.name: s for s in hub.stats()}
    assert stats["failing"].failed is not None and "No space left" in stats["failing"].failed
    assert stats["failing"].written_steps == 10
    assert stats["jsonl"].failed is None and stats["jsonl"].written_steps == 40
    lines = read_lines(tmp_path / "ok" / "jsonl" / "steps.jsonl")
    assert lines[-1]["type"] == "end" and lines[-1]["counts"]["step"] == 40
    assert hub.failures() == [f"failing: {stats['failing'].failed}"]


# -- a real full disk ------------------------------------------------------------------------
@contextmanager
def small_disk(path: Path, size_kib: int) -> Iterator[dict[str, Any]]:
    """A tmpfs of ``size_kib`` mounted at ``path`` (root), else a per-file size limit (EFBIG).
    Yields the extra ``subprocess.run`` arguments and, for the tmpfs, how to make room again."""
    path.mkdir(parents=True)
    mount = shutil.which("mount")
    if os.geteuid() == 0 and mount:
        done = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(path)],
                              capture_output=True)
        if done.returncode == 0:
            def grow() -> None:
                subprocess.run([mount, "-o", "remount,size=64m", str(path)], check=True, capture_output=True)

            try:
                yield {"run": {}, "grow": grow}
            finally:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
            return
    limit = size_kib * 1024 // 4

    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    yield {"run": {"preexec_fn": preexec}, "grow": lambda: None}


@pytest.mark.parametrize("on_error", ["continue", "safe_stop"])
def test_disk_full_marks_the_recording_degraded_then_repair_recovers_it(tmp_path: Path, on_error: str) -> None:
    steps = 150
    rec_dir = tmp_path / "disk"
    formats = ["jsonl", "lerobot", "mcap", "rerun"]
    with small_disk(rec_dir, 1536) as disk:
        if disk["run"]:
            formats = ["jsonl", "lerobot", "mcap"]  # file-size limit, not a full disk: rerun's sink would stall
        config, _, hw, _ = record_session(
            tmp_path, formats, max_steps=steps,
            # lossless frames (PNG): JPEG frames of the small sim camera can fit 150 steps into the
            # small disk when a loaded machine repeats frames, and then nothing would fail
            record={"enabled": True, "formats": formats, "dir": str(rec_dir), "on_error": on_error,
                    "image_encoding": "lossless"},
        )
        proc = subprocess.run([sys.executable, "-m", "reflex", "connect", "--config", str(config), "--json"],
                              capture_output=True, text=True, timeout=180, env=subprocess_env(), cwd=REPO,
                              **disk["run"])
        result = json_result(proc)
        recording = result["recording"]
        assert recording["degraded"] is True and recording["failures"], recording
        assert all(("Errno 28" in f) or ("Errno 27" in f) for f in recording["failures"]), recording["failures"]
        assert proc.returncode == 1 and not result["ok"]
        if on_error == "continue":
            assert result["steps"] == steps and result["safeStops"] == 0
            assert result["stopReason"] == "completed"
            assert "apply" in {e["call"] for e in read_lines(hw)}
        else:
            assert result["stopReason"] == "incident:record" and result["safeStops"] == 1
            assert result["steps"] < steps
            assert any(e.startswith("record:") for e in result["errors"])
            calls = [e["call"] for e in read_lines(hw)]
            assert "apply" not in calls[calls.index("safe_stop"):]

        # space freed: repair finishes every format from what reached the disk
        disk["grow"]()
        repair = run_cli(["recordings", "repair", str(rec_dir), "--json"])
        assert repair.returncode == 0, repair.stdout + repair.stderr
        details = info(rec_dir)["details"]
        states = {n: d["state"] for n, d in details.items()}
        assert states == {**{f: "complete" for f in formats}, "lerobot": states["lerobot"]}
        # LeRobot is rebuilt from its journal if it failed; with safe_stop another format may hit the
        # full disk first and stop the session while LeRobot still had room to finish (a loaded host
        # changes which), so then it is complete as written
        lerobot_failed = any(f.startswith("lerobot:") for f in recording["failures"])
        assert states["lerobot"] == "repaired" if lerobot_failed else states["lerobot"] in ("repaired", "complete")
        assert lerobot_failed or on_error == "safe_stop", "with continue every format meets the full disk"
        assert details["lerobot"]["rows"] > 0


def test_a_format_whose_extra_is_missing_is_a_setup_error_before_anything_moves(tmp_path: Path) -> None:
    config, _, hw, _ = record_session(tmp_path, ["jsonl", "lerobot"], max_steps=10)
    code = ("import sys, json; sys.modules['pyarrow'] = None  # as on a core install\n"
            "from reflex.runtime.session import run_session_file\n"
            f"r = run_session_file({str(config)!r}); print(json.dumps(r.to_json()))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=subprocess_env(), cwd=REPO)
    result = json_result(proc)
    assert result["exitCode"] == 3 and result["stopReason"] == "setup_failed"
    assert "pip install 'reflex-runtime[lerobot]'" in result["errors"][0]
    calls = [e["call"] for e in read_lines(hw)]
    assert "enable" not in calls and "apply" not in calls
