"""``reflex replay`` as a library: recordings + a target in, a :class:`ReplayReport` out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reflex.errors import ConfigError, ConfigIssue, SetupError
from reflex.ports import TargetInfo
from reflex.replay.demonstration import DEFAULT_HORIZON, DemonstrationPlan, demonstration_chunks
from reflex.replay.determinism import Determinism, judge
from reflex.replay.episode import Episode, RecordingError
from reflex.replay.executed import ExecutedActions, executed_actions, recorded_prefixes
from reflex.replay.mapping import DatasetMapping
from reflex.replay.metrics import JointErrors, joint_errors
from reflex.replay.observation import ChunkInput, chunk_inputs
from reflex.replay.readers import read_recording
from reflex.replay.report import ReplayReport
from reflex.replay.target import SOURCE, ReplayTarget, TargetPool, parse_target, target_from_recording
from reflex.replay.thresholds import Threshold, Violation, check
from reflex.runtime.chunks import ChunkInvalid, shaped_chunk
from reflex.runtime.target_fit import RobotSide, target_mismatches


@dataclass
class ReplayOptions:
    fmt: str | None = None
    allow_partial: bool = False
    batch: bool = True
    batch_size: int = 32
    seed: int | None = None
    thresholds: list[Threshold] = field(default_factory=list)
    api_key: str | None = None
    verbose: bool = False
    # (what, done, total): called as chunks are replayed (a progress bar; never required)
    on_progress: Callable[[str, int, int], None] | None = None
    mapping: DatasetMapping | None = None  # inputs of a dataset Reflex did not record
    every: int = 1  # demonstrations: score every N-th frame
    episode_every: int = 1  # score every N-th episode
    horizon: int | None = None  # demonstrations: actions compared per frame (default: the chunk length)


@dataclass
class EpisodeReplay:
    episode: Episode
    info: TargetInfo
    seed_used: int | None
    inputs: list[ChunkInput]
    replayed: dict[int, np.ndarray]
    horizon: int
    chunk_pred: np.ndarray  # (n, horizon, dim) replayed, for the comparable chunks
    chunk_rec: np.ndarray  # (n, horizon, dim) recorded
    chunk_errors: JointErrors | None
    per_chunk_max_abs: dict[int, float]
    executed: ExecutedActions
    step_errors: JointErrors | None
    determinism: Determinism
    notes: list[str]
    observe_s: float  # rebuilding observations (reading and decoding images)
    infer_s: float  # the target's inference
    demonstration: DemonstrationPlan | None = None  # open-loop evaluation against a demonstration


def replay(
    paths: list[Path], target: str | None, options: ReplayOptions, cwd: Path | None = None
) -> ReplayReport:
    """Read every recording, run the target on each recorded observation, compare, judge.

    Without ``target`` the first recording's own target block is used (the export it ran)."""
    cwd = cwd or Path.cwd()
    choice = parse_target(target, cwd) if target is not None else None
    t0 = time.perf_counter()
    episodes: list[Episode] = []
    for path in paths:
        episodes.extend(read_recording(path, options.fmt, options.allow_partial, options.mapping)
                        [:: max(1, options.episode_every)])
    if choice is None:
        if episodes and episodes[0].foreign:
            raise ConfigError(SOURCE, [ConfigIssue("--target", f"{episodes[0].source} was not recorded by Reflex "
                                                   "and names no target; pass --target")])
        if not episodes:
            raise ConfigError(SOURCE, [ConfigIssue("--target", "no episode to take the target from; pass --target")])
        choice, target = target_from_recording(episodes[0].meta, cwd)
    assert target is not None
    t_read = time.perf_counter()
    pool = TargetPool(choice, options.seed, options.api_key, options.verbose)
    results: list[EpisodeReplay] = []
    connect_s = 0.0
    try:
        for episode in episodes:
            tc = time.perf_counter()
            replay_target = pool.get(episode.meta.seed)
            connect_s += time.perf_counter() - tc
            results.append(replay_episode(episode, replay_target, options))
    finally:
        pool.close()
    t_end = time.perf_counter()
    report = ReplayReport(
        target=target,
        results=results,
        thresholds=options.thresholds,
        read_s=t_read - t0,
        connect_s=connect_s,
        replay_s=t_end - t_read - connect_s,
        batched=options.batch,
    )
    report.overall_chunks = _pooled([(r.chunk_pred, r.chunk_rec) for r in results], results)
    ex = [(r.executed.replayed, r.executed.recorded) for r in results]
    report.overall_steps = _pooled(ex, results)
    report.violations = _violations(report)
    return report


