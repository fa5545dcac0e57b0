"""The status nibble of a Damiao feedback frame, decoded into typed states and faults."""

from __future__ import annotations

from enum import IntEnum


class MotorStatus(IntEnum):
    DISABLED = 0x0
    ENABLED = 0x1
    OVER_VOLTAGE = 0x8
    UNDER_VOLTAGE = 0x9
    OVER_CURRENT = 0xA
    MOS_OVER_TEMPERATURE = 0xB
    ROTOR_OVER_TEMPERATURE = 0xC
    LOSS_OF_COMMUNICATION = 0xD
    OVERLOAD = 0xE

    @property
    def is_fault(self) -> bool:
        return self.value >= 0x8

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    MotorStatus.DISABLED: "disabled",
    MotorStatus.ENABLED: "enabled",
    MotorStatus.OVER_VOLTAGE: "over-voltage",
    MotorStatus.UNDER_VOLTAGE: "under-voltage",
    MotorStatus.OVER_CURRENT: "over-current",
    MotorStatus.MOS_OVER_TEMPERATURE: "MOSFET over-temperature",
    MotorStatus.ROTOR_OVER_TEMPERATURE: "rotor over-temperature",
    MotorStatus.LOSS_OF_COMMUNICATION: "loss of communication (motor watchdog expired)",
    MotorStatus.OVERLOAD: "overload",
}

FAULT_CODES = tuple(s for s in MotorStatus if s.is_fault)


def decode_status(nibble: int) -> MotorStatus | int:
    """A known status, or the raw nibble when the motor reports a code no source documents."""
    try:
        return MotorStatus(nibble & 0xF)
    except ValueError:
        return nibble & 0xF


def status_text(status: MotorStatus | int) -> str:
    if isinstance(status, MotorStatus):
        return f"{status.label} (0x{status.value:X})"
    return f"unknown status 0x{status:X}"


def is_fault(status: MotorStatus | int) -> bool:
    """Anything but disabled/enabled is treated as a fault, unknown codes included."""
    return status not in (MotorStatus.DISABLED, MotorStatus.ENABLED)


class MotorError(RuntimeError):
    """A motor problem; ``where`` names the arm, joint and CAN id."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}")


class MotorFault(MotorError):
    """A motor reported a fault status."""

    def __init__(self, where: str, status: MotorStatus | int) -> None:
        self.status = status
        super().__init__(where, f"motor reports {status_text(status)}")


class MotorSilent(MotorError):
    """A motor did not answer within its timeout and retry budget."""
