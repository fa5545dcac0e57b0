"""Damiao MIT-mode frames, bit for bit.

* MIT command (to ``ESC_ID``): p 16 bits, v 12, kp 12, kd 12, t_ff 12, packed big-endian.
* Feedback (from ``MST_ID``): D0 = status << 4 | id & 0xF, then p 16, v 12, torque 12, MOSFET and
  rotor temperature in whole degC.
* Floats map to codes by clamping then truncating: ``u = trunc((x - lo) * (2^N - 1) / (hi - lo))``;
  zero therefore lands on the mid code, which decodes to a small negative number.
* Special frames (enable, disable, set zero, clear error) are ``FF x7`` plus one command byte.
* The register service on 0x7FF carries ``[id_L, id_H, CMD, RID, v0..v3]``; replies echo it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

from reflex.can.faults import MotorStatus, decode_status
from reflex.can.motors import KD_RANGE, KP_RANGE, MotorType
from reflex.can.registers import REGISTER_SERVICE_ID, RegisterCmd

FRAME_LEN = 8
REPLY_OFFSET = 0x10  # YAM (and the Damiao recommendation): MST_ID = ESC_ID + 0x10


def reply_id(esc_id: int) -> int:
    return esc_id + REPLY_OFFSET


# ------------------------------------------------------------------------------------ scalars
def float_to_uint(x: float, lo: float, hi: float, bits: int) -> int:
    """Clamp to [lo, hi], then truncate (not round), exactly like the motor firmware's host code."""
    if math.isnan(x):
        raise ValueError("cannot encode NaN into a motor command")
    x = min(max(x, lo), hi)
    top = (1 << bits) - 1
    code = int((x - lo) * top / (hi - lo))
    return min(max(code, 0), top)


def uint_to_float(code: int, lo: float, hi: float, bits: int) -> float:
    return lo + code * (hi - lo) / ((1 << bits) - 1)


# ------------------------------------------------------------------------------------ MIT command
@dataclass(frozen=True)
class MitCommand:
    position: float
    velocity: float
    kp: float
    kd: float
    torque: float


def mit_codes(cmd: MitCommand, mt: MotorType) -> tuple[int, int, int, int, int]:
    return (
        float_to_uint(cmd.position, -mt.pmax, mt.pmax, 16),
        float_to_uint(cmd.velocity, -mt.vmax, mt.vmax, 12),
        float_to_uint(cmd.kp, *KP_RANGE, 12),
        float_to_uint(cmd.kd, *KD_RANGE, 12),
        float_to_uint(cmd.torque, -mt.tmax, mt.tmax, 12),
    )


def pack_mit(cmd: MitCommand, mt: MotorType) -> bytes:
    p, v, kp, kd, t = mit_codes(cmd, mt)
    return bytes(
        (
            p >> 8,
            p & 0xFF,
            v >> 4,
            ((v & 0xF) << 4) | (kp >> 8),
            kp & 0xFF,
            kd >> 4,
            ((kd & 0xF) << 4) | (t >> 8),
            t & 0xFF,
        )
    )


def unpack_mit_codes(data: bytes) -> tuple[int, int, int, int, int]:
    _check_len(data)
    p = (data[0] << 8) | data[1]
    v = (data[2] << 4) | (data[3] >> 4)
    kp = ((data[3] & 0xF) << 8) | data[4]
    kd = (data[5] << 4) | (data[6] >> 4)
    t = ((data[6] & 0xF) << 8) | data[7]
    return p, v, kp, kd, t


def unpack_mit(data: bytes, mt: MotorType) -> MitCommand:
    """What the motor understands from a command frame (the simulator's side)."""
    p, v, kp, kd, t = unpack_mit_codes(data)
    return MitCommand(
        uint_to_float(p, -mt.pmax, mt.pmax, 16),
        uint_to_float(v, -mt.vmax, mt.vmax, 12),
        uint_to_float(kp, *KP_RANGE, 12),
        uint_to_float(kd, *KD_RANGE, 12),
        uint_to_float(t, -mt.tmax, mt.tmax, 12),
    )


# ------------------------------------------------------------------------------------ feedback
@dataclass(frozen=True)
class Feedback:
    id_nibble: int
    status: MotorStatus | int
    position: float
    velocity: float
    torque: float
    t_mos: int  # degC
    t_rotor: int  # degC


