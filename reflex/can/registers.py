"""Damiao registers reachable through the register service on CAN id 0x7FF.

Values travel as 4 little-endian bytes: a float32 or a uint32 depending on the register.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

REGISTER_SERVICE_ID = 0x7FF


class RegisterCmd(IntEnum):
    READ = 0x33
    WRITE = 0x55
    STORE = 0xAA  # save all parameters to flash
    REFRESH = 0xCC  # answer with a normal feedback frame; nothing changes


@dataclass(frozen=True)
class Register:
    rid: int
    name: str
    kind: Literal["float", "uint"]
    doc: str


REGISTERS: dict[int, Register] = {
    r.rid: r
    for r in (
        Register(0, "UV_Value", "float", "under-voltage threshold (V)"),
        Register(1, "KT_Value", "float", "torque constant"),
        Register(2, "OT_Value", "float", "over-temperature threshold (degC)"),
        Register(3, "OC_Value", "float", "over-current threshold"),
        Register(7, "MST_ID", "uint", "CAN id the motor replies on"),
        Register(8, "ESC_ID", "uint", "CAN id the motor listens on"),
        Register(9, "TIMEOUT", "uint", "watchdog, units of 50 us; 0 = off"),
        Register(10, "CTRL_MODE", "uint", "1 MIT, 2 position-velocity, 3 velocity, 4 force-position"),
        Register(14, "sw_ver", "uint", "firmware version"),
        Register(21, "PMAX", "float", "position range of MIT fields (rad)"),
        Register(22, "VMAX", "float", "velocity range of MIT fields (rad/s)"),
        Register(23, "TMAX", "float", "torque range of MIT fields (Nm)"),
        Register(29, "OV_Value", "float", "over-voltage threshold (V)"),
        Register(35, "can_br", "uint", "bitrate code: 0-4 classic 125k..1M, 5-9 CAN FD"),
    )
}
BY_NAME = {r.name: r for r in REGISTERS.values()}

RID_MST_ID = 7
RID_ESC_ID = 8
RID_TIMEOUT = 9
RID_CTRL_MODE = 10
RID_PMAX, RID_VMAX, RID_TMAX = 21, 22, 23
CTRL_MODE_MIT = 1
TIMEOUT_UNIT_S = 50e-6
YAM_TIMEOUT = 8000  # 8000 x 50 us = 400 ms, as YAM ships


def register(rid: int) -> Register:
    try:
        return REGISTERS[rid]
    except KeyError:
        raise ValueError(f"unknown Damiao register {rid}; known: {sorted(REGISTERS)}") from None


def encode_value(rid: int, value: float | int) -> bytes:
    if register(rid).kind == "float":
        return struct.pack("<f", float(value))
    as_int = int(value)
    if as_int != value or not 0 <= as_int <= 0xFFFFFFFF:
        raise ValueError(f"register {rid} ({register(rid).name}) takes a uint32, got {value!r}")
    return struct.pack("<I", as_int)


def decode_value(rid: int, raw: bytes) -> float | int:
    if len(raw) != 4:
        raise ValueError(f"a register value is 4 bytes, got {len(raw)}")
    if register(rid).kind == "float":
        return float(struct.unpack("<f", raw)[0])
    return int(struct.unpack("<I", raw)[0])
