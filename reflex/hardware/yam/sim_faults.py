"""The faults a ``sim:`` bus's config asks for, armed by the simulator from what it sees on the wire.

The host never schedules them, so the real driver knows nothing of simulated faults.
``after: start`` counts from the bus start; ``after: enable`` from the end of bring-up as the
motors see it: the first enable frame (FC) on the bus or, when the gripper is to be calibrated,
the gripper's first position-control frame (kp > 0) after its calibration pushes (kp = 0): the
driver hands the gripper back to position control once the arm is live and calibrated.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from reflex.can.capture import classify
from reflex.can.codec import unpack_mit_codes
from reflex.can.faults import MotorStatus
from reflex.can.sim.bus import SimMotorBus
from reflex.can.sim.motor import SimMotor
from reflex.hardware.yam.arm import GRIPPER_ID

if TYPE_CHECKING:
    from reflex.hardware.yam.config import SimFault

FrameHook = Callable[[SimMotor, int, bytes, float], None]
_FAULT_CODES = {
    "over_voltage": MotorStatus.OVER_VOLTAGE,
    "under_voltage": MotorStatus.UNDER_VOLTAGE,
    "over_current": MotorStatus.OVER_CURRENT,
    "mos_over_temperature": MotorStatus.MOS_OVER_TEMPERATURE,
    "rotor_over_temperature": MotorStatus.ROTOR_OVER_TEMPERATURE,
    "overload": MotorStatus.OVERLOAD,
}


def arm_faults(sim: SimMotorBus, faults: Sequence[SimFault], gripper_calibrates: bool = False) -> None:
    """Arm ``faults`` (this bus's own) on ``sim``, before it starts. ``gripper_calibrates``: the
    config leaves the gripper's stops to be found at enable (no ``gripper_limits``)."""
    at_start = [f for f in faults if f.after == "start"]
    at_enable = [f for f in faults if f.after == "enable"]
    for fault in at_start:
        _schedule(sim, fault)
    if at_enable:

        def schedule_enable_faults() -> None:
            for fault in at_enable:
                _schedule(sim, fault)

        _on_bring_up_done(sim, gripper_calibrates, schedule_enable_faults)


def _on_bring_up_done(sim: SimMotorBus, gripper_calibrates: bool, then: Callable[[], None]) -> None:
    """Call ``then`` once, on the sim thread, when bring-up ends as the motors see it."""
    phase = "disabled"  # -> "enabled" -> ("pushing" ->) "done"

    def hook(motor: SimMotor, arbitration_id: int, data: bytes, t: float) -> None:
        nonlocal phase
        kind = classify(arbitration_id, data)
        if phase == "disabled" and kind == "enable":
            phase = "enabled" if gripper_calibrates else "done"
        elif phase in ("enabled", "pushing") and arbitration_id == GRIPPER_ID and kind == "mit":
            pushing = unpack_mit_codes(data)[2] == 0  # kp = 0: a calibration push
            if pushing or phase == "pushing":
                phase = "pushing" if pushing else "done"
        else:
            return
        if phase == "done":
            phase = "fired"
            then()

    for motor in sim.motors.values():
        motor.on_frame = _chained(motor.on_frame, hook)


def _chained(first: FrameHook | None, second: FrameHook) -> FrameHook:
    if first is None:
        return second

    def both(motor: SimMotor, arbitration_id: int, data: bytes, t: float) -> None:
        first(motor, arbitration_id, data, t)
        second(motor, arbitration_id, data, t)

    return both


def _schedule(sim: SimMotorBus, fault: SimFault) -> None:
    def fire() -> None:
        motor = sim.motor(fault.joint)
        if fault.kind == "silent":
            motor.silent = True
        elif fault.kind == "drop_replies":
            motor.drop_next_replies += fault.count
        elif fault.kind == "bus_off":
            sim.set_bus_off()
        else:
            motor.inject_fault(_FAULT_CODES[fault.kind], time.monotonic())

    if fault.at_s == 0 and not sim.running:
        fire()
    else:
        sim.call_at(fault.at_s, fire)
