"""Run a session as episodes: the control loop once per episode, a reset and an outcome between.

Per episode: a fresh first chunk for the episode's task (the last episode's chunks are dropped),
``steps`` control steps recorded under the episode's take, then the outcome (the operator's label,
or ``done``), then the reset. While nothing is executed (label, reset, the next first chunk) the
loop keeps ticking at the control rate: in ``apply_actions`` every tick commands a hold (or a step
toward the reset pose) through the same guard, so the motors never go without commands and the
stall bound stays in force; in ``dry_run`` nothing is ever sent. Any failure is an
:class:`Incident` the session turns into exactly one safe stop; a stop request (Ctrl-C) ends the
episodes like it ends a plain loop.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from reflex.config.episodes import MAX_RERECORDS
from reflex.ports import SessionEvent
from reflex.runtime.guard import GuardRejected
from reflex.runtime.labels import HELP, OperatorInput, open_operator_input, parse_label
from reflex.runtime.report import Incident

if TYPE_CHECKING:
    from reflex.config.episodes import EpisodesConfig
    from reflex.ports import Hardware
    from reflex.recording.hub import Hub
    from reflex.recording.lerobot.resume import ResumePlan
    from reflex.runtime.loop import ControlLoop
    from reflex.runtime.signals import SignalGate


@dataclass
class EpisodeRecord:
    index: int  # the episode's place in the dataset (re-recorded takes reuse it)
    take: int  # every attempt has its own take; the recorders split on it
    task: str
    steps: int = 0
    outcome: str | None = None  # success / failure / re-record / done; None: stopped before labelled

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "take": self.take, "task": self.task, "steps": self.steps,
                "outcome": self.outcome}


@dataclass
class EpisodesReport:
    planned: int
    episodes: list[EpisodeRecord] = field(default_factory=list)
    stopped_by: str | None = None  # "operator" / "signal" / "input ended"
    resumed: int | None = None  # --resume: episodes the recording already held

    def kept(self) -> list[EpisodeRecord]:
        return [e for e in self.episodes if e.outcome != "re-record"]

    def to_json(self) -> dict[str, Any]:
        kept = self.kept()
        judged = [e for e in kept if e.outcome in ("success", "failure")]
        successes = sum(e.outcome == "success" for e in judged)
        return {
            "planned": self.planned,
            "recorded": len(kept),
            "reRecorded": len(self.episodes) - len(kept),
            "successes": successes,
            "failures": len(judged) - successes,
            "successRate": round(successes / len(judged), 4) if judged else None,
            "stoppedBy": self.stopped_by,
            "resumedAfter": self.resumed,
            "outcomes": [e.to_json() for e in self.episodes],
        }


class EpisodeRunner:
    def __init__(
        self,
        config: EpisodesConfig,
        loop: ControlLoop,
        hardware: Hardware,
        hub: Hub | None,
        gate: SignalGate,
        *,
        default_task: str,
        rate_hz: float,
        first_chunk_timeout_s: float,
        motors_live: Callable[[], bool],
        lines: OperatorInput | None = None,
        resume: ResumePlan | None = None,
    ) -> None:
        self.config = config
        self.loop = loop
        self.hardware = hardware
        self.hub = hub
        self.gate = gate
        self.default_task = default_task
        self.steps = config.steps_at(rate_hz)
        self.first_chunk_timeout_s = first_chunk_timeout_s
        self.motors_live = motors_live
        self.first_index = 0 if resume is None else resume.next_index
        self.first_take = 0 if resume is None else resume.next_take
        # appending to a finished dataset: this session's ``count`` episodes come after its own
        self.base = 0 if resume is None else resume.base_episodes
        self.total = self.base + config.count
        # the operator's input (keys at a terminal, lines from a pipe) opens when the episodes
        # start and closes when they end, the terminal restored whatever ends them
        self._needs_input = config.labels == "stdin" or config.reset.kind == "wait"
        self.lines = lines
        self.report = EpisodesReport(planned=self.total)
        self._reset_done = False  # labels: connector: the reset already ran to get the outcome
        self.index = self.first_index  # read by the live status line (another thread)
        self.phase = "run"  # run / label? (waiting for the operator) / reset / next chunk
        if resume is not None:  # the episodes already recorded count toward the result
            self.report.resumed = len(resume.episodes)
            self.report.episodes = [
                EpisodeRecord(int(e["index"]), int(e["take"]), str(e.get("task", "")), int(e.get("steps", 0)),
                              e.get("outcome")) for e in resume.episodes
            ]

    def status(self) -> str:
        """For the live status line: ``ep 2/3``, plus what it waits for between episodes."""
        text = f"ep {min(self.index, self.total - 1)}/{self.total}"
        return text if self.phase == "run" else f"{text} {self.phase}"

    def task(self, index: int) -> str:
        """``episodes.tasks`` are this session's: appended episodes take them from the first on."""
        return self.config.task_for(index - self.base, self.default_task)

    def prepare_first(self) -> None:
        """Before the first chunk is primed: the first episode's task and take."""
        self.loop.task = self.task(self.first_index)
        self.loop.episode = self.first_take

    # -- the episodes -----------------------------------------------------------------------
    def run(self) -> Incident | None:
        # one scheduled collector over every episode and the holds between them: a full
        # collection (what starting it afresh costs) must never fall between two live commands
        opened = self.lines is None and self._needs_input
        if opened:
            self.lines = open_operator_input()
        self.loop.collector.start()
        try:
            return self._episodes()
        finally:
            self.loop.collector.stop()
            if opened and self.lines is not None:
                self.lines.close()

    def _episodes(self) -> Incident | None:
        index, take = self.first_index, self.first_take
        while index < self.total:
            if take > self.first_take:
                incident = self._between(index, take)
                if incident is not None or self._stopping():
                    return incident
            record = EpisodeRecord(index, take, self.task(index))
            self.report.episodes.append(record)
            self.index, self.phase = index, "run"
            self._event("episode_start", f"episode {index} (take {take}): {record.task}", record)
            first = self.loop.steps
            incident = self.loop.run_steps(self.steps)
            record.steps = self.loop.steps - first
            if incident is not None or self.loop.exhausted is not None:
                self._event("episode_end", f"episode {index} ended early", record)
                return incident
            if self.gate.stop_requested.is_set():
                self.report.stopped_by = "signal"
                self._event("episode_end", f"episode {index} stopped by a signal", record)
                return None
            outcome, incident = self._outcome(index)
            record.outcome = outcome
            self._event("episode_end", f"episode {index}: {outcome}", record)
            if incident is not None:
                return incident
            take += 1
            if outcome == "re-record":
                self._event("episode_discarded", f"episode {index} take {record.take} discarded", record)
                if take - self.first_take - (index - self.first_index) > MAX_RERECORDS:
                    self.report.stopped_by = "operator"
                    return None
                continue
            if outcome is None:
                return None  # stopped while waiting for the label
            index += 1
        return None

    def _stopping(self) -> bool:
        if self.gate.stop_requested.is_set():
            self.report.stopped_by = self.report.stopped_by or "signal"
            return True
        return self.report.stopped_by is not None

    def _outcome(self, index: int) -> tuple[str | None, Incident | None]:
        if self.config.labels == "connector":
            outcome, incident = self._reset_command(index)
            self._reset_done = True
            return outcome or "done", incident
        if self.config.labels != "stdin":
            return "done", None
        self.phase = "label? " + HELP
        how = "press a key" if self.lines is not None and self.lines.keys else "type a line"
        _say(f"episode {index} finished: label it ({how}) {HELP}")
        while True:
            line, incident = self._read_line()
            if incident is not None or line is None:
                return None, incident
            label = parse_label(line)
            if label is None:
                if line:  # Enter alone at a terminal: not worth an answer
                    _say(f"not a label: {line[:40]!r}; {HELP}")
                continue
            _say(f"episode {index}: {label}")
            if label == "stop":
                self.report.stopped_by = "operator"
                return None, None
            return label, None

    def _read_line(self) -> tuple[str | None, Incident | None]:
        """The next operator line, holding meanwhile; None on a stop request or end of input."""
        assert self.lines is not None
        got: list[str | None] = []

        def ready() -> bool:
            arrived, line = self.lines.poll() if self.lines is not None else (True, None)
            if arrived:
                got.append(line)
            return arrived

        incident = self._hold(ready, what="waiting for the operator")
        if incident is not None:
            return None, incident
        if not got:  # stop requested (Ctrl-C) while waiting
            self.report.stopped_by = self.report.stopped_by or "signal"
            return None, None
        if got[0] is None:
            signalled = self.gate.stop_requested.is_set()
            self.report.stopped_by = self.report.stopped_by or ("signal" if signalled else "input ended")
        return got[0], None

    # -- between episodes --------------------------------------------------------------------
    def _between(self, index: int, take: int) -> Incident | None:
        reset = self.config.reset
        self.phase = "reset"
        if reset.kind == "pose":
            incident = self._reset_pose(index)
            if incident is not None:
                return incident
        elif reset.kind == "command":
            done, self._reset_done = self._reset_done, False
            if not done:
                _, incident = self._reset_command(index - 1)
                if incident is not None:
                    return incident
        elif reset.kind == "wait":
            self.phase = "reset? [Enter] go  [q] stop"
            _say(f"reset the scene for episode {index}, then press Enter (q to stop)")
            line, incident = self._read_line()
            if incident is not None or line is None:
                return incident
            if parse_label(line) == "stop":
                self.report.stopped_by = "operator"
                return None
        if self._stopping():
            return None
        self.loop.task = self.task(index)
        self.loop.episode = take
        self.phase = "next chunk"
        return self._fresh_chunk()

    def _reset_pose(self, index: int) -> Incident | None:
        reset = self.config.reset
        assert reset.pose is not None
        pose = np.asarray(reset.pose, dtype=float)
        if not self.motors_live():
            self._event("reset", f"reset before episode {index}: skipped (dry_run never moves)")
            return None
        self._event("reset", f"reset before episode {index}: to {reset.pose}")
        ticks = [0]
        reached: list[bool] = []

        def there(measured: np.ndarray) -> bool:
            ticks[0] += 1
            if float(np.max(np.abs(measured - pose))) <= reset.tolerance:
                reached.append(True)
                return True
            return ticks[0] > reset.max_steps

        incident = self._hold(lambda: False, what="reset", toward=pose, until_state=there)
        if incident is None and not reached and not self.gate.stop_requested.is_set():
            return Incident("reset", f"reset pose not reached within {reset.max_steps} steps "
                            f"(tolerance {reset.tolerance})")
        return incident

    def _reset_command(self, ended: int) -> tuple[str | None, Incident | None]:
        """The connector's own reset after episode ``ended`` (apply_actions only); its outcome."""
        if not self.motors_live():
            self._event("reset", f"reset after episode {ended}: skipped (dry_run never moves)")
            return None, None
        reset = getattr(self.hardware, "reset", None)
        if reset is None or not getattr(self.hardware, "can_reset", False):
            return None, Incident("reset", "reset.kind 'command' needs a connector that declares a reset "
                                  "(subprocess: can_reset in the handshake, or reset_command)")
        self._event("reset", f"reset after episode {ended}: the connector's reset")
        try:
            outcome = reset(ended, self.config.reset.timeout_s)
        except Exception as exc:
            return None, Incident("reset", f"after episode {ended}: {type(exc).__name__}: {exc}")
        self.loop.stalls.restart()  # the connector had charge of the robot meanwhile
        self.loop.last_command = None  # hold where the reset left the robot, not where it started
        return (str(outcome) if outcome is not None else None), None

    def _fresh_chunk(self) -> Incident | None:
        """The next episode's first chunk, for the scene after the reset, holding meanwhile."""
        loop = self.loop
        worker = loop.worker
        incident = self._hold(lambda: not worker.busy, what="the last episode's inference")
        if incident is not None or self._stopping():
            return incident
        worker.poll()  # an answer for the last episode's scene: dropped
        loop.schedule.clear()
        deadline = loop.clock() + self.first_chunk_timeout_s
        obs_box: list[Any] = []

        def fresh() -> bool:
            obs, stale = loop.observe(loop.steps)
            if stale is None:
                obs_box.append(obs)
            return stale is None or loop.clock() > deadline

        incident = self._hold(fresh, what="a fresh observation")
        if incident is not None or self._stopping():
            return incident
        if not obs_box:
            return Incident("observe", "no fresh observation for the next episode's first chunk")
        obs = obs_box[0]
        worker.submit(obs)
        results: list[Any] = []

        def answered() -> bool:
            result = worker.poll()
            if result is not None:
                results.append(result)
            return result is not None or loop.clock() > deadline

        incident = self._hold(answered, what="the next episode's first chunk")
        if incident is not None or self._stopping():
            return incident
        if not results:
            return Incident("infer", f"no first chunk for the next episode within {self.first_chunk_timeout_s} s")
        try:
            loop.adopt(results[0])
        except Exception as exc:
            return Incident("infer", f"next episode's first chunk rejected: {type(exc).__name__}: {exc}")
        loop.start_from(obs)
        return None

    def _hold(
        self,
        done: Callable[[], bool],
        *,
        what: str,
        toward: np.ndarray | None = None,
        until_state: Callable[[np.ndarray], bool] | None = None,
    ) -> Incident | None:
        """Tick at the control rate until ``done()`` (or ``until_state(measured)``) or a stop
        request. With live motors each tick commands the hold (the last command) or a guarded
        step toward ``toward``; in dry_run nothing is sent."""
        loop = self.loop
        live = self.motors_live()
        period = loop.period
        t_next = loop.clock()
        while not self.gate.stop_requested.is_set():
            now = loop.clock()
            if t_next > now:
                loop.sleep(t_next - now)
            t_tick = loop.clock()
            t_next = max(t_next + period, t_tick - period)
            if live or until_state is not None:
                gap = loop.stalls.note(t_tick) if live else None
                if gap is not None:
                    return Incident("stall", f"{what}: no command to the robot for {gap * 1e3:.0f} ms "
                                    "while its motors were live")
                try:
                    measured = np.asarray(self.hardware.read_state().position, dtype=float)
                except Exception as exc:
                    return Incident("observe", f"{what}: {type(exc).__name__}: {exc}")
                if live:
                    target = toward if toward is not None else loop.last_command
                    if target is None:
                        target = measured
                    try:
                        action, _ = loop.guard.check(target, measured)
                        self.hardware.apply(action, loop.steps)
                    except GuardRejected as exc:
                        return Incident("guard", f"{what}: {exc}")
                    except Exception as exc:
                        return Incident("apply", f"{what}: {type(exc).__name__}: {exc}")
                    loop.last_command = action
                if until_state is not None and until_state(measured):
                    return None
            if done():
                return None
            loop.collector.idle(t_next - loop.clock())
        return None

    def _event(self, kind: str, message: str, record: EpisodeRecord | None = None) -> None:
        if self.hub is not None:
            data = {} if record is None else record.to_json()
            self.hub.submit(SessionEvent(kind=kind, t=time.monotonic(), step=self.loop.steps,
                                         message=message, data=data))


def _say(message: str) -> None:
    """Operator prompts go to stderr: stdout carries the result (--json)."""
    print(message, file=sys.stderr, flush=True)
