"""Unit behaviour of chunk time alignment and of the action guard."""

from __future__ import annotations

import numpy as np
import pytest

from reflex.ports import ActionChunk, JointLayout
from reflex.runtime.chunks import ChunkInvalid, ChunkSchedule, validate_chunk
from reflex.runtime.guard import ActionGuard, GuardRejected


def chunk(t_origin: float, t_received: float, horizon: int = 10, dt: float = 0.1, dim: int = 2) -> ActionChunk:
    actions = np.arange(horizon, dtype=float)[:, None] * np.ones(dim)
    return ActionChunk(1, actions, t_origin, dt, 0, t_requested=t_origin, t_received=t_received)


def test_actions_whose_time_passed_are_skipped_not_replayed() -> None:
    schedule = ChunkSchedule(interpolate=False, prefetch_margin_s=0.0)
    late = schedule.adopt(chunk(t_origin=100.0, t_received=100.35))
    assert late == 4  # actions 0..3 were due at 100.0..100.3, before the chunk arrived
    assert schedule.skipped_actions == 4
    action, index = schedule.action_at(100.35)  # type: ignore[misc]
    assert index == pytest.approx(3.5) and action[0] in (3.0, 4.0)
    action, _ = schedule.action_at(100.6)  # type: ignore[misc]
    assert action[0] == 6.0


def test_on_time_chunk_skips_nothing_and_interpolates() -> None:
    schedule = ChunkSchedule(interpolate=True, prefetch_margin_s=0.0)
    assert schedule.adopt(chunk(t_origin=5.0, t_received=5.0)) == 0
    action, _ = schedule.action_at(5.25)  # type: ignore[misc]
    assert action[0] == pytest.approx(2.5)


def test_chunk_runs_out_after_its_last_action() -> None:
    schedule = ChunkSchedule(interpolate=True, prefetch_margin_s=0.0)
    schedule.adopt(chunk(t_origin=0.0, t_received=0.0))
    assert schedule.action_at(0.9) is not None
    assert schedule.action_at(0.96) is None


def test_a_chunk_entirely_in_the_past_skips_all_of_it() -> None:
    schedule = ChunkSchedule(interpolate=True, prefetch_margin_s=0.0)
    assert schedule.adopt(chunk(t_origin=0.0, t_received=5.0)) == 10
    assert schedule.action_at(5.0) is None


def test_next_request_is_due_before_the_chunk_runs_out() -> None:
    schedule = ChunkSchedule(interpolate=True, prefetch_margin_s=0.05)
    assert schedule.needs_next(0.0)  # nothing yet
    schedule.adopt(chunk(t_origin=0.0, t_received=0.2))  # 200 ms inference, chunk ends at 0.9
    assert not schedule.needs_next(0.5)
    assert schedule.needs_next(0.9 - 0.2 * 1.5 - 0.05 + 1e-6)


def test_validate_chunk() -> None:
    assert validate_chunk(np.zeros(3), 3).shape == (1, 3)
    with pytest.raises(ChunkInvalid):
        validate_chunk(np.zeros((4, 2)), 3)
    with pytest.raises(ChunkInvalid):
        validate_chunk(np.array([[0.0, np.inf, 0.0]]), 3)


LAYOUT = JointLayout(("a", "b", "c"), np.array([-1.0, -1.0, 0.0]), np.array([1.0, 1.0, 1.0]))


def test_guard_clamps_to_limits_and_delta() -> None:
    guard = ActionGuard(LAYOUT, 0.1)
    safe, events = guard.check(np.array([5.0, 0.05, 0.5]), np.array([0.95, 0.0, 0.0]))
    assert safe == pytest.approx([1.0, 0.05, 0.1])
    kinds = {e.kind: e.joints for e in events}
    assert kinds == {"clamp_limit": ("a",), "clamp_delta": ("c",)}


def test_guard_per_joint_delta() -> None:
    guard = ActionGuard(LAYOUT, [0.1, 0.2, 0.3])
    safe, _ = guard.check(np.array([1.0, 1.0, 1.0]), np.zeros(3))
    assert safe == pytest.approx([0.1, 0.2, 0.3])


@pytest.mark.parametrize(
    "action", [np.array([0.0, np.nan, 0.0]), np.array([0.0, 0.0, np.inf]), np.zeros(2), np.zeros(4)]
)
def test_guard_rejects_non_finite_and_wrong_width(action: np.ndarray) -> None:
    with pytest.raises(GuardRejected):
        ActionGuard(LAYOUT, 0.1).check(action, np.zeros(3))


def test_guard_fails_closed_when_the_measured_pose_is_far_outside_limits() -> None:
    with pytest.raises(GuardRejected, match="outside its limits"):
        ActionGuard(LAYOUT, 0.1).check(np.zeros(3), np.array([0.0, 0.0, 1.5]))


def test_guard_fuzz_invariants() -> None:
    rng = np.random.default_rng(0)
    guard = ActionGuard(LAYOUT, 0.05)
    for _ in range(2000):
        measured = rng.uniform(LAYOUT.lower, LAYOUT.upper)
        action = rng.normal(0, 3, 3)
        safe, _ = guard.check(action, measured)
        assert np.all(safe >= LAYOUT.lower) and np.all(safe <= LAYOUT.upper)
        assert np.all(np.abs(safe - measured) <= 0.05 + 1e-12)


@pytest.mark.parametrize("dtype", [complex, bool, object, str])
def test_guard_and_chunks_take_only_real_numbers(dtype: type) -> None:
    """Complex (imaginary part silently dropped), bool, object and text arrays are guard rejections."""
    from reflex.ports import JointLayout
    from reflex.runtime.chunks import ChunkInvalid, validate_chunk
    from reflex.runtime.guard import ActionGuard, GuardRejected

    layout = JointLayout(names=("a", "b", "c"), lower=np.full(3, -1.0), upper=np.full(3, 1.0))
    guard = ActionGuard(layout, 0.1)
    action = np.array([0.01, 0.0, 1], dtype=dtype) if dtype is not str else np.array(["0", "0", "0"])
    with pytest.raises(GuardRejected, match="expected real numbers"):
        guard.check(action, np.zeros(3))
    with pytest.raises(ChunkInvalid, match="expected real numbers"):
        validate_chunk(action[None, :], 3)
    safe, _ = guard.check(np.array([0.01, 0, 1], dtype=np.int8), np.zeros(3))  # integers are numbers
    assert safe.dtype == np.float64