def pack_feedback(
    esc_id: int,
    status: int,
    position: float,
    velocity: float,
    torque: float,
    t_mos: int,
    t_rotor: int,
    mt: MotorType,
) -> bytes:
    p = float_to_uint(position, -mt.pmax, mt.pmax, 16)
    v = float_to_uint(velocity, -mt.vmax, mt.vmax, 12)
    t = float_to_uint(torque, -mt.tmax, mt.tmax, 12)
    return bytes(
        (
            ((status & 0xF) << 4) | (esc_id & 0xF),
            p >> 8,
            p & 0xFF,
            v >> 4,
            ((v & 0xF) << 4) | (t >> 8),
            t & 0xFF,
            min(max(int(t_mos), 0), 255),
            min(max(int(t_rotor), 0), 255),
        )
    )


def decode_feedback(data: bytes, mt: MotorType) -> Feedback:
    _check_len(data)
    p = (data[1] << 8) | data[2]
    v = (data[3] << 4) | (data[4] >> 4)
    t = ((data[4] & 0xF) << 8) | data[5]
    return Feedback(
        id_nibble=data[0] & 0xF,
        status=decode_status(data[0] >> 4),
        position=uint_to_float(p, -mt.pmax, mt.pmax, 16),
        velocity=uint_to_float(v, -mt.vmax, mt.vmax, 12),
        torque=uint_to_float(t, -mt.tmax, mt.tmax, 12),
        t_mos=data[6],
        t_rotor=data[7],
    )


# ------------------------------------------------------------------------------------ special
class Special(IntEnum):
    ENABLE = 0xFC
    DISABLE = 0xFD
    SET_ZERO = 0xFE
    CLEAR_ERROR = 0xFB


_SPECIAL_PREFIX = b"\xff" * 7


def special_frame(cmd: Special) -> bytes:
    return _SPECIAL_PREFIX + bytes((int(cmd),))


def parse_special(data: bytes) -> Special | None:
    """The special command in a frame to ``ESC_ID``, or None for an MIT command."""
    if len(data) == FRAME_LEN and data[:7] == _SPECIAL_PREFIX:
        try:
            return Special(data[7])
        except ValueError:
            return None
    return None


# ------------------------------------------------------------------------------------ registers
def register_request(esc_id: int, cmd: RegisterCmd, rid: int = 0, value: bytes = b"\0\0\0\0") -> bytes:
    """A frame for id 0x7FF: ``[id_L, id_H, CMD, RID, v0..v3]``."""
    if len(value) != 4:
        raise ValueError("a register value is 4 bytes")
    return bytes((esc_id & 0xFF, (esc_id >> 8) & 0xFF, int(cmd), rid & 0xFF)) + value


def refresh_request(esc_id: int) -> bytes:
    """Read-only state poll: the motor answers with a feedback frame and changes nothing."""
    return register_request(esc_id, RegisterCmd.REFRESH)


@dataclass(frozen=True)
class RegisterMessage:
    esc_id: int
    cmd: RegisterCmd
    rid: int
    value: bytes


def parse_register_message(data: bytes) -> RegisterMessage | None:
    """A register request (on 0x7FF) or its echoed reply (on MST_ID); None if it is neither."""
    if len(data) != FRAME_LEN:
        return None
    try:
        cmd = RegisterCmd(data[2])
    except ValueError:
        return None
    return RegisterMessage(data[0] | (data[1] << 8), cmd, data[3], bytes(data[4:8]))


def _check_len(data: bytes) -> None:
    if len(data) != FRAME_LEN:
        raise ValueError(f"a Damiao frame has 8 data bytes, got {len(data)}")


__all__ = [
    "FRAME_LEN",
    "REGISTER_SERVICE_ID",
    "Feedback",
    "MitCommand",
    "RegisterMessage",
    "Special",
    "decode_feedback",
    "float_to_uint",
    "mit_codes",
    "pack_feedback",
    "pack_mit",
    "parse_register_message",
    "parse_special",
    "refresh_request",
    "register_request",
    "reply_id",
    "special_frame",
    "uint_to_float",
    "unpack_mit",
    "unpack_mit_codes",
]
