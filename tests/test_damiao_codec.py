"""Damiao MIT codec: exact codes at range edges, byte layout, special and register frames."""

from __future__ import annotations

import math
import struct

import pytest

from reflex.can.bus import bus_load, check_bus_load, max_rate_hz
from reflex.can.codec import (
    MitCommand,
    Special,
    decode_feedback,
    float_to_uint,
    mit_codes,
    pack_feedback,
    pack_mit,
    parse_register_message,
    parse_special,
    refresh_request,
    register_request,
    reply_id,
    special_frame,
    uint_to_float,
    unpack_mit,
    unpack_mit_codes,
)
from reflex.can.faults import FAULT_CODES, MotorStatus, decode_status, is_fault, status_text
from reflex.can.motors import BUILTIN_MOTORS, KD_RANGE, KP_RANGE, motor_table, motor_type
from reflex.can.registers import RegisterCmd, decode_value, encode_value

TYPES = ["DM4310", "DM4340", "DM3507"]


def test_worked_example_dm4340_hold_frame() -> None:
    # p=0, v=0, kp=80, kd=5, tau=0 on a DM4340 (research notes 1.4)
    data = pack_mit(MitCommand(0.0, 0.0, 80.0, 5.0, 0.0), motor_type("DM4340"))
    assert data == bytes.fromhex("7FFF7FF28FFFF7FF")


@pytest.mark.parametrize("name", TYPES)
def test_command_codes_at_range_edges_are_exact(name: str) -> None:
    mt = motor_type(name)
    lo = MitCommand(-mt.pmax, -mt.vmax, KP_RANGE[0], KD_RANGE[0], -mt.tmax)
    hi = MitCommand(mt.pmax, mt.vmax, KP_RANGE[1], KD_RANGE[1], mt.tmax)
    zero = MitCommand(0.0, 0.0, 0.0, 0.0, 0.0)
    assert mit_codes(lo, mt) == (0, 0, 0, 0, 0)
    assert mit_codes(hi, mt) == (65535, 4095, 4095, 4095, 4095)
    # truncation puts zero on the mid code, not the rounded one
    assert mit_codes(zero, mt) == (32767, 2047, 0, 0, 2047)
    assert pack_mit(lo, mt) == bytes(8)
    assert pack_mit(hi, mt) == b"\xff" * 8
    # out of range clamps silently to the edge codes
    beyond = MitCommand(mt.pmax * 3, -mt.vmax * 3, 900.0, -1.0, mt.tmax * 2)
    assert mit_codes(beyond, mt) == (65535, 0, 4095, 0, 4095)


@pytest.mark.parametrize("name", TYPES)
def test_command_round_trip_loses_at_most_one_step(name: str) -> None:
    mt = motor_type(name)
    for frac in (-1.0, -0.73, -0.5, -1e-6, 0.0, 1e-6, 0.31, 0.5, 0.999, 1.0):
        cmd = MitCommand(frac * mt.pmax, frac * mt.vmax, (frac + 1) * 250, (frac + 1) * 2.5, frac * mt.tmax)
        back = unpack_mit(pack_mit(cmd, mt), mt)
        steps = (2 * mt.pmax / 65535, 2 * mt.vmax / 4095, 500 / 4095, 5 / 4095, 2 * mt.tmax / 4095)
        pairs = zip(
            (cmd.position, cmd.velocity, cmd.kp, cmd.kd, cmd.torque),
            (back.position, back.velocity, back.kp, back.kd, back.torque),
            steps,
            strict=True,
        )
        for sent, got, step in pairs:
            assert sent - step - 1e-9 <= got <= sent + 1e-9  # truncation: never above the value sent
        assert unpack_mit_codes(pack_mit(cmd, mt)) == mit_codes(cmd, mt)


@pytest.mark.parametrize("name", TYPES)
def test_feedback_round_trip_and_edges(name: str) -> None:
    mt = motor_type(name)
    data = pack_feedback(5, MotorStatus.ENABLED, mt.pmax, -mt.vmax, mt.tmax, 41, 39, mt)
    assert data == bytes((0x15, 0xFF, 0xFF, 0x00, 0x0F, 0xFF, 41, 39))
    fb = decode_feedback(data, mt)
    assert (fb.id_nibble, fb.status, fb.t_mos, fb.t_rotor) == (5, MotorStatus.ENABLED, 41, 39)
    assert fb.position == mt.pmax and fb.velocity == -mt.vmax and fb.torque == mt.tmax
    mid = decode_feedback(pack_feedback(1, 0, 0.0, 0.0, 0.0, 30, 30, mt), mt)
    assert mid.position == pytest.approx(-12.5 / 65535) and mid.position < 0
    assert mid.velocity == pytest.approx(-mt.vmax / 4095) and mid.velocity < 0


