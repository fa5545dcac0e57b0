"""The control law's command shaping: a pure function from (limits, previous command, target,
measurement, dt) to the next commanded position and velocity of one joint.

Every command it returns satisfies, in this order of priority:

1. the error band: ``|p - measured| <= band`` (bounds the torque a bad target can ask for;
   the band shrinks to ``stall_error`` for a stalled gripper);
2. position limits: ``lower <= p <= upper``, or, for a joint that starts outside them (bring-up
   next to a limit), never further outside than it already was: it slews back in, never jumps;
3. speed: ``|p - p_prev| <= max_speed * dt``;
4. acceleration: ``|v - v_prev| <= max_accel * dt`` (and jerk, when set), unless the error band
   forces a change (the measurement was pushed away): then the band wins, and ``banded`` says so.

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
    """The largest speed from which stepping ``accel * dt`` down per step stops within ``distance``."""
    if math.isinf(accel):
        return math.inf
    half = accel * dt / 2
    return math.sqrt(2 * accel * max(distance, 0.0) + half * half) - half


def shape(c: JointControl, prev: Shaped, target: float, m: Measured, dt: float, horizon: float) -> Shaped:
    """The next command towards ``target``: reached over ``horizon`` seconds at most as fast as
    the limits allow. ``dt`` is the time since ``prev`` was sent (> 0)."""
    dt = max(dt, 1e-6)
    p0, v0, a0 = prev.position, prev.velocity, prev.accel
    target = min(max(target, c.lower), c.upper)
    distance = target - p0
    # wanted speed: reach the target over the horizon, no faster than max_speed, and slow
    # enough to stop there with the acceleration limit
    want = distance / max(horizon, dt)
    cap = min(c.max_speed, braking_speed(abs(distance), c.max_accel, dt))
    want = min(max(want, -cap), cap)
    # acceleration (and jerk) limits around the previous rate
    dv = c.max_accel * dt
    if not math.isinf(c.max_jerk) and not math.isinf(c.max_accel):
        da = c.max_jerk * dt
        lo_a, hi_a = max(a0 - da, -c.max_accel), min(a0 + da, c.max_accel)
        lo_v, hi_v = v0 + lo_a * dt, v0 + hi_a * dt
    else:
        lo_v, hi_v = v0 - dv, v0 + dv
    v = min(max(want, lo_v), hi_v, c.max_speed)
    v = max(v, -c.max_speed)
    p = p0 + v * dt
    # position limits; a command outside them may only move back towards them
    lo, hi = min(c.lower, p0), max(c.upper, p0)
    p = min(max(p, lo), hi)
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
