"""One robot session, from config file to result.

Order (the safety invariants depend on it):

1. the inference target connects — a Ctrl-C here aborts with nothing powered;
2. the hardware connects read-only (no torque), cameras start, recorders open;
3. the first observation is taken and the first chunk inferred and validated;
4. ``apply_actions`` only: the hardware is enabled (motors live) — never in ``dry_run``;
5. the control loop runs until max_steps / duration / Ctrl-C / an incident;
6. an incident -> exactly one ``safe_stop``; then cameras, hardware, target and recorders close.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from reflex import __version__
from reflex.config.base import BuildContext
from reflex.config.bounds import overridden
from reflex.errors import SessionAborted, SetupError
from reflex.ports import Hardware, HomingHardware, Recorder, SessionEvent, SessionMeta, Target, TargetInfo
from reflex.recording.hub import Hub, RecordingHub
from reflex.recording.session_dir import new_session_id, recording_dir
from reflex.runtime.cameras import SessionCameras
from reflex.runtime.chunks import ChunkSchedule, ExecutionSettings
from reflex.runtime.episodes import EpisodeRunner
from reflex.runtime.guard import ActionGuard
from reflex.runtime.inference import InferenceWorker
from reflex.runtime.loop import ControlLoop
from reflex.runtime.realtime import RealtimeThread
from reflex.runtime.report import Incident, LoopReport
from reflex.runtime.result import SessionResult
from reflex.runtime.signals import ForcedExit, SignalGate
from reflex.runtime.target_fit import RobotSide, target_mismatches

if TYPE_CHECKING:
    from reflex.config.session import SessionConfig
    from reflex.recording.dir_lock import RecordingLock
    from reflex.recording.lerobot.resume import ResumePlan

RECORDER_CLOSE_S = 30.0
FORCED_EXIT_FLUSH_S = 2.0


class SessionWatcher(Protocol):
    """Something that follows a running session from its own thread (the live status line).

    ``running`` is called once the loop is about to start, ``finished`` once it ended (before
    anything else is closed or printed). Neither may block; an exception is ignored.
    """

    def running(self, session: Session) -> None: ...

    def finished(self) -> None: ...


@dataclass
class RunOptions:
    record_dir: str | None = None
    formats: list[str] | None = None
    no_record: bool = False
    api_key: str | None = None
    verbose: bool = False
    watchers: list[SessionWatcher] = field(default_factory=list)
    resume: bool = False  # append episodes to the interrupted recording in record_dir
    # more consumers of the recording stream (the live viewer): fed like recorders, from the hub
    sinks: list[Recorder] = field(default_factory=list)


def run_session_file(
    path: str | Path,
    *,
    record_dir: str | None = None,
    formats: list[str] | None = None,
    no_record: bool = False,
    api_key: str | None = None,
    verbose: bool = False,
    gate: SignalGate | None = None,
    watchers: list[SessionWatcher] | None = None,
    sinks: list[Recorder] | None = None,
    resume: bool = False,
) -> SessionResult:
    """Load ``path`` and run the session. Raises ConfigError for bad input (exit code 2)."""
    from reflex.config.loader import load_session_config
    from reflex.config.overrides import apply_record_overrides

    path = Path(path)
    config = load_session_config(path)
    config = apply_record_overrides(config, str(path), formats)
    options = RunOptions(record_dir, formats, no_record, api_key, verbose, list(watchers or []),
                         resume=resume, sinks=list(sinks or []))
    return Session(config, path, options, gate).run()


def config_hash(config: SessionConfig) -> str:
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Session:
    def __init__(
        self, config: SessionConfig, path: Path, options: RunOptions, gate: SignalGate | None = None
    ) -> None:
        self.config = config
        self.path = path
        self.options = options
        self.gate = gate or SignalGate()
        self.session_id = new_session_id()
        self.result = SessionResult(config=str(path), mode=config.mode, session_id=self.session_id)
        self.result.expert_override = overridden(config)
        self.ctx = BuildContext(
            config_dir=path.resolve().parent,
            mode=config.mode,
            control_rate_hz=config.control_rate_hz,
            api_key=options.api_key,
            verbose=options.verbose,
            session_id=self.session_id,
            max_delta=config.safety.max_delta,
            stop=config.safety.stop,
            signals=lambda: self.gate.count,
        )
        self.target: Target | None = None
        self.info: TargetInfo | None = None
        self.hardware: Hardware | None = None
        self.cameras = SessionCameras()
        self.hub: Hub | None = None
        self.worker: InferenceWorker | None = None
        self.loop: ControlLoop | None = None
        self.realtime = RealtimeThread(config.loop.realtime)  # the loop thread's scheduling class
        self.episodes: EpisodeRunner | None = None
        self.enabled = False
        self._enable_failed = False
        self._hardware_closed = False
        self._record_lock: RecordingLock | None = None
        self._resume: ResumePlan | None = None
        self._owns_signals = False
        self._t_start = 0.0
        self._report: LoopReport | None = None

    # -- public ---------------------------------------------------------------------------
    @property
    def t_start(self) -> float:
        """Monotonic time the session started (connect included)."""
        return self._t_start

    def run(self) -> SessionResult:
        """Run the session. Raises ConfigError (nothing touched) if the recording directory is
        refused: it holds a recording, or a live session is writing it."""
        self._t_start = time.monotonic()
        self._claim_recording_dir()
        self._owns_signals = self.gate.install()
        incident: Incident | None = None
        try:
            self._connect()
            self.gate.phase = "running"
            self.result.stop_reason = "running"
            assert self.loop is not None
            self._tell_watchers("running")
            if self.episodes is not None:
                episode_incident = self.episodes.run()
                self._report = self.loop.report(time.monotonic() - self._t_start, episode_incident)
            else:
                self._report = self.loop.run(self._t_start)
            incident = self._report.incident
            if incident is None:
                if self._report.exhausted is not None:
                    self.result.stop_reason = "source_exhausted"
                elif self.gate.stop_requested.is_set():
                    self.result.stop_reason = f"signal:{self.gate.last_signal}"
                else:
                    self.result.stop_reason = "completed"
        except SessionAborted as exc:
            self.result.aborted = True
            self.result.stop_reason = "aborted"
            self.result.errors.append(str(exc))
        except SetupError as exc:
            self.result.setup_failed = True
            self.result.stop_reason = "setup_failed"
            self.result.errors.append(str(exc))
        except ForcedExit as exc:
            self.result.aborted = True
            self.result.stop_reason = "forced_exit"
            incident = Incident("signal", str(exc))
        except Exception as exc:  # a bug or an unexpected failure: still stop safely
            incident = Incident("runner", f"{type(exc).__name__}: {exc}")
        finally:
            self._finish(incident)
        return self.result

    # -- bring-up -------------------------------------------------------------------------
    def _connect(self) -> None:
        cfg = self.config
        self.realtime.check()  # refused with required: true -> SetupError before anything connects
        self.target = cfg.target.build(self.ctx)
        try:
            self.info = self.target.connect()
        except (SessionAborted, SetupError):
            raise
        except Exception as exc:
            raise SetupError("target", f"{type(exc).__name__}: {exc}") from exc
        self.result.target = {
            "kind": self.info.kind,
            "providers": list(self.info.providers),
            "modelHash": self.info.model_hash,
            "chunkLength": self.info.chunk_length,
            "actionDt": self.info.action_dt,
            **self.info.details,
        }
        early = cfg.hardware.layout()  # known from the config alone for some kinds
        self._check_fit(RobotSide(early.names if early else None, None, layout=early))

        self.hardware = self._setup("hardware", lambda: cfg.hardware.build(self.ctx))
        self.ctx.hardware = self.hardware
        self._setup("hardware", self.hardware.connect)
        layout = self.hardware.layout

        self.cameras.add_provided(self.hardware)
        for name, spec in cfg.cameras.items():
            camera = self._setup(f"cameras.{name}", lambda s=spec, n=name: s.build(n, self.ctx))
            self._setup(f"cameras.{name}", camera.start)
            self.cameras.add_started(name, camera, spec.max_age_ms / 1e3, spec.width, spec.height)
        self._check_fit(RobotSide(layout.names, set(self.cameras.names()), layout=layout))
        self._check_resume_fits()

        self._start_recording()
        guard = ActionGuard(layout, cfg.safety.max_delta)
        schedule = ChunkSchedule(
            cfg.chunking.interpolate, cfg.chunking.prefetch_margin_s, self._execution_settings(),
            1.0 / cfg.control_rate_hz,
        )
        self.worker = InferenceWorker(self.target)
        self.loop = ControlLoop(
            cfg, self.hardware, self.cameras, self.worker, schedule, guard,
            layout.dim, self.info.action_dt, self.hub, self.gate,
            prefix_length=self.info.chunk_length if self.info.accepts_prefix and cfg.execution.prefix else None,
            realtime=self.realtime,
        )
        if cfg.episodes is not None:
            self.episodes = EpisodeRunner(
                cfg.episodes, self.loop, self.hardware, self.hub, self.gate, default_task=cfg.task,
                rate_hz=cfg.control_rate_hz, first_chunk_timeout_s=cfg.safety.first_chunk_timeout_s,
                motors_live=lambda: self.enabled, resume=self._resume,
            )
            self.episodes.prepare_first()
        self.loop.prime(cfg.safety.first_chunk_timeout_s)  # motors stay off until this succeeds
        if cfg.mode == "apply_actions":
            # the one full walk of the set-up heap happens while nothing is live: a pause of a
            # few hundred ms here would otherwise starve the motor bus right after enable
            gc.collect()
            gc.freeze()
            try:
                self._setup("hardware.enable", self.hardware.enable)
            except SetupError:
                self._enable_failed = self._hardware_powered()  # motors were live: _finish safe-stops
                raise
            except SessionAborted as exc:
                raise self._aborted_during_enable(exc) from exc
            self.enabled = True
            self._event("enabled", "motors enabled after the first valid chunk")

    def _hardware_powered(self) -> bool:
        """Whether an enable frame went out (connectors say so with ``powered``; unknown counts
        as powered)."""
        return bool(getattr(self.hardware, "powered", True))

    def _aborted_during_enable(self, exc: SessionAborted) -> SessionAborted:
        """A signal during enable (or what it includes, e.g. gripper calibration): the report
        says whether any motor was powered and, if so, _finish makes it one safe stop and says
        how that went."""
        signal_name = self.gate.last_signal or "signal"
        if not self._hardware_powered():
            return SessionAborted(f"{signal_name} during hardware.enable, before any motor was powered: aborted")
        self._enable_failed = True
        return SessionAborted(f"{signal_name} during hardware.enable, after the first enable frame")

    def _execution_settings(self) -> ExecutionSettings:
        """``execution`` resolved against the target: a horizon in seconds becomes actions."""
        assert self.info is not None
        ex = self.config.execution
        horizon = ex.horizon
        if ex.horizon_s is not None:
            horizon = max(1, round(ex.horizon_s / self.info.action_dt))
        length = self.info.chunk_length  # undeclared: checked on the first chunk (prime)
        if horizon is not None and length is not None and horizon > length:
            raise SetupError("execution.horizon", f"{horizon} actions is longer than the target's chunks "
                             f"({length} actions of {self.info.action_dt:g} s)")
        return ExecutionSettings(horizon, ex.blend, ex.blend_s, ex.ensemble_k)

    def _check_fit(self, robot: RobotSide) -> None:
        """What the target declares must fit (one rule: reflex/runtime/target_fit.py)."""
        assert self.info is not None
        problems = target_mismatches(self.info, robot)
        if problems:
            raise SetupError("target", "; ".join(problems))

    def _setup(self, stage: str, fn: Any) -> Any:
        try:
            return fn()
        except (SessionAborted, SetupError):
            raise
        except Exception as exc:
            raise SetupError(stage, f"{type(exc).__name__}: {exc}") from exc

    def _claim_recording_dir(self) -> None:
        cfg, opts = self.config, self.options
        from reflex.errors import ConfigError, ConfigIssue

        if opts.resume:
            problem = _resume_problem(cfg, opts)
            if problem:
                raise ConfigError(str(self.path), [ConfigIssue("--resume", problem)])
        if opts.no_record or not cfg.record.enabled:
            return
        from reflex.recording.dir_lock import RecordingDirRefused, claim_recording_dir
        from reflex.recording.lerobot.resume import ResumeRefused, plan_resume

        directory = recording_dir(opts.record_dir or cfg.record.dir, self.session_id, opts.api_key)
        where = "--record" if opts.record_dir else ("record.dir" if cfg.record.dir else "recording directory")
        try:
            self._record_lock = claim_recording_dir(directory, self.session_id, resume=opts.resume)
        except RecordingDirRefused as exc:
            raise ConfigError(str(self.path), [ConfigIssue(where, str(exc))]) from None
        if opts.resume:
            try:
                self._resume = plan_resume(directory / "lerobot")
                problems = _resume_config_mismatches(cfg, self._resume, directory)
                if problems:
                    raise ResumeRefused(f"{directory}: {'; '.join(problems)}: resuming would mix two kinds of "
                                        "recordings in one dataset; record into a new directory")
            except ResumeRefused as exc:
                self._record_lock.release()
                self._record_lock = None
                self._resume = None
                raise ConfigError(str(self.path), [ConfigIssue("--resume", str(exc))]) from None

    def _check_resume_fits(self) -> None:
        """--resume, once the robot and cameras are up and before anything is written or powered:
        the recording's joints and cameras must be this session's."""
        if self._resume is None:
            return
        from reflex.recording.lerobot.resume import mismatches

        cfg = self.config
        assert self.hardware is not None
        cameras = list(self.cameras.names()) if cfg.record.images else []
        problems = mismatches(self._resume.status, {
            "joints": list(self.hardware.layout.names), "cameras": cameras,
            "image_cameras": cameras if cfg.record.image_encoding == "lossless" else [],
        })
        if problems:
            raise SetupError("--resume", f"{'; '.join(problems)}: resuming would mix two kinds of rows in one "
                             "dataset; nothing was written or powered")

    def _start_recording(self) -> None:
        cfg, opts = self.config, self.options
        recording = not opts.no_record and cfg.record.enabled
        if not recording and not opts.sinks:
            return
        from reflex.recording.factory import build_recorders

        directory = self._record_lock.directory if recording and self._record_lock is not None else None
        assert self.hardware is not None
        meta = SessionMeta(
            session_id=self.session_id,
            config_path=str(self.path),
            config_resolved=cfg.model_dump(mode="json"),
            config_hash=config_hash(cfg),
            mode=cfg.mode,
            software_version=__version__,
            control_rate_hz=cfg.control_rate_hz,
            joint_names=self.hardware.layout.names,
            camera_names=tuple(self.cameras.names()),
            task=cfg.task,
            target=self.info,
            t_start_wall=time.time(),
            t_start_mono=time.monotonic(),
            expert_override=self.result.expert_override,
        )
        budget = int(cfg.record.queue_budget_mb * 2**20)
        if directory is not None and cfg.record.isolation == "process":
            from reflex.recording.process_hub import ProcessRecordingHub

            self.hub = ProcessRecordingHub(
                list(cfg.record.formats), directory, meta, cfg.record.queue_size, budget,
                images=cfg.record.images, image_encoding=cfg.record.image_encoding,
                resume=self._resume is not None, sinks=opts.sinks,
            )
        else:
            recorders = (
                build_recorders(cfg.record.formats, directory, cfg.record.images, cfg.record.image_encoding)
                if directory is not None else []
            )
            for recorder in recorders:
                if self._resume is not None and hasattr(recorder, "resume"):
                    recorder.resume = True
            self.hub = RecordingHub(recorders, meta, cfg.record.queue_size, directory, budget, sinks=opts.sinks)
        failures = self.hub.start()
        if directory is not None:
            self.result.recording = {"path": str(directory), "formats": list(cfg.record.formats)}
        if failures:
            raise SetupError("record", "; ".join(failures))

    # -- shutdown -------------------------------------------------------------------------
    def _tell_watchers(self, what: str) -> None:
        for watcher in self.options.watchers:
            with contextlib.suppress(Exception):  # a display must never take the session down
                watcher.running(self) if what == "running" else watcher.finished()

    def _finish(self, incident: Incident | None) -> None:
        self._tell_watchers("finished")
        self.gate.phase = "stopping"
        res = self.result
        if incident is not None:
            res.errors.append(str(incident))
            if res.stop_reason in ("running", "not_started"):
                res.stop_reason = f"incident:{incident.stage}"
            self._safe_stop(str(incident))
        elif self._enable_failed:
            stopped = self._safe_stop("enable failed: " + (res.errors[-1] if res.errors else "unknown error"))
            res.errors.append(
                "hardware.enable: motors were powered (an enable frame went out); "
                + ("safe-stopped" if stopped else "the safe stop failed, check the robot (safeStopFailures)")
            )
        res.motors_powered = self.enabled or self._enable_failed
        try:
            hardware = self.hardware
            wanted = incident is None and self.enabled and self.config.safety.home_on_stop
            if wanted and isinstance(hardware, HomingHardware):
                hardware.go_home()
        except Exception as exc:
            res.errors.append(f"home: {type(exc).__name__}: {exc}")
            self._safe_stop(f"home failed: {exc}")
        health = self.cameras.health()
        res.errors.extend(self.cameras.stop())
        self._forced_during_shutdown()
        if self.hardware is not None:
            left_before = len(self._left_to_watchdog())
            try:
                self.hardware.close()
            except Exception as exc:
                # a stop in close that left a motor to its watchdog is a failed safe stop
                failed = len(self._left_to_watchdog()) > left_before
                (res.safe_stop_failures if failed else res.errors).append(
                    f"hardware: close: {type(exc).__name__}: {exc}"
                )
            self._hardware_closed = True
            res.left_to_watchdog = list(self._left_to_watchdog())
        if self.worker is not None:
            self.worker.close()
        if self.target is not None:
            try:
                self.target.close()
            except Exception as exc:
                res.errors.append(f"target: close: {type(exc).__name__}: {exc}")
        res.duration_s = time.monotonic() - self._t_start
        report = self._report
        if report is None and self.loop is not None:  # the loop never ran, or raised
            report = self.loop.report(res.duration_s, incident)
        if report is not None:
            res.add_loop_report(report, self.config.control_rate_hz, self._t_start)
            if report.seams.get("switches"):
                jump = report.seams.get("jump") or {}
                self._event("seams", f"{report.seams['switches']} chunk switches, jump p50 {jump.get('p50')} "
                            f"max {jump.get('max')}, jerk p99 {report.seams.get('jerkP99')}", report.seams)
        res.loop["realtime"] = self.realtime.summary()
        for name, info in health.items():
            res.cameras.setdefault(name, {})["health"] = info
        if self.episodes is not None:
            res.episodes = self.episodes.report.to_json()
        self._close_recording()
        if self._record_lock is not None:
            self._record_lock.release()
        self.gate.phase = "done"  # the result is decided: from here on signals are only counted
        self._forced_during_shutdown()
        if self._owns_signals:
            self.gate.restore()

    def _forced_during_shutdown(self) -> None:
        """A second signal after the loop ended forces the session too (exit 130): one safe stop
        while the hardware is still open, whatever the gap between the two signals."""
        res = self.result
        if not self.gate.forced or res.stop_reason in ("forced_exit", "aborted"):
            return
        res.aborted = True
        res.errors.append(f"second {self.gate.last_signal} during shutdown: leaving now")
        res.stop_reason = "forced_exit"
        if res.safe_stops == 0 and self.hardware is not None and not self._hardware_closed:
            self._safe_stop(f"second {self.gate.last_signal} during shutdown")

    def _safe_stop(self, reason: str) -> bool:
        """Exactly one safe stop per incident; a failing safe stop is reported, never hidden.
        Returns whether it succeeded."""
        self.result.safe_stops += 1
        self._event("safe_stop", reason)
        if self.hardware is None:
            return True
        try:
            self.hardware.safe_stop(reason)
        except Exception as exc:
            self.result.safe_stop_failures.append(f"{type(exc).__name__}: {exc}")
            self._event("safe_stop_failed", str(exc))
            return False
        return True

    def _left_to_watchdog(self) -> list[dict[str, Any]]:
        """Motors a stop could not confirm disabled, as the connector states them (YAM: see
        reflex.can.unconfirmed); other connectors report none."""
        return list(getattr(self.hardware, "left_to_watchdog", None) or [])

    def _event(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        if self.hub is not None:
            step = self.loop.steps if self.loop is not None else 0
            self.hub.submit(SessionEvent(kind=kind, t=time.monotonic(), step=step, message=message,
                                         data=data or {}))

    def _close_recording(self) -> None:
        if self.hub is None:
            return
        self._event("session_end", self.result.stop_reason)
        timeout = FORCED_EXIT_FLUSH_S if self.result.stop_reason == "forced_exit" else RECORDER_CLOSE_S
        unfinished = self.hub.close(timeout, self.gate.leave_now)
        stats = self.hub.stats()
        sinks = self.hub.sink_stats()
        if sinks:  # the live viewer: reported, never an error of the session
            self.result.view = {
                s.name: {"sent": s.written_steps, "dropped": s.dropped, "failed": s.failed, **s.extra} for s in sinks
            }
        if self.result.recording is None:  # recording off: the hub only fed the viewer
            return
        self.result.recording["dropped"] = {s.name: s.dropped for s in stats}
        self.result.recording["writtenSteps"] = {s.name: s.written_steps for s in stats}
        self.result.recording["recorderBusyS"] = {s.name: round(s.busy_s, 3) for s in stats}
        failures = self.hub.failures()  # failed, or fell behind (dropped whole steps)
        self.result.recording["failures"] = failures
        self.result.recording["unfinished"] = unfinished
        self.result.recording.update(self.hub.report())
        for failure in failures:
            self.result.errors.append(f"record: {failure}")
        for name in unfinished:
            self.result.errors.append(f"record: {name}: not finished within the close timeout")


def _resume_problem(cfg: SessionConfig, opts: RunOptions) -> str | None:
    """--resume appends episodes to one LeRobot dataset in a named directory, nothing else."""
    if cfg.episodes is None:
        return "--resume appends episodes: the session needs an episodes block"
    if opts.no_record or not cfg.record.enabled:
        return "--resume appends to a recording: recording is off"
    if not (opts.record_dir or cfg.record.dir):
        return "--resume needs the recording to continue: give --record DIR (or record.dir)"
    if list(cfg.record.formats) != ["lerobot"]:
        return (f"--resume appends LeRobot episodes: record.formats must be [lerobot], not {cfg.record.formats} "
                "(jsonl, mcap and rerun recordings are not appended to)")
    return None


def _resume_config_mismatches(cfg: SessionConfig, plan: ResumePlan, directory: Path) -> list[str]:
    """What the config alone shows differs from the recording (before anything is built)."""
    from reflex.recording.manifest import MANIFEST, read_json

    problems = []
    recorded = (read_json(directory / MANIFEST) or {}).get("formats") or {}
    if sorted(recorded) != ["lerobot"]:
        problems.append(f"record.formats: recorded {sorted(recorded)}, this session ['lerobot'] "
                        "(only a lerobot-only recording is appended to)")
    fps = plan.status.get("fps")
    if fps is not None and fps != round(cfg.control_rate_hz):
        problems.append(f"control_rate_hz (fps): recorded {fps}, this session {cfg.control_rate_hz:g}")
    cams = plan.status.get("cameras")
    if cams and not cfg.record.images:
        problems.append(f"record.images: recorded with the images of {cams}, this session without")
    elif cams and bool(plan.status.get("image_cameras")) != (cfg.record.image_encoding == "lossless"):
        was = "lossless" if plan.status.get("image_cameras") else "lossy"
        problems.append(f"record.image_encoding: recorded {was}, this session {cfg.record.image_encoding}")
    early = cfg.hardware.layout()
    joints = plan.status.get("joints")
    if early is not None and joints is not None and list(early.names) != list(joints):
        problems.append(f"joints: recorded {joints}, this session {list(early.names)}")
    return problems
