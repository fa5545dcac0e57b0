"""Crash safety: ``kill -9`` mid-session leaves every format readable up to its last flush (and
``reflex recordings repair`` finishes it); SIGINT/SIGTERM finalize every format."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("av")
pytest.importorskip("mcap_protobuf")
pytest.importorskip("rerun")

from conftest import run_cli
from test_record_support import (
    CAMERAS,
    Truth,
    assert_frame_matches,
    decode_jpeg,
    jsonl_records,
    lerobot_load,
    mcap_messages,
    read_lines,
    record_session,
    require_readers,
    rerun_cli,
    rerun_table,
    result_after,
    run_cli_proc,
)

from reflex.recording.inspect import info, summarize
from reflex.recording.lerobot.journal import read_journal

FORMATS = ["jsonl", "lerobot", "mcap", "rerun"]
ON_DISK = 45  # steps every format must have flushed before the kill (1.5 s at 30 Hz)
RATE = 30
MAX_LOSS_S = 5.0  # "about 1 s" plus slack for a loaded machine


def progress(rec: Path) -> dict[str, int]:
    """Steps each format has on disk right now, read the way a crashed file would be."""
    out = {"jsonl": sum(1 for e in read_lines(rec / "jsonl" / "steps.jsonl") if e.get("type") == "step")}
    table, _ = read_journal(rec / "lerobot" / ".partial" / "rows.arrows")
    out["lerobot"] = 0 if table is None else table.num_rows
    mcap = rec / "mcap" / "session.mcap"
    out["mcap"] = len(mcap_messages(mcap, seeking=False)[0].get("/reflex/step", [])) if mcap.exists() else 0
    rrd = rec / "rerun" / "session.rrd"
    try:
        rows = rerun_table(rrd, complete=False).column("/reflex/step:t_state").to_pylist()
        out["rerun"] = sum(1 for r in rows if r)
    except Exception:
        out["rerun"] = 0
    return out


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("kill9")
    config, rec_dir, hw, cams = record_session(tmp, FORMATS, max_steps=100000, rate=RATE)
    proc = run_cli_proc(["connect", "--config", str(config), "--json"])
    seen: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            seen = progress(rec_dir) if rec_dir.exists() else {}
            if seen and min(seen.values()) >= ON_DISK:
                break
            time.sleep(0.3)
    finally:
        proc.kill()  # SIGKILL: no handler, no finally, no flush
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"runner ended on its own ({proc.returncode}):\n{stderr[-3000:]}"
    assert seen and min(seen.values()) >= ON_DISK, f"formats did not reach {ON_DISK} steps on disk: {seen}"
    raw = tmp / "raw"
    shutil.copytree(rec_dir, raw)
    repair = run_cli(["recordings", "repair", str(rec_dir), "--json"])
    assert repair.returncode == 0, repair.stdout + repair.stderr
    truth = Truth(hw, cams)
    executed = sum(1 for c in truth.calls if c == "read_state")
    return {"raw": raw, "fixed": rec_dir, "seen": seen, "truth": truth, "executed": executed,
            "repair": json.loads(repair.stdout)}


def _check_kept(run: dict[str, Any], fmt: str, recovered: int) -> None:
    assert recovered >= run["seen"][fmt], f"{fmt}: {run['seen'][fmt]} steps were on disk, {recovered} after"
    assert recovered >= run["executed"] - MAX_LOSS_S * RATE, f"{fmt}: {recovered} of {run['executed']} steps"


def test_list_and_info_say_interrupted_then_repaired(killed: dict[str, Any]) -> None:
    raw = summarize(killed["raw"])
    assert raw["status"] == "interrupted" and raw["formats"] == FORMATS
    assert raw["steps"] and raw["steps"] >= killed["seen"]["jsonl"]  # read from the JSONL's last line
    details = info(killed["raw"])["details"]
    assert {name: d["state"] for name, d in details.items()} == {f: "interrupted" for f in FORMATS}
    fixed = info(killed["fixed"])
    assert fixed["status"] == "repaired"
    assert {name: d["state"] for name, d in fixed["details"].items()} == {
        "jsonl": "complete", "lerobot": "repaired", "mcap": "complete", "rerun": "complete"
    }
    assert {n: r["status"] for n, r in killed["repair"]["formats"].items()} == {f: "repaired" for f in FORMATS}


def test_jsonl_after_kill9(killed: dict[str, Any]) -> None:
    truth: Truth = killed["truth"]
    steps = jsonl_records(killed["raw"])["step"]  # plain json.loads line by line, a torn line ends it
    _check_kept(killed, "jsonl", len(steps))
    assert [s["step"] for s in steps] == list(range(len(steps)))
    for s in steps:
        np.testing.assert_array_equal(s["state"], truth.state_at(s["t_state"], f"jsonl step {s['step']}"))
        if s["applied"]:
            np.testing.assert_array_equal(s["action"], truth.applied[s["step"]])
        else:  # a held step (stale data or no chunk yet on a loaded machine): nothing was sent
            assert s["action"] is None and s["step"] not in truth.applied
    fixed = jsonl_records(killed["fixed"])
    assert len(fixed["step"]) == len(steps) and fixed["end"][0]["repaired"] is True


def test_lerobot_after_kill9_is_excluded_until_repaired_then_loads(killed: dict[str, Any], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    require_readers()
    raw = killed["raw"] / "lerobot"
    assert not (raw / "meta" / "info.json").exists()  # no loader can mistake it for a finished episode
    assert json.loads((raw / "meta/reflex/recording.json").read_text())["status"] == "recording"
    root = killed["fixed"] / "lerobot"
    status = json.loads((root / "meta/reflex/recording.json").read_text())
    assert status["status"] == "repaired" and status["rows"] == min(status["frames"].values())
    loaded = lerobot_load(root, tmp_path)
    n = loaded["len"]
    _check_kept(killed, "lerobot", n)
    truth: Truth = killed["truth"]
    table = pq.read_table(root / "data/chunk-000/file-000.parquet").to_pydict()
    arrays = loaded["arrays"]
    cams = list(CAMERAS)
    for i in range(n):
        where = f"repaired lerobot item {i}"
        assert arrays["reflex.step"][i] == i
        state = truth.state_at(table["reflex.t_state"][i], where)
        np.testing.assert_array_equal(arrays["observation.state"][i], state.astype(np.float32))
        if arrays["reflex.applied"][i]:
            np.testing.assert_array_equal(arrays["action"][i], truth.applied[i].astype(np.float32))
        else:  # a held step: nothing was sent, and the row says so (NaN action)
            assert i not in truth.applied and np.all(np.isnan(arrays["action"][i]))
        for c, cam in enumerate(cams):
            assert_frame_matches(arrays[f"observation.images.{cam}"][i], CAMERAS[cam],
                                 table["reflex.frame_seq"][i][c], lossy=True, where=f"{where} {cam}")


def test_mcap_after_kill9(killed: dict[str, Any]) -> None:
    from mcap.reader import make_reader

    truth: Truth = killed["truth"]
    raw_topics, error = mcap_messages(killed["raw"] / "mcap" / "session.mcap", seeking=False)
    assert error, "a killed MCAP has no footer: the streaming reader stops at the tear"
    _check_kept(killed, "mcap", len(raw_topics["/reflex/step"]))
    path = killed["fixed"] / "mcap" / "session.mcap"
    topics, _ = mcap_messages(path)  # seeking reader, summary and CRCs
    steps = [d for _, d in topics["/reflex/step"]]
    assert len(steps) == len(raw_topics["/reflex/step"])
    assert [s["step"] for s in steps] == list(range(len(steps)))
    for (_, msg), s in zip(topics["/robot/joint_states"], steps, strict=True):
        np.testing.assert_array_equal([j.position for j in msg.joints],
                                      truth.state_at(s["t_state"], f"mcap step {s['step']}"))
    for cam, code in CAMERAS.items():
        for record, msg in topics[f"/camera/{cam}/image"]:
            assert_frame_matches(decode_jpeg(msg.data), code, record.sequence, lossy=True, where=f"mcap {cam}")
    with path.open("rb") as fh:
        reader = make_reader(fh)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        assert "reflex.session" in {m.name for m in reader.iter_metadata()}


def test_rerun_after_kill9(killed: dict[str, Any]) -> None:
    truth: Truth = killed["truth"]
    raw = killed["raw"] / "rerun" / "session.rrd"
    assert rerun_cli("rrd", "verify", str(raw)).returncode != 0  # no footer yet
    raw_rows = [r for r in rerun_table(raw, complete=False).to_pylist() if r.get("/reflex/step:t_state")]
    _check_kept(killed, "rerun", len(raw_rows))
    path = killed["fixed"] / "rerun" / "session.rrd"
    proc = rerun_cli("rrd", "verify", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [r for r in rerun_table(path).to_pylist() if r.get("/reflex/step:t_state")]
    assert sorted(r["step"] for r in rows) == list(range(len(raw_rows)))
    for r in rows:
        where = f"rerun step {r['step']}"
        state = truth.state_at(r["/reflex/step:t_state"][0], where)
        np.testing.assert_array_equal(r["/robot/state:Scalars:scalars"], state)
        for cam, seq in zip(r["/reflex/step:frame_cameras"] or [], r["/reflex/step:frame_seq"] or [], strict=True):
            blob = r[f"/camera/{cam}:EncodedImage:blob"][0]
            assert_frame_matches(decode_jpeg(bytes(blob)), CAMERAS[cam], seq, lossy=True, where=where)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_finalizes_every_format(tmp_path: Path, sig: signal.Signals) -> None:
    import av
    from mcap.reader import make_reader

    config, rec_dir, _, _ = record_session(tmp_path, FORMATS, max_steps=100000, rate=RATE)
    proc = run_cli_proc(["connect", "--config", str(config), "--json"])

    def signal_after_30_steps() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(1 for _ in read_lines(rec_dir / "jsonl" / "steps.jsonl")) > 30:
                break
            time.sleep(0.2)
        proc.send_signal(sig)

    result, stderr = result_after(proc, signal_after_30_steps)
    assert result["stopReason"] == f"signal:{sig.name}", stderr[-2000:]
    rec = result["recording"]
    steps = result["steps"]
    assert rec["failures"] == [] and rec["unfinished"] == [] and rec["dropped"] == {f: 0 for f in FORMATS}
    assert rec["writtenSteps"] == {f: steps for f in FORMATS}
    assert json.loads((rec_dir / "recording.json").read_text())["status"] == "complete"
    details = info(rec_dir)["details"]
    assert {n: d["state"] for n, d in details.items()} == {f: "complete" for f in FORMATS}
    lerobot = rec_dir / "lerobot"
    assert json.loads((lerobot / "meta/info.json").read_text())["total_frames"] == steps
    for cam in CAMERAS:
        with av.open(str(lerobot / f"videos/observation.images.{cam}/chunk-000/file-000.mp4")) as c:
            assert c.streams.video[0].frames == steps
    with (rec_dir / "mcap" / "session.mcap").open("rb") as fh:
        summary = make_reader(fh).get_summary()
    assert summary is not None and summary.statistics is not None
    by_topic = {ch.topic: summary.statistics.channel_message_counts.get(cid, 0)
                for cid, ch in summary.channels.items()}
    assert by_topic["/reflex/step"] == steps and by_topic["/action/applied"] == steps
    assert rerun_cli("rrd", "verify", str(rec_dir / "rerun" / "session.rrd")).returncode == 0
    end = jsonl_records(rec_dir)["end"][0]
    assert end["counts"]["step"] == steps