def replay_episode(episode: Episode, target: ReplayTarget, options: ReplayOptions) -> EpisodeReplay:
    info = target.info
    _check_fit(episode, info)
    plan = None
    if episode.foreign:
        horizon = options.horizon or info.chunk_length or DEFAULT_HORIZON
        episode.chunks, plan = demonstration_chunks(episode, horizon, max(1, options.every))
    # A local policy declares every image it reads; other targets get every recorded camera.
    cameras = info.image_keys if (info.image_keys or info.kind == "local") else None
    inputs = chunk_inputs(episode, info.image_keys, feeds_images=cameras is None or bool(cameras))
    comparable = [i for i in inputs if i.comparable]
    replayed, observe_s, infer_s = _infer(episode, target, options, comparable, cameras)
    if plan is not None:
        return _versus_demonstration(episode, target, inputs, comparable, replayed, plan, observe_s, infer_s)
    notes = list(episode.notes)
    if options.seed is not None and target.seed_used is None:
        notes.append(f"--seed ignored: a {info.kind} target takes no seed (it runs with seed {info.seed})")
    notes += [f"chunk {i.chunk.chunk_id} not replayed: {i.reason}" for i in inputs if not i.comparable]
    pred, rec, per_chunk = _stack_chunks(episode, comparable, replayed, notes)
    chunk_errors = joint_errors(pred, rec, episode.meta.joint_names) if len(pred) else None
    executed = executed_actions(episode, replayed)
    notes += executed.notes
    if executed.rejected_steps:
        notes.append(
            f"the guard would have rejected the replayed action at {len(executed.rejected_steps)} step(s) "
            f"(first: {executed.rejected_steps[:5]}): a safe stop on the robot"
        )
    step_errors = (
        joint_errors(executed.replayed, executed.recorded, episode.meta.joint_names)
        if len(executed.steps) else None
    )
    exact = [(i.chunk.chunk_id, per_chunk[i.chunk.chunk_id]) for i in comparable if i.exact]
    approx = [(i.chunk.chunk_id, per_chunk[i.chunk.chunk_id], i.reasons) for i in comparable if not i.exact]
    determinism = judge(episode.meta, info, exact, approx)
    return EpisodeReplay(
        episode, info, target.seed_used, inputs, replayed, pred.shape[1], pred, rec, chunk_errors, per_chunk,
        executed, step_errors, determinism, notes, observe_s, infer_s,
    )


def _versus_demonstration(
    episode: Episode, target: ReplayTarget, inputs: list[ChunkInput], comparable: list[ChunkInput],
    replayed: dict[int, np.ndarray], plan: DemonstrationPlan, observe_s: float, infer_s: float,
) -> EpisodeReplay:
    """Open-loop evaluation: each scored frame's chunk against the demonstrated actions after it."""
    info = target.info
    notes = list(episode.notes)
    notes += [f"frame {i.chunk.chunk_id} not scored: {i.reason}" for i in inputs if not i.comparable]
    if plan.horizon > 1 and plan.scored:
        notes.append(f"the last {min(plan.frames, plan.horizon - 1)} frame(s) have fewer than {plan.horizon} "
                     "demonstrated actions after them: not scored")
    if not plan.scored:
        notes.append(f"no frame scored: the episode has {plan.frames} frames, fewer than the horizon "
                     f"{plan.horizon} (pass --horizon)")
    if info.action_dt and abs(info.action_dt * episode.meta.control_rate_hz - 1.0) > 1e-3:
        notes.append(f"the policy's action step ({info.action_dt:g} s) differs from the dataset's frame period "
                     f"({1 / episode.meta.control_rate_hz:g} s): actions are compared index by index")
    pred, rec, per_chunk = _stack_chunks(episode, comparable, replayed, [])
    if len(pred) and pred.shape[1] < plan.horizon:
        notes.append(f"the policy's chunks have {pred.shape[1]} actions: the first {pred.shape[1]} of "
                     f"{plan.horizon} demonstrated actions are compared")
    chunk_errors = joint_errors(pred, rec, episode.meta.joint_names) if len(pred) else None
    dim = len(episode.meta.joint_names)
    executed = ExecutedActions(np.zeros(0, dtype=np.int64), np.zeros((0, dim)), np.zeros((0, dim)))
    determinism = Determinism("demonstration", False, None,
                              ["open-loop evaluation: the policy's chunks against the demonstrated actions"])
    return EpisodeReplay(
        episode, info, target.seed_used, inputs, replayed, pred.shape[1], pred, rec, chunk_errors, per_chunk,
        executed, None, determinism, notes, observe_s, infer_s, plan,
    )


def _infer(
    episode: Episode, target: ReplayTarget, options: ReplayOptions, comparable: list[ChunkInput],
    cameras: tuple[str, ...] | None,
) -> tuple[dict[int, np.ndarray], float, float]:
    info = target.info
    replayed: dict[int, np.ndarray] = {}
    # an RTC export is fed the plan each chunk was requested with, rebuilt from the recording
    # (a demonstration has no such plan: its policy runs without a prefix)
    prefixes = (
        recorded_prefixes(episode, info.chunk_length)
        if info.accepts_prefix and info.chunk_length and not episode.foreign else {}
    )
    observe_s = infer_s = 0.0
    size = options.batch_size if options.batch else 1
    for start in range(0, len(comparable), size):
        group = comparable[start : start + size]
        t0 = time.perf_counter()
        observations = [i.observation(cameras) for i in group]
        for item, obs in zip(group, observations, strict=True):
            obs.prefix = prefixes.get(item.chunk.chunk_id)
        t1 = time.perf_counter()
        observe_s += t1 - t0
        try:
            chunks = target.infer_many(observations, batch=options.batch)
        except (RecordingError, SetupError):
            raise
        except Exception as exc:
            first = group[0].chunk
            raise SetupError(
                "target", f"{episode.label}: inference failed at chunk {first.chunk_id} (obs step {first.obs_step}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        for item, chunk in zip(group, chunks, strict=True):
            replayed[item.chunk.chunk_id] = _as_chunk(chunk, episode, item)
        infer_s += time.perf_counter() - t1
        if options.on_progress is not None:
            options.on_progress(f"replaying {episode.label}", start + len(group), len(comparable))
    return replayed, observe_s, infer_s


def _check_fit(episode: Episode, info: TargetInfo) -> None:
    meta = episode.meta
    recorded = set(meta.camera_names) or {n for s in episode.steps for n in s.frames}
    problems = target_mismatches(info, RobotSide(meta.joint_names, recorded, "the recording"))
    if problems:
        raise SetupError("target", f"{episode.label}: " + "; ".join(problems))


def _as_chunk(chunk: np.ndarray, episode: Episode, item: ChunkInput) -> np.ndarray:
    try:
        return shaped_chunk(chunk, len(episode.meta.joint_names))  # the same width rule as on the robot
    except ChunkInvalid as exc:
        raise SetupError("target", f"{episode.label}: chunk for obs step {item.chunk.obs_step}: {exc}") from exc


def _stack_chunks(
    episode: Episode, comparable: list[ChunkInput], replayed: dict[int, np.ndarray], notes: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    """Replayed and recorded chunks as (n, horizon, dim) arrays, and each chunk's max abs error."""
    dim = len(episode.meta.joint_names)
    if not comparable:
        return np.zeros((0, 0, dim)), np.zeros((0, 0, dim)), {}
    horizons = {replayed[i.chunk.chunk_id].shape[0] for i in comparable}
    horizons |= {i.chunk.actions.shape[0] for i in comparable}
    horizon = min(horizons)
    if len(horizons) > 1:
        notes.append(f"chunk lengths differ {sorted(horizons)}: the first {horizon} actions are compared")
    predicted = np.stack([replayed[i.chunk.chunk_id][:horizon] for i in comparable])
    recorded = np.stack([i.chunk.actions[:horizon] for i in comparable])
    if recorded.shape[2] != dim:
        raise RecordingError(episode.label, f"recorded chunks have {recorded.shape[2]} actions per row, not {dim}")
    per_chunk = {
        i.chunk.chunk_id: float(np.max(np.abs(p - r))) for i, p, r in zip(comparable, predicted, recorded, strict=True)
    }
    return predicted, recorded, per_chunk


def _pooled(arrays: list[tuple[np.ndarray, np.ndarray]], results: list[EpisodeReplay]) -> JointErrors | None:
    dim_of = {len(r.episode.meta.joint_names) for r in results}
    present = [(p.reshape(-1, p.shape[-1]), r.reshape(-1, r.shape[-1])) for p, r in arrays if p.size]
    if not present:
        return None
    if len(dim_of) != 1:
        return None  # episodes of different robots: no pooled per-joint view
    names = results[0].episode.meta.joint_names
    same_names = all(r.episode.meta.joint_names == names for r in results)
    return joint_errors(
        np.concatenate([a[0] for a in present]),
        np.concatenate([a[1] for a in present]),
        names if same_names else (),
    )


def _violations(report: ReplayReport) -> list[Violation]:
    out: list[Violation] = []
    scopes: list[tuple[str, JointErrors | None, JointErrors | None, Determinism | None]] = [
        (r.episode.label, r.chunk_errors, r.step_errors, r.determinism) for r in report.results
    ]
    if len(report.results) > 1:
        scopes.append(("overall", report.overall_chunks, report.overall_steps, None))
    for threshold in report.thresholds:
        for scope, chunks, steps, det in scopes:
            stats = {
                "chunks": chunks.overall if chunks else None,
                "steps": steps.overall if steps else None,
                "determinism": det,
            }
            if scope == "overall" and threshold.limit is None:
                continue
            v = check(threshold, scope, stats)
            if v is None:
                continue
            errors = steps if threshold.metric.startswith("step_") else chunks
            if errors is not None and errors.worst():
                v.message += "; worst joints: " + ", ".join(f"{n} {s.max_abs:.4g}" for n, s in errors.worst())
            out.append(v)
    return out
