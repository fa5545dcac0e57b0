"""``reflex doctor``: every check reports what it found; a failing one names the fix; exit 0/1."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from conftest import base_session, run_cli, write_session

STATUSES = {"pass", "fail", "warn", "info"}


def doctor_json(*args: str) -> tuple[int, dict[str, Any]]:
    proc = run_cli(["doctor", *args, "--json"])
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def assert_well_formed(code: int, report: dict[str, Any]) -> dict[str, dict[str, str]]:
    checks = {c["id"]: c for c in report["checks"]}
    assert len(checks) == len(report["checks"])  # ids are unique
    for c in report["checks"]:
        assert c["status"] in STATUSES and c["found"] and c["name"], c
        if c["status"] == "fail":
            assert c["fix"], c  # a failing check always names the fix
    failed = [c["id"] for c in report["checks"] if c["status"] == "fail"]
    assert report["failed"] == failed
    assert code == report["exitCode"] == (1 if failed else 0)
    assert report["ok"] is (not failed)
    return checks


def test_doctor_json_without_a_config() -> None:
    code, report = doctor_json()
    checks = assert_well_formed(code, report)
    for wanted in ("python", "packages", "ort", "shm", "video", "clock", "extra.can", "extra.rerun", "extra.gpu"):
        assert wanted in checks, sorted(checks)
    assert any(i.startswith("can") for i in checks)
    assert checks["python"]["status"] == "pass" and "Python 3." in checks["python"]["found"]
    assert "CPU" in checks["ort"]["found"]
    assert not any(i.startswith("session.") for i in checks) and report["config"] is None


def test_doctor_json_with_a_config_runs_the_check(tmp_path: Path) -> None:
    config = write_session(tmp_path, base_session(record={"enabled": False}))
    code, report = doctor_json(str(config))
    checks = assert_well_formed(code, report)
    assert report["config"] == str(config)
    for item in ("session.config", "session.target", "session.hardware", "session.cameras.top"):
        assert checks[item]["status"] == "pass", checks[item]


def test_doctor_names_the_fix_for_a_missing_can_channel_and_an_absent_publisher(tmp_path: Path) -> None:
    pytest.importorskip("can")
    missing = f"nocan{uuid.uuid4().hex[:4]}"
    channel = f"doc{uuid.uuid4().hex[:8]}"
    hardware = {"kind": "yam_bimanual", "config": {
        "left": {"channel": f"sim:doc{uuid.uuid4().hex[:6]}", "gripper": "linear_4310"},
        "right": {"channel": missing, "gripper": "linear_4310"},
    }}
    session = base_session(target={"kind": "local", "export": "builtin:demo_state_only"}, hardware=hardware,
                           cameras={"top": {"kind": "shm", "name": channel, "wait_s": 0.1}})
    code, report = doctor_json("-c", str(write_session(tmp_path, session)))
    checks = assert_well_formed(code, report)
    assert code == 1
    can = checks[f"can.{missing}"]
    assert can["status"] == "fail" and f"ip link set {missing} up" in can["fix"]
    assert checks["session.hardware"]["status"] == "fail" and missing in checks["session.hardware"]["found"]
    cam = checks["session.cameras.top"]
    assert cam["status"] == "fail" and f"reflex camera publish {channel}" in cam["fix"]


def test_doctor_with_a_bad_config_fails_with_the_yaml_path(tmp_path: Path) -> None:
    config = write_session(tmp_path, base_session(safety={"max_delat": 0.1}))
    code, report = doctor_json(str(config))
    checks = assert_well_formed(code, report)
    assert code == 1 and "did you mean 'max_delta'" in checks["session.config"]["found"]


def test_can_rows_from_the_kernel_interface_list() -> None:
    from reflex.doctor import check_can

    present = {"can0": {"up": True, "bitrate": 1000000}, "can1": {"up": False, "bitrate": None}}
    rows = {c.id: c for c in check_can(["can1", "can7"], present)}
    assert rows["can.can0"].status == "pass" and "1000000 bit/s" in rows["can.can0"].found
    assert rows["can.can1"].status == "fail" and "sudo ip link set can1 up" in rows["can.can1"].fix
    assert rows["can.can7"].status == "fail" and "not present" in rows["can.can7"].found
    # an interface nobody asked for that is down is only a warning
    assert check_can([], {"can3": {"up": False, "bitrate": None}})[0].status == "warn"


def test_human_output_lists_fixes() -> None:
    proc = run_cli(["doctor"], COLUMNS="80")
    assert proc.returncode in (0, 1)
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("reflex doctor: ")
    assert "Python version" in proc.stdout and "/dev/shm" in proc.stdout


def test_realtime_row_says_whether_the_loop_may_run_sched_fifo(tmp_path: Path) -> None:
    import os
    import sys

    from reflex.config.loop import RealtimeConfig
    from reflex.doctor import check_realtime

    if not sys.platform.startswith("linux"):
        assert check_realtime().status == "info"
        return
    missing = max(os.sched_getaffinity(0)) + 1000  # a real refusal: a CPU this process may not use
    refused = check_realtime(RealtimeConfig(cpu=missing))
    assert refused.status == "warn" and f"CPU {missing}" in refused.found and "CAP_SYS_NICE" in refused.fix
    assert check_realtime(RealtimeConfig(cpu=missing, required=True)).status == "fail"
    # a session file asking for it: its own settings are what the doctor tries
    config = write_session(tmp_path, base_session(record={"enabled": False},
                                                  loop={"realtime": {"cpu": missing, "required": True}}))
    code, report = doctor_json(str(config))
    checks = assert_well_formed(code, report)
    assert checks["realtime"]["status"] == "fail" and "realtime" in report["failed"] and code == 1
    before = (os.sched_getscheduler(0), os.sched_getaffinity(0))
    plain = check_realtime()
    assert plain.status == "info" and ("allowed" in plain.found or "not allowed" in plain.found)
    assert (os.sched_getscheduler(0), os.sched_getaffinity(0)) == before  # tried, then undone
