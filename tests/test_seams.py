"""Chunk hand-over in the real control loop, driven in simulated time (reflex/runtime/seam_sim.py):
a policy whose successive chunks disagree (a fixed offset, or noise) under a hard switch, a
crossfade and temporal ensembling; the replanning horizon counted in control steps; the guard
keeping the last word over any blend; a horizon the latency cannot meet refused before motors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from reflex.errors import SetupError
from reflex.hardware.yam_layout import yam_bimanual_layout
from reflex.runtime.chunks import ChunkSchedule, ExecutionSettings, prefix_weights
from reflex.runtime.seam_sim import DisagreeingPolicy, run_simulated

LAYOUT = yam_bimanual_layout()
MODES = [("none", 10), ("crossfade", 10), ("ensemble", 5)]


def policy(**kw: Any) -> DisagreeingPolicy:
    return DisagreeingPolicy(LAYOUT, **kw)


def seams(blend: str, horizon: int, **kw: Any) -> dict[str, Any]:
    run = run_simulated(policy(**kw), steps=400, horizon=horizon, blend=blend, blend_s=0.2)
    assert run.report.incident is None and run.report.held_steps == 0
    return dict(run.report.seams)


@pytest.mark.parametrize("kind", [{"offset": 0.02}, {"noise": 0.02, "seed": 3}], ids=["offset", "noise"])
def test_blending_shrinks_the_seam_jump_of_disagreeing_chunks(kind: dict[str, Any]) -> None:
    results = {blend: seams(blend, horizon, **kind) for blend, horizon in MODES}
    hard = results["none"]
    assert hard["switches"] >= 30
    # a hard switch puts the whole disagreement into one step
    assert hard["jump"]["max"] == pytest.approx(hard["gap"]["max"], rel=1e-6)
    assert hard["gap"]["max"] > 0.015
    for blend in ("crossfade", "ensemble"):
        got = results[blend]
        assert got["switches"] >= 30 and got["blend"] == blend
        assert got["gap"]["max"] > 0.5 * hard["gap"]["max"]  # the chunks disagree just as much...
        assert got["jump"]["max"] <= 0.2 * hard["jump"]["max"]  # ...but the command barely jumps
        assert set(got["jump"]["perJoint"]) == set(LAYOUT.names)
        assert got["jerkP99"] < hard["jerkP99"]


def test_agreeing_chunks_have_no_seams_to_hide() -> None:
    for blend, horizon in MODES:
        got = seams(blend, horizon)  # no offset, no noise: every chunk is the same trajectory
        assert got["jump"]["max"] < 1e-9 and got["gap"]["max"] < 1e-9


@pytest.mark.parametrize(("rate_hz", "horizon"), [(50.0, 10), (100.0, 10), (50.0, 7), (30.0, 25)])
def test_each_chunk_runs_for_its_horizon_counted_in_steps(rate_hz: float, horizon: int) -> None:
    run = run_simulated(policy(offset=0.01), steps=300, rate_hz=rate_hz, horizon=horizon, latency_s=0.03)
    ids = run.arm.chunk_ids
    switches = [i for i in range(1, len(ids)) if ids[i] != ids[i - 1]]
    lengths = np.diff(switches)
    expected = horizon * 0.02 * rate_hz
    assert len(lengths) >= 5
    assert np.all(np.abs(lengths - expected) <= 1.0), lengths  # within one control period
    assert run.report.seams["horizonMisses"] == 0
    assert run.report.seams["horizonActions"] == horizon


def test_without_a_horizon_a_chunk_runs_until_the_next_arrives() -> None:
    run = run_simulated(policy(offset=0.01), steps=300, latency_s=0.03, prefetch_margin_s=0.05)
    ids = run.arm.chunk_ids
    lengths = np.diff([i for i in range(1, len(ids)) if ids[i] != ids[i - 1]])
    # 50 actions of 20 ms, requested 1.5 x 30 ms + 50 ms before the end, minus the latency
    assert len(lengths) >= 3 and np.all(np.abs(lengths - lengths[0]) <= 1)
    assert lengths[0] < 50


@pytest.mark.parametrize(("blend", "horizon"), MODES)
def test_the_guard_has_the_last_word_over_any_blend(blend: str, horizon: int) -> None:
    # chunks far apart and partly outside the joint limits: the blend must not escape the guard
    run = run_simulated(policy(offset=0.6, noise=0.3, amplitude=2.5), steps=300, horizon=horizon,
                        blend=blend, max_delta=0.03)
    commands, measured = np.array(run.arm.commands), np.array(run.arm.measured)
    assert len(commands) == 300
    assert np.all(commands >= LAYOUT.lower - 1e-12) and np.all(commands <= LAYOUT.upper + 1e-12)
    assert np.all(np.abs(commands - measured) <= 0.03 + 1e-12)
    assert run.report.guard["clampDeltaSteps"] > 0 and run.report.guard["clampLimitSteps"] > 0


def test_a_horizon_the_latency_cannot_meet_is_refused_before_motors() -> None:
    with pytest.raises(SetupError, match=r"execution.horizon.*cannot be met.*inference takes 0.200 s"):
        run_simulated(policy(), steps=10, horizon=5, latency_s=0.2)  # 0.1 s horizon < 0.35 s lead
    with pytest.raises(SetupError, match=r"do not fit in chunks of 50"):
        run_simulated(policy(), steps=10, horizon=45, latency_s=0.1)  # takes charge at action 10


def test_crossfade_moves_from_the_old_trajectory_into_the_new_one() -> None:
    dim = 2
    old = np.zeros((20, dim))
    new = np.ones((20, dim))
    schedule = ChunkSchedule(False, 0.0, ExecutionSettings(blend="crossfade", blend_s=0.1), period_s=0.02)
    from reflex.ports import ActionChunk

    schedule.adopt(ActionChunk(1, old, 0.0, 0.02, 0, 0.0, 0.0))
    outputs = [schedule.action_at(0.0)[0].copy(), schedule.action_at(0.02)[0].copy()]  # type: ignore[index]
    schedule.adopt(ActionChunk(2, new, 0.03, 0.02, 1, 0.03, 0.04))
    for k in range(2, 10):
        outputs.append(schedule.action_at(k * 0.02)[0].copy())  # type: ignore[index]
    first = np.array(outputs)[:, 0]
    # the new chunk's weight rises from the last tick before it (0.02 s) over 0.1 s
    np.testing.assert_allclose(first, [0, 0, 0.2, 0.4, 0.6, 0.8, 1, 1, 1, 1], atol=1e-12)
    (seam,) = schedule.seams.drain()
    np.testing.assert_allclose(seam.gap, [1.0, 1.0])
    np.testing.assert_allclose(seam.jump, [0.2, 0.2], atol=1e-12)


def test_rtc_prefix_weights_follow_the_exp_schedule() -> None:
    w = prefix_weights(frozen=2, covered=6, length=10)
    np.testing.assert_allclose(w[:2], 1.0)
    np.testing.assert_allclose(w[6:], 0.0)
    assert np.all(np.diff(w[1:7]) < 0)
    np.testing.assert_allclose(w[2], 0.8 * (np.exp(0.8) - 1) / (np.e - 1))  # research note: .571


def flow_target() -> Any:
    from pathlib import Path

    from reflex.targets.export_manifest import resolve_export_dir
    from reflex.targets.local.config import LocalTargetSpec
    from reflex.targets.local.target import LocalTarget

    return LocalTarget(LocalTargetSpec(export="builtin:demo_flow"), resolve_export_dir("builtin:demo_flow", Path.cwd()))


@pytest.mark.parametrize(("horizon", "latency_s"), [(10, 0.03), (15, 0.1), (25, 0.2)])
def test_rtc_prefix_makes_the_new_chunk_continue_the_plan_at_the_seam(horizon: int, latency_s: float) -> None:
    """The flow-matching demo export (real ONNX, guided denoising) with and without the prefix
    the runner fills at request time: what will run while inference is in flight."""
    gaps = {}
    for prefix in (False, True):
        target = flow_target()
        run = run_simulated(target, layout=LAYOUT, steps=300, horizon=horizon, latency_s=latency_s, prefix=prefix,
                            max_delta=0.5)
        assert run.report.incident is None and run.report.seams["prefix"] is prefix
        requests = run.worker.requests
        with_plan = [obs.prefix for obs in requests[2:]]  # the first chunks have no plan to continue
        assert all((p is not None) is prefix for p in with_plan)
        if prefix:
            frozen = {p.frozen for p in with_plan if p is not None}
            assert min(frozen) >= 1 and max(frozen) <= 50  # what runs while inference is in flight
        gaps[prefix] = run.report.seams["gap"]
    assert gaps[False]["p50"] > 0.1  # unguided, successive chunks disagree by a random offset
    assert gaps[True]["p50"] <= 0.01  # guided, the new chunk continues the plan at the switch
    assert gaps[True]["max"] <= 0.25 * gaps[False]["max"]


def test_an_export_without_a_plan_samples_unguided_and_rejects_a_malformed_prefix() -> None:
    from reflex.policy.onnx_policy import PolicyInputError
    from reflex.ports import ChunkPrefix

    target = flow_target()
    info = target.connect()
    assert info.accepts_prefix
    policy = target.policy
    assert policy is not None
    state = (LAYOUT.lower + LAYOUT.upper) / 2
    free = policy.predict(state, {}, 4)
    plan = free + 0.05
    guided = policy.predict(state, {}, 4, prefix=ChunkPrefix(plan, 3, prefix_weights(3, 40, 50)))
    assert np.abs(guided - plan).max() < 0.01 < np.abs(free - plan).min()
    with pytest.raises(PolicyInputError, match="prefix has shape"):
        policy.predict(state, {}, 4, prefix=ChunkPrefix(plan[:10], 3, prefix_weights(3, 10, 10)))
