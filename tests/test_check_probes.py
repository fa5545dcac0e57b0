"""``reflex connect --check`` probes every part read-only and names what is unreachable (exit 3).

Real parts: a python-can virtual bus with simulated Damiao motors, shared memory, a real
connector subprocess, a loopback port nobody listens on. Every wait is bounded by the config."""

from __future__ import annotations

import json
import socket
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import base_session, run_cli, write_session

from reflex.errors import EXIT_SETUP

NAMES = [f"{side}_{joint}" for side in ("left", "right")
         for joint in ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "gripper")]


def check(tmp_path: Path, session: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    proc = run_cli(["connect", str(write_session(tmp_path, session)), "--check", "--json"])
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert lines, proc.stderr
    return proc.returncode, json.loads(lines[-1])


def row(report: dict[str, Any], item: str) -> dict[str, str]:
    """The first row of ``item`` (``target`` has a second row: the fit against the robot)."""
    return next(i for i in report["items"] if i["item"] == item)


def test_everything_reachable_is_ok_and_nothing_moves(tmp_path: Path) -> None:
    from reflex_test_plugins import read_journal

    journal = tmp_path / "j.jsonl"
    session = base_session(mode="apply_actions",
                           hardware={"kind": "reflex_test_plugins:JournalSim", "config": {"journal": str(journal)}},
                           record={"formats": ["jsonl"], "dir": str(tmp_path / "rec")})
    code, report = check(tmp_path, session)
    assert code == 0 and report["ok"], report
    assert [i["item"] for i in report["items"]] == ["config", "target", "hardware", "cameras.top", "target", "record"]
    assert row(report, "cameras.top")["status"] == "ok" and " frame, " in row(report, "cameras.top")["detail"]
    calls = [c["call"] for c in read_journal(journal)]
    assert "connect" in calls and "close" in calls  # connected read-only, then closed
    assert not {"enable", "apply", "safe_stop", "home_start"} & set(calls), calls


def test_missing_can_channel(tmp_path: Path) -> None:
    pytest.importorskip("can")
    bus = f"sim:chk{uuid.uuid4().hex[:6]}"
    missing = f"nocan{uuid.uuid4().hex[:4]}"
    hardware = {"kind": "yam_bimanual", "config": {
        "left": {"channel": bus, "gripper": "linear_4310"},
        "right": {"channel": missing, "gripper": "linear_4310"},
    }}
    session = base_session(target={"kind": "local", "export": "builtin:demo_state_only"}, hardware=hardware,
                           cameras={})
    code, report = check(tmp_path, session)
    assert code == EXIT_SETUP and not report["ok"]
    hw = row(report, "hardware")
    assert hw["status"] == "fail" and missing in hw["detail"], hw


def test_absent_shm_publisher(tmp_path: Path) -> None:
    channel = f"chk{uuid.uuid4().hex[:8]}"
    session = base_session(cameras={"top": {"kind": "shm", "name": channel, "wait_s": 0.2}})
    code, report = check(tmp_path, session)
    assert code == EXIT_SETUP and not report["ok"]
    cam = row(report, "cameras.top")
    assert cam["status"] == "fail" and channel in cam["detail"] and "publish" in cam["detail"], cam
    assert row(report, "hardware")["status"] == "ok"


def test_connector_camera_never_sent(tmp_path: Path) -> None:
    observe = tmp_path / "observe.py"
    observe.write_text("import json, sys\nsys.stdin.read()\nprint(json.dumps({'state': [0.0] * 14}))\n")
    hardware = {"kind": "subprocess", "config": {
        "observe_command": [sys.executable, str(observe)],
        "command_timeout_s": 10.0,
        "state_names": NAMES, "lower": [-3.0] * 14, "upper": [3.0] * 14,
        "cameras": {"top": {"width": 64, "height": 48}},
    }}
    session = base_session(hardware=hardware, cameras={})
    code, report = check(tmp_path, session)
    assert code == EXIT_SETUP and not report["ok"]
    cam = row(report, "cameras.top")
    assert cam["status"] == "fail" and "never sent" in cam["detail"], cam
    assert row(report, "hardware")["status"] == "ok"  # the connector itself answered


def test_remote_target_down(tmp_path: Path) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = {"kind": "http", "url": f"http://127.0.0.1:{port}", "connect_timeout_s": 0.5}
    code, report = check(tmp_path, base_session(target=target))
    assert code == EXIT_SETUP and not report["ok"]
    tgt = row(report, "target")
    assert tgt["status"] == "fail" and "unreachable" in tgt["detail"] and str(port) in tgt["detail"], tgt
    assert row(report, "hardware")["status"] == "ok" and row(report, "cameras.top")["status"] == "ok"


def test_human_rows_name_each_item(tmp_path: Path) -> None:
    channel = f"chk{uuid.uuid4().hex[:8]}"
    session = base_session(cameras={"top": {"kind": "shm", "name": channel, "wait_s": 0.1}})
    proc = run_cli(["connect", str(write_session(tmp_path, session)), "--check"], COLUMNS="80")
    assert proc.returncode == EXIT_SETUP
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("reflex connect --check: FAILED (exit 3)")
    assert "  FAIL cameras.top" in lines and "  ok   target" in lines and "  ok   hardware" in lines
    assert "['" not in proc.stdout
