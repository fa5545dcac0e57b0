"""The control law's command shaping: a pure function from (limits, previous command, target,
measurement, dt) to the next commanded position and velocity of one joint.

Every command it returns satisfies, in this order of priority:

1. the error band: ``|p - measured| <= band`` (bounds the torque a bad target can ask for;
   the band shrinks to ``stall_error`` for a stalled gripper);
2. position limits: ``lower <= p <= upper``, or, for a joint that starts outside them (bring-up
   next to a limit), never further outside than it already was: it slews back in, never jumps;
3. speed: ``|p - p_prev| <= max_speed * dt``;
4. acceleration: ``|v - v_prev| <= max_accel * dt``, unless the error band forces a change
   (the measurement was pushed away): then the band wins, and ``banded`` says so. Speed is
   capped so the acceleration limit can always stop the command at the target and the limits;
5. jerk (optional): ``|a - a_prev| <= max_jerk * dt`` while speeding up or cruising, as long as
   it leaves room to brake in time; braking itself is acceleration-limited.

No state is kept here: the caller stores the returned :class:`Shaped` and passes it back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class JointControl:
    """How the control mode commands one motor (motor-side radians)."""

    kp: float
    kd: float
    lower: float = -math.inf
    upper: float = math.inf
    max_error: float = 0.2  # |p_des - measured| bound: limits the torque a bad target can ask for
    max_speed: float = 3.0  # rad/s, slew limit of the commanded position
    max_accel: float = math.inf  # rad/s^2 of the commanded position
    max_jerk: float = math.inf  # rad/s^3 (off by default)
    velocity_feedforward: bool = True
    support_on_stop: bool = True  # a safe stop keeps the torque that held this joint (gravity)
    # gripper force limit: once stalled (|torque| >= clog_torque at |v| < clog_speed) the error
    # band shrinks to stall_error, so a closed gripper squeezes with about kp * stall_error
    clog_torque: float | None = None
    clog_speed: float = 0.3
    stall_error: float = 0.05


@dataclass(frozen=True)
class Shaped:
    """One joint's command: position, its rate of change (velocity) and that rate's change."""

    position: float
    velocity: float = 0.0
    accel: float = 0.0
    banded: bool = False  # the error band overrode the acceleration limit on this step


@dataclass(frozen=True)
class Measured:
    position: float
    velocity: float = 0.0
    torque: float = 0.0


def band(c: JointControl, m: Measured) -> float:
    """The allowed |command - measured| for this measurement (narrower for a stalled gripper)."""
    if c.clog_torque is not None and abs(m.torque) >= c.clog_torque and abs(m.velocity) < c.clog_speed:
        return min(c.max_error, c.stall_error)
    return c.max_error


def braking_speed(distance: float, accel: float, dt: float) -> float:
    """The largest speed from which steps of ``accel * dt`` less speed each (this step's move
    included) stay within ``distance``: ``v**2 / (2 accel) + v dt <= distance``."""
    if math.isinf(accel):
        return math.inf
    step = accel * dt
    return max(0.0, math.sqrt(2 * accel * max(distance, 0.0) + step * step) - step)


def shape(c: JointControl, prev: Shaped, target: float, m: Measured, dt: float, horizon: float) -> Shaped:
    """The next command towards ``target``: reached over ``horizon`` seconds at most as fast as
    the limits allow. ``dt`` is the time since ``prev`` was sent (> 0)."""
    dt = max(dt, 1e-6)
    p0, v0, a0 = prev.position, prev.velocity, prev.accel
    target = min(max(target, c.lower), c.upper)
    # a command outside its limits (bring-up next to one) may only move back towards them
    lo, hi = min(c.lower, p0), max(c.upper, p0)
    # speeds from which the acceleration limit still stops us at the limits and at the target
    up = min(c.max_speed, braking_speed(hi - p0, c.max_accel, dt))
    down = min(c.max_speed, braking_speed(p0 - lo, c.max_accel, dt))
    distance = target - p0
    if distance >= 0:
        up = min(up, braking_speed(distance, c.max_accel, dt))
    else:
        down = min(down, braking_speed(-distance, c.max_accel, dt))
    want = min(max(distance / max(horizon, dt), -down), up)
    # the acceleration limit around the previous rate has priority over everything but the band
    dv = c.max_accel * dt
    v = min(max(want, v0 - dv), v0 + dv)
    if not math.isinf(c.max_jerk) and want * v0 >= 0 and abs(want) >= abs(v0):
        # the jerk limit smooths speeding up and cruising; braking stays acceleration-limited,
        # so the command always stops in time and settles on the target
        da = c.max_jerk * dt
        a0 = min(max(a0, -c.max_accel), c.max_accel)  # after a banded step the old rate means nothing
        smooth = min(max(want, v0 + max(a0 - da, -c.max_accel) * dt), v0 + min(a0 + da, c.max_accel) * dt)
        if -down <= smooth <= up:
            v = smooth
    p = min(max(p0 + v * dt, lo), hi)
    # the error band has the last word (within the limits when the two overlap)
    b = band(c, m)
    banded = not m.position - b <= p <= m.position + b
    if banded:
        lo_b, hi_b = max(m.position - b, lo), min(m.position + b, hi)
        if lo_b > hi_b:
            lo_b, hi_b = m.position - b, m.position + b
        p = min(max(p, lo_b), hi_b)
    v = (p - p0) / dt
    return Shaped(p, v, (v - v0) / dt, banded)


def feedforward_velocity(c: JointControl, s: Shaped) -> float:
    """The velocity sent with the command (0 when feed-forward is off). A motor holding this
    frame (the host stalls) settles where kp (p - q) + kd v = 0, at q = p + kd v / kp: that point
    stays inside the joint limits too."""
    if not c.velocity_feedforward:
        return 0.0
    v = s.velocity
    if v and c.kp > 0 and c.kd > 0:
        reach = c.kd / c.kp
        v = min(max(v, (c.lower - s.position) / reach), (c.upper - s.position) / reach)
    return v
