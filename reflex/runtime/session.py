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

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflex import __version__
from reflex.config.base import BuildContext
from reflex.config.bounds import overridden
from reflex.errors import SessionAborted, SetupError
from reflex.ports import Camera, Hardware, SessionEvent, SessionMeta, Target, TargetInfo
from reflex.recording.hub import RecordingHub
from reflex.recording.session_dir import new_session_id, recording_dir
from reflex.runtime.chunks import ChunkSchedule
from reflex.runtime.guard import ActionGuard
from reflex.runtime.inference import InferenceWorker
from reflex.runtime.loop import ControlLoop, Incident
from reflex.runtime.result import SessionResult
from reflex.runtime.signals import ForcedExit, SignalGate
from reflex.runtime.target_fit import RobotSide, target_mismatches

if TYPE_CHECKING:
    from reflex.config.session import SessionConfig

RECORDER_CLOSE_S = 30.0
FORCED_EXIT_FLUSH_S = 2.0


@dataclass
class RunOptions:
    record_dir: str | None = None
    formats: list[str] | None = None
    no_record: bool = False
    api_key: str | None = None
    verbose: bool = False


def run_session_file(
    path: str | Path,
    *,
    record_dir: str | None = None,
    formats: list[str] | None = None,
    no_record: bool = False,
    api_key: str | None = None,
    verbose: bool = False,
    gate: SignalGate | None = None,
) -> SessionResult:
    """Load ``path`` and run the session. Raises ConfigError for bad input (exit code 2)."""
    from reflex.config.loader import load_session_config
    from reflex.config.overrides import apply_record_overrides

    path = Path(path)
    config = load_session_config(path)
    config = apply_record_overrides(config, str(path), formats)
    options = RunOptions(record_dir, formats, no_record, api_key, verbose)
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
        )
        self.target: Target | None = None
        self.info: TargetInfo | None = None
        self.hardware: Hardware | None = None
        self.cameras: dict[str, Camera] = {}
        self.hub: RecordingHub | None = None
        self.worker: InferenceWorker | None = None
        self.loop: ControlLoop | None = None
        self.enabled = False
        self._enable_failed = False
        self._t_start = 0.0

    # -- public ---------------------------------------------------------------------------
    def run(self) -> SessionResult:
        self._t_start = time.monotonic()
        self.gate.install()
        incident: Incident | None = None
        try:
            self._connect()
            self.gate.phase = "running"
            self.result.stop_reason = "running"
            assert self.loop is not None
            incident = self.loop.run(self._t_start)
            if incident is None:
                if self.loop.exhausted is not None:
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

        provided = getattr(self.hardware, "cameras", None)
        if callable(provided):
            self.cameras.update(provided())
        for name, spec in cfg.cameras.items():
            camera = self._setup(f"cameras.{name}", lambda s=spec, n=name: s.build(n, self.ctx))
            self._setup(f"cameras.{name}", camera.start)
            self.cameras[name] = camera
        self._check_fit(RobotSide(layout.names, set(self.cameras), layout=layout))

        self._start_recording()
        guard = ActionGuard(layout, cfg.safety.max_delta)
        schedule = ChunkSchedule(cfg.chunking.interpolate, cfg.chunking.prefetch_margin_s)
        self.worker = InferenceWorker(self.target)
        max_ages = {
            name: (cfg.cameras[name].max_age_ms if name in cfg.cameras else 200.0) / 1e3
            for name in self.cameras
        }
        self.loop = ControlLoop(
            cfg, self.hardware, self.cameras, max_ages, self.worker, schedule, guard,
            layout.dim, self.info.action_dt, self.hub, self.gate,
        )
        self._first_chunk()
        if cfg.mode == "apply_actions":
            try:
                self._setup("hardware.enable", self.hardware.enable)
            except SetupError:
                self._enable_failed = True  # some motors may be live: _finish safe-stops
                raise
            self.enabled = True
            self._event("enabled", "motors enabled after the first valid chunk")

    def _first_chunk(self) -> None:
        """Motors stay off until the target answered a real observation with a valid chunk."""
        assert self.loop is not None and self.worker is not None
        cfg = self.config
        deadline = time.monotonic() + cfg.safety.first_chunk_timeout_s
        while True:
            obs, stale = self.loop.observe(step=0)
            self._check_frame_sizes(obs.images)
            if stale is None:
                break
            if time.monotonic() > deadline:
                raise SetupError("observe", f"no fresh observation before the first chunk: {stale}")
            time.sleep(0.01)
        self.worker.submit(obs)
        result = self.worker.wait(max(0.1, deadline - time.monotonic()))
        if result is None:
            raise SetupError("target", f"no first chunk within {cfg.safety.first_chunk_timeout_s} s")
        try:
            self.loop.adopt(result)
        except Exception as exc:
            raise SetupError("target", f"first chunk rejected: {type(exc).__name__}: {exc}") from exc
        self.loop.first_obs = obs
        self.result.chunks["firstChunkMs"] = round((result.t_received - result.t_requested) * 1e3, 3)

    def _check_fit(self, robot: RobotSide) -> None:
        """What the target declares must fit (one rule: reflex/runtime/target_fit.py)."""
        assert self.info is not None
        problems = target_mismatches(self.info, robot)
        if problems:
            raise SetupError("target", "; ".join(problems))

    def _check_frame_sizes(self, frames: dict[str, Any]) -> None:
        for name, spec in self.config.cameras.items():
            frame = frames.get(name)
            if frame is None or (spec.width is None and spec.height is None):
                continue
            h, w = frame.image.shape[:2]
            if (spec.width is not None and w != spec.width) or (spec.height is not None and h != spec.height):
                raise SetupError(
                    f"cameras.{name}", f"frames are {w}x{h}, config expects {spec.width}x{spec.height}"
                )

    def _setup(self, stage: str, fn: Any) -> Any:
        try:
            return fn()
        except (SessionAborted, SetupError):
            raise
        except Exception as exc:
            raise SetupError(stage, f"{type(exc).__name__}: {exc}") from exc

    def _start_recording(self) -> None:
        cfg, opts = self.config, self.options
        if opts.no_record or not cfg.record.enabled:
            return
        from reflex.recording.factory import build_recorders

        directory = recording_dir(opts.record_dir or cfg.record.dir, self.session_id, opts.api_key)
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
            camera_names=tuple(self.cameras),
            task=cfg.task,
            target=self.info,
            t_start_wall=time.time(),
            t_start_mono=time.monotonic(),
            expert_override=self.result.expert_override,
        )
        recorders = build_recorders(cfg.record.formats, directory, cfg.record.images, cfg.record.image_encoding)
        self.hub = RecordingHub(
            recorders, meta, cfg.record.queue_size, directory, int(cfg.record.queue_budget_mb * 2**20)
        )
        failures = self.hub.start()
        self.result.recording = {"path": str(directory), "formats": list(cfg.record.formats)}
        if failures:
            raise SetupError("record", "; ".join(failures))

    # -- shutdown -------------------------------------------------------------------------
    def _finish(self, incident: Incident | None) -> None:
        self.gate.phase = "stopping"
        res = self.result
        if incident is not None:
            res.errors.append(str(incident))
            if res.stop_reason in ("running", "not_started"):
                res.stop_reason = f"incident:{incident.stage}"
            self._safe_stop(str(incident))
        elif self._enable_failed:
            self._safe_stop("enable failed: " + (res.errors[-1] if res.errors else "unknown error"))
        try:
            if incident is None and self.enabled and self.config.safety.home_on_stop:
                home = getattr(self.hardware, "go_home", None)
                if callable(home):
                    home()
        except Exception as exc:
            res.errors.append(f"home: {type(exc).__name__}: {exc}")
            self._safe_stop(f"home failed: {exc}")
        health = {}
        for name, camera in self.cameras.items():
            probe = getattr(camera, "health", None)  # optional: cameras that can describe their source
            if callable(probe):
                try:
                    health[name] = probe()
                except Exception as exc:
                    health[name] = {"error": str(exc)}
        for name, camera in self.cameras.items():
            try:
                camera.stop()
            except Exception as exc:
                res.errors.append(f"cameras.{name}: stop: {exc}")
        if self.hardware is not None:
            try:
                self.hardware.close()
            except Exception as exc:
                res.errors.append(f"hardware: close: {type(exc).__name__}: {exc}")
        if self.worker is not None:
            self.worker.close()
        if self.target is not None:
            try:
                self.target.close()
            except Exception as exc:
                res.errors.append(f"target: close: {type(exc).__name__}: {exc}")
        res.duration_s = time.monotonic() - self._t_start
        self._summarise()
        for name, info in health.items():
            res.cameras.setdefault(name, {})["health"] = info
        self._close_recording()
        self.gate.restore()

    def _safe_stop(self, reason: str) -> None:
        """Exactly one safe stop per incident; a failing safe stop is reported, never hidden."""
        self.result.safe_stops += 1
        self._event("safe_stop", reason)
        if self.hardware is None:
            return
        try:
            self.hardware.safe_stop(reason)
        except Exception as exc:
            self.result.safe_stop_failures.append(f"{type(exc).__name__}: {exc}")
            self._event("safe_stop_failed", str(exc))

    def _event(self, kind: str, message: str) -> None:
        if self.hub is not None:
            step = self.loop.steps if self.loop is not None else 0
            self.hub.submit(SessionEvent(kind=kind, t=time.monotonic(), step=step, message=message))

    def _summarise(self) -> None:
        res, loop = self.result, self.loop
        if loop is None:
            return
        res.steps = loop.steps
        res.applied_steps = loop.applied_steps
        if loop.first_action_t is not None:
            res.time_to_first_action_s = loop.first_action_t - self._t_start
        res.loop = {
            "rateHz": self.config.control_rate_hz,
            "latenessMs": loop.lateness.summary(),
            "overruns": loop.overruns,
            "heldSteps": loop.held_steps,
        }
        res.stages_ms = {**loop.times.summary(), "infer": loop.infer_ms.summary()}
        sched = loop.schedule
        res.chunks.update(
            {
                "received": sched.chunks_adopted,
                "skippedActions": sched.skipped_actions,
                "starvedSteps": loop.starved_steps,
            }
        )
        res.cameras = loop.camera_summary(res.duration_s)
        res.guard = {
            "clampLimitSteps": loop.guard.clamp_counts["clamp_limit"],
            "clampDeltaSteps": loop.guard.clamp_counts["clamp_delta"],
        }
        res.stale = {"staleSteps": loop.stale_steps, "skewEvents": loop.skew_events}

    def _close_recording(self) -> None:
        if self.hub is None:
            return
        self._event("session_end", self.result.stop_reason)
        timeout = FORCED_EXIT_FLUSH_S if self.result.stop_reason == "forced_exit" else RECORDER_CLOSE_S
        unfinished = self.hub.close(timeout, self.gate.leave_now)
        stats = self.hub.stats()
        assert self.result.recording is not None
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
