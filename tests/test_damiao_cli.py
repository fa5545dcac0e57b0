"""``reflex can scan`` / ``reflex can watch``: what they report, and that they are read-only."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli
from typer.testing import CliRunner

from reflex.can.capture import BusCapture, classify
from reflex.can.faults import MotorStatus
from reflex.can.sim.bus import SimMotorBus
from reflex.cli.can import app, parse_ids
from reflex.hardware.yam.sim import yam_sim_motors


def test_scan_reports_every_motor_and_only_reads() -> None:
    motors = yam_sim_motors("linear_3507", seed=2)
    motors[3].registers[9] = 0  # watchdog off: scan warns
    motors[5].inject_fault(MotorStatus.ROTOR_OVER_TEMPERATURE, 0.0)
    with SimMotorBus("sim:cli-scan", motors), BusCapture("sim:cli-scan") as cap:
        out = CliRunner().invoke(app, ["scan", "sim:cli-scan", "--ids", "1-9", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    found = {m["esc_id"]: m for m in report["motors"]}
    assert sorted(found) == [1, 2, 3, 4, 5, 6, 7] and report["missing"] == [8, 9]
    assert [found[i]["motor_type"] for i in range(1, 8)] == ["DM4340"] * 3 + ["DM4310"] * 3 + ["DM3507"]
    assert found[7]["mst_id"] == 0x17 and found[1]["timeout_ms"] == 400.0
    assert found[1]["position"] == pytest.approx(motors[0].reading(), abs=4e-4)
    assert "rotor over-temperature" in found[6]["status"] and found[6]["t_mos"] > 80
    assert any("watchdog off" in p for p in found[4]["problems"])
    kinds = {
        classify(f.arbitration_id, f.data) for f in cap.frames if f.arbitration_id == 0x7FF or f.arbitration_id < 0x10
    }
    assert kinds == {"register_refresh", "register_read"}
    assert not any(m.enabled for m in motors)


def test_watch_prints_live_state_read_only() -> None:
    motors = yam_sim_motors("linear_4310")
    with SimMotorBus("sim:cli-watch", motors), BusCapture("sim:cli-watch") as cap:
        out = CliRunner().invoke(app, ["watch", "sim:cli-watch", "--json", "--duration", "0.5", "--hz", "10"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(x) for x in out.output.splitlines()]
    # how many lines fit in 0.5 s depends on the scheduler: at least one, later ones later in time
    assert lines and len(lines[-1]["motors"]) == 7
    assert [x["t"] for x in lines] == sorted({x["t"] for x in lines})
    assert lines[-1]["motors"][6]["position"] == pytest.approx(motors[6].reading(), abs=4e-4)
    kinds = {
        classify(f.arbitration_id, f.data) for f in cap.frames if f.arbitration_id == 0x7FF or f.arbitration_id < 0x10
    }
    assert kinds == {"register_refresh", "register_read"}


def test_scan_as_a_real_command() -> None:
    proc = run_cli(["can", "scan", "sim:arm"])
    assert proc.returncode == 0, proc.stderr
    assert "sim:arm: 7 motor(s) answered" in proc.stdout and "DM4340" in proc.stdout
    missing = run_cli(["can", "scan", "sim:arm", "--ids", "9"])
    assert missing.returncode == 1 and "no answer from [9]" in missing.stdout
    no_bus = run_cli(["can", "scan", "can_does_not_exist"])
    assert no_bus.returncode == 3 and "cannot open CAN channel 'can_does_not_exist'" in no_bus.stderr


def test_parse_ids() -> None:
    assert parse_ids("1-3,7") == [1, 2, 3, 7]
    assert parse_ids("0x10") == [16]
    with pytest.raises(Exception, match="--ids"):
        parse_ids("a-b")
