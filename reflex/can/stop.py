"""What a safe stop sends, phase by phase: a pure function of the time since the stop began.

An arm without brakes falls when its motors stop making torque, so the stop keeps supporting
it. While the arm is controlled, the chain averages each joint's spring part of the MIT law,
``kp * (p_cmd - measured) + t_ff``, over ``SUPPORT_TAU_S``, in the cycles joint and command rest:
what holds it against gravity (motion transients and friction in motion are left out). At the
first stop cycle that average, clipped to what the command's error band allowed, becomes the
joint's *support torque*. Then:

* ``hold``: the measured pose at ``hold_stiffness * kp`` with the joint's kd, plus the support
  torque, for ``hold_s``; then ``damp``.
* ``damp``: kp = 0, velocity damping ``damp_kd`` (default: the joint's kd), plus the support
  torque, for ``damp_s``: the joint stays where it is unless pushed, and moves only as fast as
  the damping lets the difference between load and support move it. Then disable.
* ``disable``: the measured pose with the stiffness ramping to zero over ``ramp_s``, no
  support, then disable (the arm falls if gravity loads it: explicit opt-in only).

The last phase always disables every motor; a further Ctrl-C (or :meth:`StopPlan.cut`) jumps
there at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reflex.can.codec import MitCommand
from reflex.can.shaping import JointControl

StopMode = Literal["hold", "damp", "disable"]
Phase = Literal["hold", "damp", "ramp", "disable"]


@dataclass(frozen=True)
class StopPlan:
    mode: StopMode = "hold"
    hold_s: float = 1.0
    hold_stiffness: float = 0.3  # fraction of each joint's kp while holding
    damp_s: float = 2.0
    damp_kd: float | None = None  # None: each joint's own kd
    ramp_s: float = 0.3  # mode disable: stiffness ramp before the disable frames

    @property
    def duration_s(self) -> float:
        """Time from the first stop frame to the first disable frame."""
        if self.mode == "hold":
            return self.hold_s + self.damp_s
        if self.mode == "damp":
            return self.damp_s
        return self.ramp_s

    def phase(self, elapsed: float) -> Phase:
        if elapsed >= self.duration_s:
            return "disable"
        if self.mode == "disable":
            return "ramp"
        if self.mode == "hold" and elapsed < self.hold_s:
            return "hold"
        return "damp"

    def command(self, elapsed: float, c: JointControl, pose: float, support: float) -> MitCommand | None:
        """The frame for one joint ``elapsed`` seconds into the stop; None: disable now."""
        phase = self.phase(elapsed)
        if phase == "hold":
            return MitCommand(pose, 0.0, c.kp * self.hold_stiffness, c.kd, support)
        if phase == "damp":
            return MitCommand(pose, 0.0, 0.0, c.kd if self.damp_kd is None else self.damp_kd, support)
        if phase == "ramp":
            scale = 1.0 - elapsed / self.ramp_s if self.ramp_s > 0 else 0.0
            return MitCommand(pose, 0.0, c.kp * scale, c.kd, 0.0)
        return None


SUPPORT_TAU_S = 0.1  # averaging time of the support estimate
SUPPORT_STILL_RAD_S = 0.05  # only a joint (and its command) at rest updates it: the spring holds the load alone


def spring_torque(c: JointControl, command: float, measured: float, torque_ff: float) -> float:
    """The spring part of an MIT command: ``kp * (p_cmd - measured) + t_ff``."""
    return c.kp * (command - measured) + torque_ff


def support_torque(c: JointControl, average_spring: float) -> float:
    """The torque a stop keeps applying to this joint: the averaged spring part (what held the
    joint against its load), clipped to what the command's error band allowed; 0 for joints that
    carry no load worth holding (grippers)."""
    if not c.support_on_stop or c.kp <= 0:
        return 0.0
    cap = c.kp * c.max_error
    return max(-cap, min(cap, average_spring))
