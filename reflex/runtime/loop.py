"""The control loop: observe -> action for now -> guard -> apply (or log) -> record, at a fixed rate.

It knows only the ports and owns its chunks: :meth:`ControlLoop.prime` gets the first chunk
(before any motor is live), :meth:`ControlLoop.run` executes and replaces chunks and returns one
:class:`LoopReport`. Any failure ends the loop with an :class:`Incident` in that report; the
session turns it into exactly one safe stop. Inference runs on the worker thread and is requested
ahead of time, so the loop never waits for a chunk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from reflex.errors import SetupError
from reflex.ports import (
    ActionChunk,
    ChunkAwareHardware,
    Frame,
    GuardEvent,
    Hardware,
    Observation,
    SessionEvent,
    SourceExhausted,
    StepAwareHardware,
    StepRecord,
    hardware_capabilities,
)
from reflex.runtime.cameras import SessionCameras
from reflex.runtime.chunks import ChunkInvalid, ChunkSchedule, horizon_problem, validate_chunk
from reflex.runtime.collector import LoopCollector
from reflex.runtime.guard import ActionGuard, GuardRejected
from reflex.runtime.inference import InferenceResult, InferenceWorker
from reflex.runtime.realtime import YIELD_S, RealtimeThread
from reflex.runtime.report import Incident, LoopReport
from reflex.runtime.seams import Seam
from reflex.runtime.signals import SignalGate
from reflex.runtime.stalls import StallMeter, command_gap_bound, is_simulated
from reflex.runtime.timing import Samples, StageTimes
from reflex.runtime.wakeups import WakeMeter

LIVE_WINDOW = 256  # lateness samples the live status line takes its p99 from

if TYPE_CHECKING:
    from reflex.config.session import SessionConfig
    from reflex.recording.hub import Hub


@dataclass
class CameraStats:
    max_age_s: float
    last_seq: int = -1
    new_frames: int = 0
    stale_steps: int = 0
    ages_ms: Samples = field(default_factory=Samples)


class ControlLoop:
    def __init__(
        self,
        config: SessionConfig,
        hardware: Hardware,
        cameras: SessionCameras,
        worker: InferenceWorker,
        schedule: ChunkSchedule,
        guard: ActionGuard,
        action_width: int,
        chunk_dt: float,
        hub: Hub | None,
        gate: SignalGate,
        prefix_length: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        realtime: RealtimeThread | None = None,
    ) -> None:
        # The loop's time: the real monotonic clock, or a simulated one in tests (then the
        # hardware and inference must answer in that time too).
        self.clock = clock
        self.sleep = sleep
        self.config = config
        self.hardware = hardware
        self.cameras = cameras
        self.worker = worker
        self.schedule = schedule
        self.guard = guard
        self.action_width = action_width  # the robot's joints: every chunk, the first included
        self.chunk_dt = chunk_dt  # seconds between chunk actions, as the target declares
        self.hub = hub
        self.gate = gate
        self.apply_enabled = config.mode == "apply_actions"
        self.period = 1.0 / config.control_rate_hz
        self.stalls = StallMeter(self.period, command_gap_bound(config.safety.max_command_gap_ms, hardware),
                                 excuse_host_wait=is_simulated(hardware))
        self.safety = config.safety
        self.times = StageTimes("observe", "chunk", "guard", "apply", "record", "tick")
        self.lateness = Samples(recent=LIVE_WINDOW)  # the live status line reads the recent ones
        self.infer_ms = Samples()
        self.camera_stats = {n: CameraStats(age) for n, age in cameras.max_ages_s().items()}
        self.steps = 0
        self.applied_steps = 0
        self.held_steps = 0
        self.starved_steps = 0
        self.stale_steps = 0
        self.skew_events = 0
        self.overruns = 0
        self.slow_ticks = 0  # ticks whose work took more than two periods
        self.collector = LoopCollector()  # the GC runs between ticks, never inside one
        self.wakeups = WakeMeter(self.period)  # ticks starting over a period late, and why
        self.realtime = realtime or RealtimeThread(None)  # loop.realtime: checked at set-up
        self.next_chunk_id = 1
        self.first_action_t: float | None = None
        self._consecutive_holds = 0
        self._stale_reason: str | None = None
        self.first_chunk_ms: float | None = None
        self._first_obs: Observation | None = None  # the first chunk's input, used at step 0
        self._capabilities = hardware_capabilities(hardware)
        self.exhausted: str | None = None  # a finite source (a replayed recording) ran out
        self.prefix_length = prefix_length  # fill Observation.prefix (RTC) for chunks this long
        self.warm_latency_s: float | None = None
        self.task = config.task  # the instruction sent with every observation (per episode with episodes)
        self.episode: int | None = None  # recorded with every step: recorders split episodes on it
        self.last_command: np.ndarray | None = None  # the last action applied (what a hold repeats)

    # -- first chunk ---------------------------------------------------------------------
    def prime(self, timeout_s: float) -> None:
        """Get the first chunk: wait for a fresh observation, infer it, validate and adopt the
        answer. Motors stay off until this returns; any failure is a :class:`SetupError`."""
        self.collector.prepare()  # the full collection of the set-up heap, before anything is observed
        self._prime(timeout_s)

    def _prime(self, timeout_s: float) -> None:
        deadline = self.clock() + timeout_s
        while True:
            obs, stale = self.observe(step=0)
            self.cameras.check_sizes(obs.images)
            if stale is None:
                break
            if self.clock() > deadline:
                raise SetupError("observe", f"no fresh observation before the first chunk: {stale}")
            self.sleep(0.01)
        self.worker.submit(obs)
        result = self.worker.wait(max(0.1, deadline - self.clock()))
        if result is None:
            raise SetupError("target", f"no first chunk within {timeout_s} s")
        try:
            self.adopt(result)
        except Exception as exc:
            raise SetupError("target", f"first chunk rejected: {type(exc).__name__}: {exc}") from exc
        self._first_obs = obs
        self.first_chunk_ms = round((result.t_received - result.t_requested) * 1e3, 3)
        if self.schedule.execution.horizon is not None:
            self._check_horizon(obs, deadline)

    def _check_horizon(self, obs: Observation, deadline: float) -> None:
        """Refuse a horizon the target's latency cannot meet, measured on a second (warm) request:
        a first request often pays one-off start-up costs."""
        self.worker.submit(obs)
        result = self.worker.wait(max(0.1, deadline - self.clock()))
        if result is None or result.error is not None:
            raise SetupError("target", "no answer to the second (latency) request before the timeout")
        latency = result.t_received - result.t_requested
        self.warm_latency_s = latency
        current = self.schedule.current or self.schedule.pending
        assert current is not None
        problem = horizon_problem(self.schedule, current.horizon, self.chunk_dt, latency)
        if problem is not None:
            raise SetupError("execution.horizon", problem)

    def observe(self, step: int) -> tuple[Observation, str | None]:
        """Read state and the latest frames; the second value says why the data is stale."""
        hardware = self.hardware
        if self._capabilities.step_aware and isinstance(hardware, StepAwareHardware):
            state = hardware.read_state(step=step)
        else:
            state = hardware.read_state()
        frames: dict[str, Frame] = {}
        for name, camera in self.cameras.items():
            frame = camera.latest()
            if frame is not None:
                frames[name] = frame
        obs = Observation(step=step, state=state, images=frames, task=self.task)
        return obs, self._staleness(obs, self.clock())

    def adopt(self, result: InferenceResult) -> ActionChunk:
        """Validate a finished inference and make it the current chunk (raises on bad data)."""
        if result.error is not None:
            raise result.error
        assert result.actions is not None
        actions = validate_chunk(result.actions, self.action_width)
        chunk = ActionChunk(
            chunk_id=self.next_chunk_id,
            actions=actions,
            t_origin=result.obs.t_capture,
            dt=self.chunk_dt,
            obs_step=result.obs.step,
            t_requested=result.t_requested,
            t_received=result.t_received,
            timing=dict(result.timing),
            request_id=result.request_id,
        )
        self.next_chunk_id += 1
        self.infer_ms.add((result.t_received - result.t_requested) * 1e3)
        skipped = self.schedule.adopt(chunk)
        chunk.timing["skipped_actions"] = float(skipped)
        if self.hub is not None:
            self.hub.submit(chunk)
        return chunk

    # -- main loop -----------------------------------------------------------------------
    def run(self, t_start: float) -> LoopReport:
        """Run until max_steps / duration / a stop request / an incident; returns the report."""
        cfg = self.config
        # duration_s is the loop's own running time: set-up (connect, first chunk) is not counted
        incident = self.run_steps(cfg.max_steps or None, cfg.duration_s)
        return self.report(self.clock() - t_start, incident)

    def run_steps(self, count: int | None, duration_s: float | None = None) -> Incident | None:
        """Run ``count`` more steps (None: until stopped), numbered on from :attr:`steps`: one
        episode of an episodes session, or the whole of a plain one."""
        deadline = self.clock() + duration_s if duration_s else None
        owned = not self.collector.active  # an episodes session holds it across its episodes
        if owned:
            self.collector.start()
        refused = self.realtime.enter()  # this thread only, and only while it runs ticks
        try:
            if refused is not None:
                return Incident("realtime", refused)
            return self._ticks(None if count is None else self.steps + count, deadline)
        finally:
            self.realtime.leave()
            self.wakeups.close()
            if owned:
                self.collector.stop()

    def start_from(self, obs: Observation) -> None:
        """The next run starts at ``obs``, the observation its (already adopted) first chunk came
        from: a new episode after :meth:`ChunkSchedule.clear`."""
        self._first_obs = obs

    def _ticks(self, max_steps: int | None, deadline: float | None) -> Incident | None:
        t_next = self.clock()
        step = self.steps
        slow = 2 * self.period
        while not self.gate.stop_requested.is_set():
            if max_steps is not None and step >= max_steps:
                break
            now = self.clock()
            if deadline is not None and now >= deadline:
                break
            if t_next > now:
                self.sleep(t_next - now)
            elif self.realtime.active:
                # late: no sleep is due, but a real-time thread that never blocks would keep every
                # normal thread off its CPU; give it up briefly
                self.realtime.late_yields += 1
                self.sleep(YIELD_S)
            t_tick = self.clock()
            self.lateness.add((t_tick - t_next) * 1e3)
            self.wakeups.woke(t_tick - t_next)
            gap = self.stalls.note(t_tick) if self.apply_enabled else None
            if gap is not None:
                self.steps = step
                return Incident("stall", f"step {step}: no command to the robot for {gap * 1e3:.0f} ms "
                                f"while its motors were live (safety.max_command_gap_ms = "
                                f"{(self.stalls.bound_s or 0) * 1e3:g})")
            incident = self._tick(step, t_tick)
            if self.clock() - t_tick > slow:
                self.slow_ticks += 1
            if self.exhausted is not None:
                break
            self.steps = step + 1
            if incident is not None:
                return incident
            step += 1
            t_next += self.period
            if t_next < self.clock() - self.period:
                # More than a whole period behind: skip the missed ticks instead of bursting.
                self.overruns += 1
                t_next = self.clock()
            self.collector.idle(t_next - self.clock())
        return None

    def _tick(self, step: int, t_tick: float) -> Incident | None:
        times = self.times
        # observe
        t0 = time.perf_counter()
        first, self._first_obs = self._first_obs, None
        stale = None if first is None else self._staleness(first, self.clock())
        if first is not None and stale is None:
            obs = first  # step 0 is the observation the first chunk came from (recorded as such)
        else:
            try:
                obs, stale = self.observe(step)
            except SourceExhausted as exc:
                self.exhausted = str(exc)
                return None
            except Exception as exc:
                return Incident("observe", f"step {step}: {type(exc).__name__}: {exc}")
        t1 = time.perf_counter()
        times.add("observe", (t1 - t0) * 1e3)
        new_frames = self._note_frames(obs, self.clock())

        # chunk: adopt a finished inference, request the next one ahead of time
        result = self.worker.poll()
        if result is not None:
            try:
                self.adopt(result)
            except ChunkInvalid as exc:
                return Incident("infer", f"step {step}: invalid chunk: {exc}")
            except Exception as exc:
                return Incident("infer", f"step {step}: {type(exc).__name__}: {exc}")
        busy_for = self.worker.busy_for(t_tick)
        if busy_for > self.safety.infer_timeout_s:
            return Incident("infer", f"step {step}: no answer from the target for {busy_for:.1f} s")
        if stale is None and not self.worker.busy and self.schedule.needs_next(t_tick):
            if self.prefix_length:
                obs.prefix = self.schedule.prefix_for(obs.t_capture, self.prefix_length, self.chunk_dt)
            self.worker.submit(obs)
        planned = self.schedule.action_at(t_tick)
        t2 = time.perf_counter()
        times.add("chunk", (t2 - t1) * 1e3)

        # decide: hold, or guard the action for now
        action: np.ndarray | None = None
        events: list[GuardEvent] = []
        hold_reason = None
        if stale is not None:
            self.stale_steps += 1
            hold_reason = f"stale data ({stale})"
            if self.safety.on_stale == "safe_stop":
                return Incident("stale", f"step {step}: {stale}")
        elif planned is None:
            self.starved_steps += 1
            hold_reason = "no action for now (chunk ran out before the next arrived)"
        self._note_stale_transition(step, t_tick, stale)
        if hold_reason is not None:
            self.held_steps += 1
            self._consecutive_holds += 1
            if self._consecutive_holds > self.safety.max_hold_steps:
                return Incident("starved" if stale is None else "stale", f"step {step}: {hold_reason} "
                                f"for {self._consecutive_holds} consecutive steps")
        else:
            self._consecutive_holds = 0
            assert planned is not None
            try:
                action, events = self.guard.check(planned[0], obs.state.position)
            except GuardRejected as exc:
                return Incident("guard", f"step {step}: {exc}")
        self.schedule.seams.note_command(action)
        t3 = time.perf_counter()
        times.add("guard", (t3 - t2) * 1e3)

        # apply (never in dry_run)
        applied = False
        if action is not None and self.apply_enabled:
            try:
                hardware = self.hardware
                current = self.schedule.current
                if self._capabilities.chunk_aware and current is not None and isinstance(
                    hardware, ChunkAwareHardware
                ):
                    hardware.apply(action, step, chunk_id=current.chunk_id, t_target=t_tick)
                else:
                    self.hardware.apply(action, step)
            except Exception as exc:
                return Incident("apply", f"step {step}: {type(exc).__name__}: {exc}")
            applied = True
            self.applied_steps += 1
            self.last_command = action
        if action is not None and self.first_action_t is None:
            self.first_action_t = self.clock()
        t4 = time.perf_counter()
        times.add("apply", (t4 - t3) * 1e3)

        # record
        seams = self.schedule.seams.drain()
        if self.hub is not None:
            for seam in seams:
                self.hub.submit(self._seam_event(step, seam))
            chunk = self.schedule.current
            self.hub.submit(self._record(step, t_tick, obs, new_frames, action, applied, events, chunk, planned))
            failures = self.hub.failures()
            if failures and self.config.record.on_error == "safe_stop":
                return Incident("record", f"step {step}: recorder failed: {'; '.join(failures)}")
        t5 = time.perf_counter()
        times.add("record", (t5 - t4) * 1e3)
        times.add("tick", (t5 - t0) * 1e3)
        return None

    # -- helpers -------------------------------------------------------------------------
    def _staleness(self, obs: Observation, now: float) -> str | None:
        age = now - obs.state.t_capture
        if age * 1e3 > self.safety.max_state_age_ms:
            return f"state is {age * 1e3:.0f} ms old (max {self.safety.max_state_age_ms:.0f} ms)"
        for name, stats in self.camera_stats.items():
            frame = obs.images.get(name)
            if frame is None:
                return f"camera '{name}' has no frame"
            frame_age = now - frame.t_capture
            if frame_age > stats.max_age_s:
                return f"camera '{name}' frame is {frame_age * 1e3:.0f} ms old (max {stats.max_age_s * 1e3:.0f} ms)"
        max_skew = self.safety.max_skew_ms
        if max_skew is not None and obs.images:
            times = [obs.state.t_capture, *(f.t_capture for f in obs.images.values())]
            skew = (max(times) - min(times)) * 1e3
            if skew > max_skew:
                self.skew_events += 1
                return f"capture times spread {skew:.1f} ms (max {max_skew:.1f} ms)"
        return None

    def _note_frames(self, obs: Observation, now: float) -> dict[str, Frame]:
        """Per-camera age and fps bookkeeping; returns the frames that are new this step."""
        new: dict[str, Frame] = {}
        for name, stats in self.camera_stats.items():
            frame = obs.images.get(name)
            if frame is None:
                stats.stale_steps += 1
                continue
            age = now - frame.t_capture
            stats.ages_ms.add(age * 1e3)
            if age > stats.max_age_s:
                stats.stale_steps += 1
            if frame.seq != stats.last_seq:
                stats.new_frames += 1
                stats.last_seq = frame.seq
                new[name] = frame
        return new

    def _note_stale_transition(self, step: int, t: float, stale: str | None) -> None:
        """One event when data goes stale and one when it recovers, not one per step."""
        if (stale is None) == (self._stale_reason is None):
            return
        kind, message = ("stale", stale) if stale is not None else ("fresh", "data fresh again")
        self._stale_reason = stale
        if self.hub is not None:
            self.hub.submit(SessionEvent(kind=kind, t=t, step=step, message=message or ""))

    def _record(
        self,
        step: int,
        t_tick: float,
        obs: Observation,
        new_frames: dict[str, Frame],
        action: np.ndarray | None,
        applied: bool,
        events: list[GuardEvent],
        chunk: ActionChunk | None,
        planned: tuple[np.ndarray, float] | None,
    ) -> StepRecord:
        return StepRecord(
            step=step,
            t_tick=t_tick,
            state=obs.state,
            frames=new_frames,
            action=action,
            applied=applied,
            chunk_id=None if chunk is None else chunk.chunk_id,
            chunk_index=None if planned is None else planned[1],
            chunk_age_s=None if chunk is None else t_tick - chunk.t_origin,
            guard_events=events,
            task=obs.task,
            timing_ms={},
            episode=self.episode,
        )

    def report(self, duration_s: float, incident: Incident | None = None) -> LoopReport:
        """Everything the result needs from this loop, in one object (valid at any time)."""
        sched = self.schedule
        chunks: dict[str, object] = {
            "received": sched.chunks_adopted,
            "skippedActions": sched.skipped_actions,
            "starvedSteps": self.starved_steps,
        }
        if self.first_chunk_ms is not None:
            chunks = {"firstChunkMs": self.first_chunk_ms, **chunks}
        return LoopReport(
            steps=self.steps,
            applied_steps=self.applied_steps,
            held_steps=self.held_steps,
            starved_steps=self.starved_steps,
            stale_steps=self.stale_steps,
            skew_events=self.skew_events,
            overruns=self.overruns,
            slow_ticks=self.slow_ticks,
            gc=self.collector.summary(),
            late_wakeups=self.wakeups.summary(),
            first_action_t=self.first_action_t,
            incident=incident,
            exhausted=self.exhausted,
            lateness_ms=self.lateness.summary(),
            stages_ms={**self.times.summary(), "infer": self.infer_ms.summary()},
            chunks=chunks,
            guard={
                "clampLimitSteps": self.guard.clamp_counts["clamp_limit"],
                "clampDeltaSteps": self.guard.clamp_counts["clamp_delta"],
            },
            cameras=self.camera_summary(duration_s),
            seams=self.seam_summary(),
            stalls=self.stalls.summary() if self.apply_enabled else {},
        )

    def _seam_event(self, step: int, seam: Seam) -> SessionEvent:
        names = self.guard.layout.names
        worst = int(np.argmax(seam.jump))
        return SessionEvent(
            kind="seam", t=seam.t, step=step,
            message=f"chunk {seam.chunk_id} took over: jump {seam.jump[worst]:.4g} at {names[worst]}, "
                    f"gap {float(np.max(seam.gap)):.4g}",
            data={"chunkId": seam.chunk_id, "jump": [float(x) for x in seam.jump],
                  "gap": [float(x) for x in seam.gap], "windowSteps": seam.window_steps},
        )

    def seam_summary(self) -> dict[str, object]:
        sched = self.schedule
        execution = sched.execution
        return {
            "blend": execution.blend,
            "blendS": execution.blend_s if execution.blend == "crossfade" else None,
            "ensembleK": execution.ensemble_k if execution.blend == "ensemble" else None,
            "horizonActions": execution.horizon,
            "horizonMisses": sched.horizon_misses,
            "prefix": bool(self.prefix_length),
            **sched.seams.summary(self.guard.layout.names),
        }

    def camera_summary(self, duration_s: float) -> dict[str, dict[str, object]]:
        return {
            name: {
                "fps": round(s.new_frames / duration_s, 2) if duration_s > 0 else 0.0,
                "newFrames": s.new_frames,
                "ageMs": s.ages_ms.summary(),
                "staleSteps": s.stale_steps,
            }
            for name, s in self.camera_stats.items()
        }
