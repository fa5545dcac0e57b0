"""``reflex recordings list / info / repair`` on real recordings, as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyarrow")
pytest.importorskip("mcap_protobuf")

from conftest import run_cli, subprocess_env
from test_record_support import jsonl_records, record_session

from reflex.runtime.session import run_session_file

FORMATS = ["jsonl", "lerobot", "mcap"]
STEPS = 20


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("cli")
    root = tmp / "recordings"
    config, _, _, _ = record_session(tmp, FORMATS, max_steps=STEPS,
                                     record={"enabled": True, "formats": FORMATS})
    mp = pytest.MonkeyPatch()
    mp.setenv("REFLEX_RECORDINGS_DIR", str(root))
    try:
        result = run_session_file(config)
    finally:
        mp.undo()
    assert result.ok and result.recording is not None, result.errors
    return {"root": root, "path": Path(result.recording["path"]), "result": result}


def test_list_shows_when_how_long_formats_and_drops(recorded: dict[str, Any]) -> None:
    proc = run_cli(["recordings", "list", "--json"], REFLEX_RECORDINGS_DIR=str(recorded["root"]))
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    assert listing["root"] == str(recorded["root"])
    [row] = listing["recordings"]
    assert row["path"] == str(recorded["path"]) and row["sessionId"] == recorded["result"].session_id
    assert row["status"] == "complete" and row["steps"] == STEPS and row["formats"] == FORMATS
    assert row["dropped"] == {f: 0 for f in FORMATS}
    # the span of the recorded ticks plus one period (at least STEPS periods: a tick never comes early)
    ticks = [s["t_tick"] for s in jsonl_records(recorded["path"])["step"]]
    assert row["durationS"] == pytest.approx(ticks[-1] - ticks[0] + 1 / 30, abs=1e-5)
    assert row["durationS"] >= STEPS / 30 - 1e-5
    assert row["started"].endswith("Z")
    assert row["sizeBytes"] > 0 and row["task"] == "stack the red cube"
    human = run_cli(["recordings", "list", str(recorded["root"])], COLUMNS="200")
    assert human.returncode == 0 and recorded["result"].session_id in human.stdout and "complete" in human.stdout


def test_info_opens_every_format(recorded: dict[str, Any]) -> None:
    proc = run_cli(["recordings", "info", str(recorded["path"]), "--json"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    details = data["details"]
    assert {n: d["state"] for n, d in details.items()} == {f: "complete" for f in FORMATS}
    assert details["jsonl"]["lines"]["step"] == STEPS
    assert details["lerobot"]["rows"] == STEPS and details["lerobot"]["fps"] == 30
    assert details["mcap"]["messages"]["/reflex/step"] == STEPS
    assert all(details[f]["dropped"] == 0 and details[f]["written_steps"] == STEPS for f in FORMATS)
    header = json.loads((recorded["path"] / "jsonl/steps.jsonl").read_text().splitlines()[0])
    assert data["configHash"] == header["config_hash"] and data["seed"] == header["target"]["seed"]
    assert data["modelHash"] == header["target"]["model_hash"]
    human = run_cli(["recordings", "info", str(recorded["path"])], COLUMNS="200")
    assert human.returncode == 0 and "lerobot  complete" in human.stdout


def test_repair_leaves_a_finished_recording_alone(recorded: dict[str, Any]) -> None:
    before = {p: p.stat().st_mtime_ns for p in recorded["path"].rglob("*") if p.is_file()}
    proc = run_cli(["recordings", "repair", str(recorded["path"]), "--json"])
    assert proc.returncode == 0, proc.stderr
    assert {n: r["status"] for n, r in json.loads(proc.stdout)["formats"].items()} == {
        f: "complete" for f in FORMATS
    }
    assert {p: p.stat().st_mtime_ns for p in recorded["path"].rglob("*") if p.is_file()} == before


def test_bad_paths_are_usage_errors(tmp_path: Path) -> None:
    proc = run_cli(["recordings", "info", str(tmp_path / "nope")])
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    empty = run_cli(["recordings", "list", str(tmp_path), "--json"])
    assert empty.returncode == 0 and json.loads(empty.stdout)["recordings"] == []


def test_the_cli_stays_light() -> None:
    code = ("import sys, reflex.cli.app; heavy = [m for m in ('pyarrow', 'av', 'mcap', 'rerun', 'torch') "
            "if m in sys.modules]; print(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr
