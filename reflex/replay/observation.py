"""Rebuild the observation a recorded chunk was inferred from.

The chunk recorded with ``obs_step = N`` came from the observation taken at control step ``N``:
the state of step ``N`` and, per camera, the most recent frame recorded at or before step ``N``
(a step line only lists frames that are new at that step). The task and every capture time come
back too, so a policy that uses them sees the same values.

Three cases are not exact, and are flagged rather than reported as policy differences:

* the format stores images lossily (JPEG, H.264) or the state as float32 (the episode says so);
* recordings of older runners: the first chunk was inferred *before* the control loop started
  and its observation was not a recorded step, so step 0 stands in for it (current runners
  record that observation as step 0);
* the capture times of the rebuilt observation do not give back the chunk's ``t_origin`` (the
  recorder dropped a step or a frame).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reflex.ports import Frame, Observation, StateSample
from reflex.replay.episode import Episode, RecordedChunk, RecordedFrame, RecordedStep

T_ORIGIN_TOL_S = 1e-9


@dataclass
class ChunkInput:
    """A recorded chunk and what replay knows about its observation."""

    chunk: RecordedChunk
    step: RecordedStep | None
    frames: dict[str, RecordedFrame]
    exact: bool
    reasons: list[str] = field(default_factory=list)  # why inexact, or why it cannot be replayed

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    @property
    def comparable(self) -> bool:
        return self.step is not None

    def observation(self, cameras: Iterable[str] | None = None) -> Observation:
        """The observation with decoded images (``cameras`` limits which are loaded; None: all)."""
        assert self.step is not None, "chunk without a recorded observation"
        wanted = set(self.frames) if cameras is None else set(cameras) & set(self.frames)
        images = {
            name: Frame(image=f.load(), t_capture=f.t_capture, seq=f.seq)
            for name, f in self.frames.items()
            if name in wanted
        }
        state = StateSample(position=self.step.state.copy(), t_capture=self.step.t_state)
        return Observation(step=self.chunk.obs_step, state=state, images=images, task=self.step.task)


def chunk_inputs(episode: Episode, cameras: Iterable[str] = (), feeds_images: bool = True) -> list[ChunkInput]:
    """One :class:`ChunkInput` per recorded chunk, in recording order.

    ``cameras`` are the cameras the policy needs: a chunk whose observation lacks one of them
    cannot be replayed (it is reported, not guessed). ``feeds_images``: whether the replayed
    policy sees images at all (lossy images do not matter to a state-only policy).
    """
    lossy = list(episode.lossy_state) + (list(episode.lossy_images) if feeds_images else [])
    needed = set(cameras)
    wanted_steps = {c.obs_step for c in episode.chunks}
    latest: dict[str, RecordedFrame] = {}
    snapshots: dict[int, dict[str, RecordedFrame]] = {}
    by_step: dict[int, RecordedStep] = {}
    for step in episode.steps:
        latest.update(step.frames)
        if step.step in wanted_steps:
            snapshots[step.step] = dict(latest)
            by_step[step.step] = step
    inputs = []
    for chunk in episode.chunks:
        found = by_step.get(chunk.obs_step)
        if found is None:
            inputs.append(ChunkInput(chunk, None, {}, False, [f"step {chunk.obs_step} is not in the recording"]))
            continue
        frames = snapshots[chunk.obs_step]
        missing = sorted(needed - set(frames))
        if missing:
            reason = f"no frame from camera(s) {missing} at or before step {chunk.obs_step}"
            inputs.append(ChunkInput(chunk, None, frames, False, [reason]))
            continue
        item = _exactness(chunk, found, frames)
        if lossy:
            item.exact = False
            item.reasons += lossy
        inputs.append(item)
    return inputs


def _exactness(chunk: RecordedChunk, step: RecordedStep, frames: dict[str, RecordedFrame]) -> ChunkInput:
    origin = min([step.t_state, *(f.t_capture for f in frames.values())])
    matches = abs(origin - chunk.t_origin) <= T_ORIGIN_TOL_S
    if not matches and chunk.t_requested < step.t_tick:
        # older runners did not record the first chunk's own observation as step 0
        reason = (
            f"chunk {chunk.chunk_id} was inferred before the control loop started; that observation "
            f"is not recorded, step {step.step} stands in for it"
        )
        return ChunkInput(chunk, step, frames, False, [reason])
    if not matches:
        reason = (
            f"capture times at step {step.step} give t_origin {origin:.6f}, the chunk says "
            f"{chunk.t_origin:.6f} (a step or frame missing from the recording?)"
        )
        return ChunkInput(chunk, step, frames, False, [reason])
    return ChunkInput(chunk, step, frames, True)
