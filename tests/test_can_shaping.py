"""The pure command shaping (reflex/can/shaping.py), property-tested: for any targets and
measurements, every command respects the error band, the position limits (or, outside them,
never moves further out), the speed limit, and the acceleration limit whenever the band did
not have to override it."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from reflex.can.shaping import JointControl, Measured, Shaped, band, shape

DT = 0.004
EPS = 1e-9

finite = st.floats(-10, 10, allow_nan=False, allow_infinity=False)


@st.composite
def controls(draw: st.DrawFn) -> JointControl:
    lower = draw(st.floats(-3, 0))
    upper = lower + draw(st.floats(0.1, 5))
    jerk = draw(st.one_of(st.just(math.inf), st.floats(100, 10_000)))
    return JointControl(
        kp=80.0,
        kd=5.0,
        lower=lower,
        upper=upper,
        max_error=draw(st.floats(0.01, 0.5)),
        max_speed=draw(st.floats(0.1, 10)),
        max_accel=draw(st.floats(1, 200)),
        max_jerk=jerk,
    )


@settings(max_examples=500, deadline=None)
@given(c=controls(), targets=st.lists(finite, min_size=1, max_size=40), start=finite,
       noise=st.lists(st.floats(-1, 1), min_size=40, max_size=40), horizon=st.floats(0.001, 0.2))
def test_every_command_respects_its_limits(
    c: JointControl, targets: list[float], start: float, noise: list[float], horizon: float
) -> None:
    prev = Shaped(start)  # may start outside the limits (bring-up next to a limit)
    for k, target in enumerate(targets):
        # the joint follows its command with some error, at most the band
        measured = Measured(prev.position + noise[k] * c.max_error)
        s = shape(c, prev, target, measured, DT, horizon)
        b = band(c, measured)
        assert abs(s.position - measured.position) <= b + EPS
        lo, hi = min(c.lower, prev.position), max(c.upper, prev.position)
        if measured.position - b <= hi and measured.position + b >= lo:
            assert lo - EPS <= s.position <= hi + EPS  # never further outside than it was
        if not s.banded:
            assert abs(s.position - prev.position) <= c.max_speed * DT + EPS
            assert abs(s.velocity - prev.velocity) <= c.max_accel * DT + 1e-6
        prev = s


@settings(max_examples=200, deadline=None)
@given(c=controls(), target=finite, start=finite)
def test_a_followed_command_reaches_any_target_inside_the_limits_without_jumps(
    c: JointControl, target: float, start: float
) -> None:
    c = replace(c, max_error=max(c.max_error, 1.01 * c.max_speed * DT))  # one step of lag fits the band
    prev = Shaped(min(max(start, c.lower), c.upper))
    goal = min(max(target, c.lower), c.upper)
    steps = int((abs(goal - prev.position) / c.max_speed + 2 * c.max_speed / c.max_accel) / DT) + 2000
    for _ in range(steps):
        s = shape(c, prev, target, Measured(prev.position), DT, 0.03)
        assert not s.banded
        assert abs(s.position - prev.position) <= c.max_speed * DT + EPS
        prev = s
    assert abs(prev.position - goal) < 1e-3
