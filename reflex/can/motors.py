"""Damiao motor types: the ranges that scale MIT fields, and each motor's physical peak torque.

PMAX/VMAX/TMAX must equal the motor's own registers 21/22/23, otherwise every command and every
reading is scaled wrong; the driver reads those registers at bring-up and refuses a mismatch.
Sources disagree on DM4340 VMAX (10 vs 8): the table follows the value real YAM feedback decodes
with (10), and :func:`motor_table` lets a config override any entry.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace

KP_RANGE = (0.0, 500.0)
KD_RANGE = (0.0, 5.0)


@dataclass(frozen=True)
class MotorType:
    name: str
    pmax: float  # rad; position field spans [-pmax, pmax]
    vmax: float  # rad/s
    tmax: float  # Nm
    peak_torque: float  # Nm the motor can physically produce (simulator saturation)

    @property
    def position_range(self) -> tuple[float, float]:
        return (-self.pmax, self.pmax)

    @property
    def velocity_range(self) -> tuple[float, float]:
        return (-self.vmax, self.vmax)

    @property
    def torque_range(self) -> tuple[float, float]:
        return (-self.tmax, self.tmax)


BUILTIN_MOTORS: dict[str, MotorType] = {
    m.name: m
    for m in (
        MotorType("DM4310", 12.5, 30.0, 10.0, 7.0),
        MotorType("DM4340", 12.5, 10.0, 28.0, 27.0),
        MotorType("DM3507", 12.5, 50.0, 5.0, 3.0),
        MotorType("DM6248", 12.5, 20.0, 120.0, 120.0),
        MotorType("DM8009", 12.5, 45.0, 54.0, 54.0),
        MotorType("DM4310V", math.pi, 30.0, 10.0, 7.0),
    )
}


def motor_table(overrides: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, MotorType]:
    """The built-in table with per-type overrides (``{"DM4340": {"vmax": 8.0}}``) applied."""
    table = dict(BUILTIN_MOTORS)
    for name, fields in (overrides or {}).items():
        unknown = set(fields) - {"pmax", "vmax", "tmax", "peak_torque"}
        if unknown:
            raise ValueError(f"motor type {name}: unknown range field(s) {sorted(unknown)}")
        base = table.get(name, MotorType(name, 12.5, 30.0, 10.0, 10.0))
        table[name] = replace(
            base,
            pmax=float(fields.get("pmax", base.pmax)),
            vmax=float(fields.get("vmax", base.vmax)),
            tmax=float(fields.get("tmax", base.tmax)),
            peak_torque=float(fields.get("peak_torque", base.peak_torque)),
        )
    return table


def motor_type(name: str, table: Mapping[str, MotorType] | None = None) -> MotorType:
    source = BUILTIN_MOTORS if table is None else table
    try:
        return source[name]
    except KeyError:
        raise ValueError(f"unknown Damiao motor type '{name}'; known: {sorted(source)}") from None
