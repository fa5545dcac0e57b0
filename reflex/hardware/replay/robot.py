"""A recorded session served as a robot and its cameras, on the recording's own timeline.

The recorded timeline starts, at recorded step 0, with the newest read for the loop's step 0:
the observation the first chunk is inferred from, or, should that one be too old by the time the
loop's first tick comes (a slow first inference, a loaded machine), the fresh read that tick
takes. So the new session's step 0 is always recorded step 0. From then on live time selects
the recorded step whose state time is nearest (within half a control period, so a few ms of loop
phase never shift it by one) and the cameras serve the newest frame recorded at or before that
step: the new session's step ``k`` sees the observation step ``k`` saw. Capture times are mapped
onto the live monotonic clock and never lie in the future.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from pathlib import Path

import numpy as np

from reflex.hardware.replay.config import ReplayConfig
from reflex.ports import Camera, Frame, JointLayout, SourceExhausted, StateSample
from reflex.replay.episode import Episode, RecordedFrame

log = logging.getLogger(__name__)
END_GRACE_S = 0.25  # reads this far past the last recorded state still get it (a loaded machine lags)


class RecordingEnded(RuntimeError):
    """The recording has no more states (``at_end: error``)."""


class _Timeline:
    """Maps live monotonic time to a recorded step (with optional looping)."""

    def __init__(self, episode: Episode, at_end: str) -> None:
        steps = episode.steps
        period = 1.0 / episode.meta.control_rate_hz
        self.t_states = [step.t_state for step in steps]
        self.t_first, self.t_last = self.t_states[0], self.t_states[-1]
        self.cycle = (self.t_last - self.t_first) + period
        self.half_period = period / 2
        self.grace = max(END_GRACE_S, 3 * period)
        self.at_end = at_end
        self.steps_recorded = len(steps)
        self._reads = 0
        self._live_anchor: float | None = None  # live time of recorded step 0
        self._lock = threading.Lock()

    def on_read(self, now: float, step: int | None) -> tuple[int, int]:
        """A state read for loop step ``step``: the first read, and every read for step 0, (re)start
        the timeline."""
        with self._lock:
            self._reads += 1
            if self._reads == 1 or step == 0:
                self._live_anchor = now
        return self.position(now)

    def position(self, now: float) -> tuple[int, int]:
        """(index of the recorded step to serve, loop count) at live time ``now``."""
        anchor = self._live_anchor
        if anchor is None:
            return 0, 0
        elapsed = now - anchor
        loops = 0
        if self.at_end == "loop":
            loops = int(elapsed // self.cycle)
            elapsed -= loops * self.cycle
        t = self.t_first + elapsed
        if self.at_end == "stop" and t > self.t_last + self.grace:
            raise SourceExhausted(f"the recording ended after {self.steps_recorded} steps")
        if self.at_end != "loop" and t > self.t_last + self.grace:
            raise RecordingEnded(
                f"the recording ended: it has {self.steps_recorded} steps "
                f"({self.t_last - self.t_first:.2f} s); set max_steps <= {self.steps_recorded} "
                "or hardware.config.at_end: loop"
            )
        return max(0, bisect.bisect_right(self.t_states, t + self.half_period) - 1), loops

    def live(self, t_recorded: float, loops: int) -> float:
        """The live monotonic time of recorded time ``t_recorded`` (never in the future)."""
        now = time.monotonic()
        anchor = now if self._live_anchor is None else self._live_anchor
        return min(anchor + (t_recorded - self.t_first) + loops * self.cycle, now)


class ReplayHardware:
    """Read-only: ``enable`` and ``apply`` refuse (``can_apply`` is False, so the config already
    rules out ``apply_actions``)."""

    can_apply = False
    simulated = True  # a recording, not a robot (see runtime.stalls)
    accepts_step = True  # the reads for step 0 anchor the recorded timeline

    def __init__(self, config: ReplayConfig, path: Path) -> None:
        self.config = config
        self.path = path
        self.layout = JointLayout((), np.zeros(0), np.zeros(0))  # the recording's, once connected
        self.episode: Episode | None = None
        self.safe_stops: list[str] = []
        self._timeline: _Timeline | None = None
        self._cameras: dict[str, ReplayCamera] = {}

    def connect(self) -> None:
        from reflex.replay.layout import recorded_layout, unbounded_layout
        from reflex.replay.readers import read_recording

        episodes = read_recording(self.path, self.config.format, self.config.partial, self.config.mapping)
        if self.config.episode >= len(episodes):
            raise ValueError(f"hardware.config.episode {self.config.episode}: the recording has {len(episodes)}")
        episode = episodes[self.config.episode]
        if not episode.steps:
            raise ValueError(f"{episode.label}: the recording has no steps")
        self.episode = episode
        self.layout = recorded_layout(episode.meta) or unbounded_layout(episode.meta.joint_names)
        self._timeline = _Timeline(episode, self.config.at_end)
        frames: dict[str, list[RecordedFrame]] = {}
        for step in episode.steps:
            for name, frame in step.frames.items():
                frames.setdefault(name, []).append(frame)
        for name, series in frames.items():
            if any(f.loader is None for f in series):
                log.warning("replay: camera '%s' was recorded without images; not served", name)
                continue
            self._cameras[name] = ReplayCamera(name, series, episode, self._timeline)

    def cameras(self) -> dict[str, Camera]:
        """The recorded cameras; the runner adds them to every observation."""
        return dict(self._cameras)

    def enable(self) -> None:
        raise RuntimeError("replay hardware cannot be enabled: it only plays a recording back (use dry_run)")

    def read_state(self, step: int | None = None) -> StateSample:
        assert self.episode is not None and self._timeline is not None, "read_state before connect"
        index, loops = self._timeline.on_read(time.monotonic(), step)
        recorded = self.episode.steps[index]
        t_capture = self._timeline.live(recorded.t_state, loops)
        return StateSample(position=recorded.state.copy(), t_capture=t_capture, extras={"recorded_step": recorded.step})

    def apply(self, action: np.ndarray, step: int) -> None:
        raise RuntimeError("replay hardware cannot apply actions (it only plays a recording back)")

    def safe_stop(self, reason: str) -> None:
        self.safe_stops.append(reason)  # nothing moves: a safe stop is only noted

    def close(self) -> None:
        for camera in self._cameras.values():
            camera.stop()


class ReplayCamera:
    """A recorded camera: ``latest()`` is the newest frame recorded at or before the served step."""

    def __init__(self, name: str, frames: list[RecordedFrame], episode: Episode, timeline: _Timeline) -> None:
        self.name = name
        self._frames = sorted(frames, key=lambda f: f.step)
        self._first_steps = [f.step for f in self._frames]
        self._step_numbers = [s.step for s in episode.steps]
        self._seq_span = max(f.seq for f in self._frames) + 1
        self._timeline = timeline
        self._cached: tuple[int, np.ndarray] | None = None

    def start(self) -> None:
        pass

    def latest(self) -> Frame | None:
        try:
            index, loops = self._timeline.position(time.monotonic())
        except (RecordingEnded, SourceExhausted):
            return None  # the state read reports the end; a camera never raises from latest()
        found = bisect.bisect_right(self._first_steps, self._step_numbers[index]) - 1
        if found < 0:
            return None
        frame = self._frames[found]
        if self._cached is None or self._cached[0] != found:
            self._cached = (found, frame.load())
        return Frame(
            image=self._cached[1],
            t_capture=self._timeline.live(frame.t_capture, loops),
            seq=frame.seq + loops * self._seq_span,
        )

    def stop(self) -> None:
        self._cached = None