def test_real_yam_feedback_values_decode_with_i2rt_ranges() -> None:
    # values logged from a real YAM DM4340 (i2rt issue 17): mid codes and torque code 2048
    mt = motor_type("DM4340")
    assert uint_to_float(32767, -12.5, 12.5, 16) == pytest.approx(-1.907e-4, abs=1e-7)
    assert uint_to_float(2047, -mt.vmax, mt.vmax, 12) == pytest.approx(-0.002442, abs=1e-6)
    assert uint_to_float(2048, -mt.tmax, mt.tmax, 12) == pytest.approx(0.006838, abs=1e-6)


def test_nan_is_refused_not_encoded() -> None:
    with pytest.raises(ValueError, match="NaN"):
        float_to_uint(math.nan, -1, 1, 12)


def test_special_frames_are_exact_bytes() -> None:
    assert special_frame(Special.ENABLE).hex() == "fffffffffffffffc"
    assert special_frame(Special.DISABLE).hex() == "fffffffffffffffd"
    assert special_frame(Special.SET_ZERO).hex() == "fffffffffffffffe"
    assert special_frame(Special.CLEAR_ERROR).hex() == "fffffffffffffffb"
    for s in Special:
        assert parse_special(special_frame(s)) is s
    assert parse_special(pack_mit(MitCommand(0, 0, 0, 0, 0), motor_type("DM4310"))) is None
    assert parse_special(b"\xff" * 7 + b"\xf0") is None  # not a documented command
    assert parse_special(b"\xff" * 6) is None


def test_register_frames() -> None:
    assert refresh_request(0x07) == bytes((0x07, 0x00, 0xCC, 0x00, 0, 0, 0, 0))
    write = register_request(0x104, RegisterCmd.WRITE, 9, encode_value(9, 8000))
    assert write == bytes((0x04, 0x01, 0x55, 9)) + struct.pack("<I", 8000)
    msg = parse_register_message(write)
    assert msg is not None and (msg.esc_id, msg.cmd, msg.rid) == (0x104, RegisterCmd.WRITE, 9)
    assert decode_value(9, msg.value) == 8000
    assert decode_value(21, encode_value(21, 12.5)) == 12.5
    with pytest.raises(ValueError, match="uint32"):
        encode_value(9, 1.5)
    with pytest.raises(ValueError, match="unknown Damiao register"):
        encode_value(99, 1)
    assert parse_register_message(bytes((1, 0, 0x12, 0, 0, 0, 0, 0))) is None
    assert reply_id(0x07) == 0x17


def test_status_nibbles_decode_to_typed_faults() -> None:
    assert decode_status(0x0) is MotorStatus.DISABLED and not is_fault(MotorStatus.DISABLED)
    assert decode_status(0x1) is MotorStatus.ENABLED and not is_fault(MotorStatus.ENABLED)
    assert [int(c) for c in FAULT_CODES] == [0x8, 0x9, 0xA, 0xB, 0xC, 0xD, 0xE]
    assert all(is_fault(c) for c in FAULT_CODES)
    assert "loss of communication" in status_text(MotorStatus(0xD))
    assert "over-temperature" in status_text(decode_status(0xB))
    assert decode_status(0x5) == 5 and is_fault(5) and "unknown status 0x5" in status_text(5)


def test_motor_table_and_overrides() -> None:
    assert {n: (m.pmax, m.vmax, m.tmax) for n, m in BUILTIN_MOTORS.items() if n in TYPES} == {
        "DM4310": (12.5, 30.0, 10.0),
        "DM4340": (12.5, 10.0, 28.0),
        "DM3507": (12.5, 50.0, 5.0),
    }
    table = motor_table({"DM4340": {"vmax": 8.0}})
    assert table["DM4340"].vmax == 8.0 and table["DM4340"].tmax == 28.0
    assert BUILTIN_MOTORS["DM4340"].vmax == 10.0
    with pytest.raises(ValueError, match="unknown range field"):
        motor_table({"DM4340": {"kmax": 1.0}})
    with pytest.raises(ValueError, match="unknown Damiao motor type"):
        motor_type("DM9999")


def test_bus_load_limits_the_rate() -> None:
    # 7 motors x 2 frames x 130 bits at 250 Hz = 45.5 % of 1 Mbit/s
    assert bus_load(250, 14) == pytest.approx(0.455)
    assert max_rate_hz(14) == pytest.approx(499.5, abs=0.1)
    assert check_bus_load(400, 7) == pytest.approx(0.728)
    with pytest.raises(ValueError, match="at most 500 Hz"):
        check_bus_load(550, 7)
