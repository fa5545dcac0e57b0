"""The subprocess connector: the Hardware port on top of user commands (per call or persistent).

Lifecycle: ``connect`` runs setup, the persistent handshake and one read-only probe observation
(so a mis-wired script fails before anything moves); ``enable`` / ``apply`` only in apply_actions;
``safe_stop`` asks the process (if it is still trustworthy) and runs ``safe_stop_command``;
``close`` always ends the process and runs teardown.
"""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Any

import numpy as np
from pydantic import BaseModel

from reflex import __version__
from reflex.config.base import BuildContext
from reflex.errors import SetupError
from reflex.hardware.subprocess import codec
from reflex.hardware.subprocess.config import SubprocessConfig
from reflex.hardware.subprocess.contract import (
    CONTRACT_VERSION,
    Ack,
    ApplyRequest,
    CameraDeclaration,
    CloseRequest,
    EnableRequest,
    Handshake,
    HelloRequest,
    Observation,
    ObserveRequest,
    RequestBase,
    ResetRequest,
    SafeStopRequest,
    SetupRequest,
    TeardownRequest,
)
from reflex.hardware.subprocess.errors import ConnectorError, ContractViolation, excerpt, tail
from reflex.hardware.subprocess.images import SubprocessCamera
from reflex.hardware.subprocess.layout import reconcile
from reflex.hardware.subprocess.observation import ObservationDecoder
from reflex.hardware.subprocess.persistent import ChannelBroken, PersistentProcess
from reflex.hardware.subprocess.process import CommandSpec, StartFailed, describe_exit, run_once
from reflex.hardware.subprocess.streams import MAX_REPLY_BYTES
from reflex.ports import Camera, JointLayout, StateSample

# Per call, which config field serves which request.
PER_CALL_FIELDS = {
    "setup": "setup_command",
    "observe": "observe_command",
    "enable": "enable_command",
    "apply": "action_command",
    "safe_stop": "safe_stop_command",
    "reset": "reset_command",
    "teardown": "teardown_command",
}
COMMAND_FIELDS = (*dict.fromkeys(PER_CALL_FIELDS.values()), "command")


class SubprocessHardware:
    """``hardware.kind: subprocess``. ``layout`` is known after ``connect`` (persistent mode may
    take it from the handshake)."""

    def __init__(self, config: SubprocessConfig, ctx: BuildContext) -> None:
        self.config = config
        self.mode = ctx.mode
        self.session_id = ctx.session_id or uuid.uuid4().hex[:12]
        self.control_rate_hz = ctx.control_rate_hz
        self.cwd = ctx.resolve_path(config.cwd) if config.cwd else ctx.config_dir.resolve()
        self.commands: dict[str, CommandSpec] = {}
        for field in COMMAND_FIELDS:
            value = getattr(config, field)
            if value is not None:
                self.commands[field] = CommandSpec.from_config(
                    field, value, config.shell, self.cwd, config.env
                )
        self.persistent = config.protocol == "persistent"
        if not self.persistent:
            # one process per call takes its own time every step: its gaps are measured
            # (loop.stalls), but only a bound the session sets makes one an incident
            self.command_gap_bound_s: float | None = None
        self._layout: JointLayout | None = None
        self._declared_limits = False
        self._cameras: dict[str, SubprocessCamera] = {}
        self._extra_cameras: dict[str, Camera] = {}
        self._decoder: ObservationDecoder | None = None
        self._process: PersistentProcess | None = None
        self._ids = itertools.count(1)
        self._reads = 0
        self._last_stderr = ""  # stderr tail of the latest per-call command
        self._last_step: int | None = None
        self._connected = False
        self._enabled = False
        self._closed = False
        self.handshake: Handshake | None = None
        self.can_apply = not self.persistent and "action_command" in self.commands
        self.accepts_chunk_context = True  # apply() takes chunk_id= and t_target= keywords
        self.accepts_step = True  # read_state() takes step= (else it counts its own calls)

    # -- port: layout ----------------------------------------------------------------------
    @property
    def layout(self) -> JointLayout:
        if self._layout is None:
            raise RuntimeError("subprocess connector: the joint layout is known after connect() "
                               "(persistent connectors declare it in their handshake)")
        return self._layout

    @layout.setter
    def layout(self, value: JointLayout) -> None:
        self._layout = value

    def cameras(self) -> dict[str, Camera]:
        """Cameras this connector provides (valid after connect): name -> Camera."""
        return {**self._cameras, **self._extra_cameras}

    # -- port: lifecycle -------------------------------------------------------------------
    def connect(self) -> None:
        try:
            if "setup_command" in self.commands:
                self._per_call("setup", SetupRequest, None, self.config.startup_timeout_s, mode=self.mode)
            if self.persistent:
                self._start_process()
            else:
                self._configure(self._config_layout(), None)
            self._connected = True
            self._observe(None)  # read-only probe: a broken contract fails here, before any motion
        except ConnectorError as exc:
            self._abort_connect()
            raise SetupError("hardware", str(exc)) from exc
        except SetupError:
            self._abort_connect()
            raise
        if self.mode == "apply_actions" and not self.can_apply:
            self._abort_connect()
            raise SetupError("hardware", self._why_not_apply())

    def enable(self) -> None:
        if self.mode != "apply_actions":
            raise RuntimeError("enable() outside apply_actions")
        if not self.can_apply:
            raise RuntimeError(self._why_not_apply())
        if self.persistent:
            self._exchange_ack("enable", EnableRequest, None, self.config.command_timeout_s)
        elif "enable_command" in self.commands:
            self._per_call_ack("enable", EnableRequest, None, self.config.command_timeout_s)
        self._enabled = True

    def read_state(self, step: int | None = None) -> StateSample:
        if step is None:
            step = self._reads
        self._reads = step + 1
        self._last_step = step
        return self._observe(step)

    def apply(
        self, action: np.ndarray, step: int, chunk_id: int | None = None, t_target: float | None = None
    ) -> None:
        self._last_step = step
        hook = "apply"
        action = self._check_action(np.asarray(action, dtype=np.float64), hook, step)
        fields = {"step": step, "chunk_id": chunk_id, "t_target": t_target, "action": action.tolist()}
        if self.persistent:
            self._exchange_ack(hook, ApplyRequest, step, self.config.command_timeout_s, **fields)
        else:
            self._per_call_ack(hook, ApplyRequest, step, self.config.command_timeout_s, **fields)

    @property
    def can_reset(self) -> bool:
        """Whether this connector answers ``reset`` between episodes."""
        if self.persistent:
            return self.handshake is not None and self.handshake.can_reset
        return "reset_command" in self.commands

    def reset(self, episode: int, timeout_s: float) -> str | None:
        """The episode ``episode`` ended: the connector brings the robot back; returns the outcome
        it reports (success/failure) or None."""
        if self.mode != "apply_actions" or not self._enabled:
            raise RuntimeError("reset outside apply_actions with live motors: refused")
        if not self.can_reset:
            raise RuntimeError("this connector declares no reset (can_reset / reset_command)")
        fields = {"episode": episode, "mode": self.mode}
        if self.persistent:
            data = self._exchange("reset", ResetRequest, self._last_step, timeout_s, **fields)
            ack = self._validate(Ack, data, "reset", self._last_step, "reply")
        else:
            out = self._per_call("reset", ResetRequest, self._last_step, timeout_s, **fields)
            try:
                ack = codec.validate_ack(out, "stdout", empty_ok=True)
            except ContractViolation as exc:
                raise self._error("reset", self._last_step, str(exc), field="reset_command") from None
        return None if ack is None else ack.outcome

    def safe_stop(self, reason: str) -> None:
        """Ask the process (if trustworthy), then run safe_stop_command; raise if a path failed or
        none was available."""
        self._enabled = False
        step = self._last_step
        timeout = self.config.safe_stop_timeout_s
        failures: list[str] = []
        attempted = False
        fields = {"step": step, "reason": reason, "mode": self.mode}
        if self._process is not None and self._process.healthy:
            attempted = True
            try:
                self._exchange_ack("safe_stop", SafeStopRequest, step, timeout, **fields)
            except ConnectorError as exc:
                failures.append(str(exc))
        if "safe_stop_command" in self.commands:
            attempted = True
            try:
                self._per_call_ack("safe_stop", SafeStopRequest, step, timeout, **fields)
            except ConnectorError as exc:
                failures.append(str(exc))
        if failures:
            raise RuntimeError("safe stop failed: " + " || ".join(failures))
        if not attempted and (self.mode == "apply_actions" or self.persistent):
            why = "the connector process is not running" if self.persistent else "none configured"
            raise RuntimeError(f"safe stop impossible: {why} and no safe_stop_command is set")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._enabled = False
        problems: list[str] = []
        if self._process is not None:
            problems += self._stop_process()
        for camera in (*self._cameras.values(), *self._extra_cameras.values()):
            camera.stop()  # the cameras this connector provides are its own to stop
        if "teardown_command" in self.commands:
            try:
                timeout = self.config.startup_timeout_s
                self._per_call("teardown", TeardownRequest, None, timeout, mode=self.mode)
            except ConnectorError as exc:
                problems.append(str(exc))
        if problems:
            raise RuntimeError("; ".join(problems))

    # -- setup helpers ---------------------------------------------------------------------
    def _config_layout(self) -> JointLayout:
        c = self.config
        assert c.state_names is not None and c.lower is not None and c.upper is not None
        self._declared_limits = True
        return JointLayout(tuple(c.state_names), np.array(c.lower, float), np.array(c.upper, float),
                           tuple(c.units) if c.units else None)

    def _start_process(self) -> None:
        spec = self.commands["command"]
        self._process = PersistentProcess(spec, self._env(None, None))
        try:
            self._process.start()
        except StartFailed as exc:
            raise self._error("hello", None, str(exc), field="command") from None
        data = self._exchange(
            "hello", HelloRequest, None, self.config.startup_timeout_s,
            mode=self.mode, control_rate_hz=self.control_rate_hz, reflex_version=__version__,
        )
        version = data.get("v")
        if version != CONTRACT_VERSION:
            raise self._error("hello", None, f"handshake declares contract version {version!r}; this "
                              f"Reflex speaks version {CONTRACT_VERSION}", field="command")
        handshake = self._validate(Handshake, data, "hello", None, "handshake")
        self.handshake = handshake
        try:
            layout, limits_known, cameras = reconcile(self.config, handshake)
        except ContractViolation as exc:
            raise self._error("hello", None, str(exc), field="command") from None
        self._declared_limits = limits_known
        self.can_apply = handshake.can_apply and limits_known
        self._configure(layout, cameras)

    def _configure(self, layout: JointLayout, cameras: dict[str, CameraDeclaration] | None) -> None:
        if cameras is None:
            cameras = {
                name: CameraDeclaration(name=name, width=c.width, height=c.height, source=c.source,
                                        shm_name=c.shm_name)
                for name, c in self.config.cameras.items()
            }
        self._layout = layout
        self._decoder = ObservationDecoder(layout.names, cameras, self.cwd)
        for name, cam in cameras.items():
            if cam.source == "inline":
                self._cameras[name] = SubprocessCamera(name, cam.width, cam.height)
            else:
                self._extra_cameras[name] = self._shm_camera(name, cam)

    def _shm_camera(self, name: str, cam: CameraDeclaration) -> Camera:
        from pydantic import TypeAdapter, ValidationError

        from reflex.config.base import BuildContext
        from reflex.config.session import CameraBlock

        block = {"kind": "shm", "name": cam.shm_name or name, "width": cam.width, "height": cam.height}
        try:
            spec: Any = TypeAdapter(CameraBlock).validate_python(block)
        except ValidationError as exc:
            raise SetupError("hardware", f"camera '{name}' (source shm): cannot configure an shm camera "
                             f"from {block}: {exc.errors()[0]['msg']}") from None
        camera: Camera = spec.build(name, BuildContext(config_dir=self.cwd, mode=self.mode))
        try:
            camera.start()  # the session starts only the cameras of its own `cameras:` block
        except SetupError:
            raise
        except Exception as exc:
            raise SetupError("hardware", f"camera '{name}' (source shm): {exc}") from exc
        return camera

    def _why_not_apply(self) -> str:
        if not self.persistent:
            return "apply_actions needs hardware.config.action_command"
        assert self.handshake is not None
        if not self.handshake.can_apply:
            return "the connector's handshake declares can_apply: false (read-only); use dry_run"
        return ("apply_actions needs joint limits: declare lower/upper in the handshake or in "
                "hardware.config (the guard clamps every action into them)")

    def _abort_connect(self) -> None:
        if self._process is not None:
            self._process.kill("connect failed")

    def _stop_process(self) -> list[str]:
        process = self._process
        assert process is not None
        problems: list[str] = []
        if process.healthy:
            try:
                self._exchange_ack("close", CloseRequest, None, self.config.command_timeout_s)
            except ConnectorError as exc:
                problems.append(str(exc))
            code = process.wait_exit(self.config.command_timeout_s)
            if code not in (0, None):
                problems.append(f"connector process {describe_exit(code)} after close | stderr tail: "
                                f"{process.stderr_tail()}")
        process.kill("closed")
        return problems

    # -- observe ---------------------------------------------------------------------------
    def _observe(self, step: int | None) -> StateSample:
        assert self._decoder is not None
        timeout = self.config.command_timeout_s
        t_request = time.monotonic()
        if self.persistent:
            data = self._exchange("observe", ObserveRequest, step, timeout, step=step)
        else:
            data = self._per_call_json("observe", ObserveRequest, step, timeout, step=step)
        msg = self._validate(Observation, data, "observe", step, "observation")
        try:
            decoded = self._decoder.decode(msg, t_request, time.monotonic())
        except ContractViolation as exc:
            raise self._error("observe", step, str(exc)) from None
        for name, (image, t_capture) in decoded.images.items():
            self._cameras[name].push(image, t_capture)
        return decoded.state

    def _check_action(self, action: np.ndarray, hook: str, step: int) -> np.ndarray:
        """Defence in depth: the runner guards actions; this refuses anything that slipped by."""
        if not self._enabled:
            raise self._error(hook, step, "action before enable() (or after a safe stop): refused")
        layout = self.layout
        if action.shape != (layout.dim,) or not np.all(np.isfinite(action)):
            raise self._error(hook, step, f"refusing action of shape {action.shape} / non-finite values")
        if not self._declared_limits:
            raise self._error(hook, step, "refusing action: no joint limits declared")
        return action

    # -- transport: per call ---------------------------------------------------------------
    def _request(self, hook: str, model: type[RequestBase], **fields: Any) -> RequestBase:
        """A validated request; hook names are the contract's ``op`` values."""
        factory: Any = model  # each concrete request narrows ``op`` to its Literal
        request: RequestBase = factory(v=CONTRACT_VERSION, op=hook, id=next(self._ids),
                                       session_id=self.session_id, t_sent=time.monotonic(), **fields)
        return request

    def _env(self, hook: str | None, step: int | None) -> dict[str, str]:
        env = {"REFLEX_SESSION_ID": self.session_id, "REFLEX_MODE": self.mode,
               "REFLEX_CONTRACT_VERSION": str(CONTRACT_VERSION)}
        if hook is not None:
            env["REFLEX_HOOK"] = hook
            env["REFLEX_STEP"] = "" if step is None else str(step)
        return env

    def _per_call(
        self, hook: str, model: type[RequestBase], at: int | None, timeout_s: float, **fields: Any
    ) -> bytes:
        field = PER_CALL_FIELDS[hook]
        spec = self.commands[field]
        request = self._request(hook, model, **fields)
        try:
            result = run_once(spec, codec.encode(request), timeout_s, self._env(hook, at))
        except StartFailed as exc:
            raise self._error(hook, at, str(exc), field=field) from None
        stderr = self._last_stderr = tail(result.stderr)
        if result.overflow:
            raise self._error(hook, at, f"wrote more than {MAX_REPLY_BYTES} bytes to stdout (a reply is one "
                              "JSON object; logs go to stderr); process group killed", field=field, stderr=stderr)
        if result.returncode is None:
            raise self._error(hook, at, f"timed out after {timeout_s:g} s (process group killed)",
                              field=field, stderr=stderr)
        if result.returncode != 0:
            out = f"; stdout: {excerpt(result.stdout)}" if result.stdout.strip() and not stderr else ""
            raise self._error(hook, at, f"{describe_exit(result.returncode)}{out}", field=field,
                              stderr=stderr)
        return result.stdout

    def _per_call_json(
        self, hook: str, model: type[RequestBase], at: int | None, timeout_s: float, **fields: Any
    ) -> dict[str, Any]:
        out = self._per_call(hook, model, at, timeout_s, **fields)
        try:
            return codec.decode_object(out, "stdout")
        except ContractViolation as exc:
            raise self._error(hook, at, str(exc), field=PER_CALL_FIELDS[hook]) from None

    def _per_call_ack(
        self, hook: str, model: type[RequestBase], at: int | None, timeout_s: float, **fields: Any
    ) -> None:
        out = self._per_call(hook, model, at, timeout_s, **fields)
        try:
            codec.validate_ack(out, "stdout", empty_ok=True)
        except ContractViolation as exc:
            raise self._error(hook, at, str(exc), field=PER_CALL_FIELDS[hook]) from None

    # -- transport: persistent -------------------------------------------------------------
    def _exchange(
        self, hook: str, model: type[RequestBase], at: int | None, timeout_s: float, **fields: Any
    ) -> dict[str, Any]:
        process = self._process
        assert process is not None
        request = self._request(hook, model, **fields)
        try:
            return process.exchange(codec.encode(request), request.id, timeout_s)
        except (ChannelBroken, ContractViolation) as exc:
            raise self._error(hook, at, str(exc), field="command", stderr=process.stderr_tail()) from None

    def _exchange_ack(
        self, hook: str, model: type[RequestBase], at: int | None, timeout_s: float, **fields: Any
    ) -> None:
        data = self._exchange(hook, model, at, timeout_s, **fields)
        self._validate(Ack, data, hook, at, "reply")

    # -- errors ----------------------------------------------------------------------------
    def _validate(self, model: type[BaseModel], data: dict[str, Any], hook: str, step: int | None,
                  what: str) -> Any:
        try:
            return codec.validate(model, data, what)
        except ContractViolation as exc:
            raise self._error(hook, step, str(exc)) from None

    def _error(self, hook: str, step: int | None, problem: str, field: str | None = None,
               stderr: str | None = None) -> ConnectorError:
        if field is None:
            field = "command" if self.persistent else PER_CALL_FIELDS[hook]
        spec = self.commands.get(field)
        display = spec.display if spec is not None else "<not configured>"
        if stderr is None:
            process = self._process
            stderr = process.stderr_tail() if process is not None else self._last_stderr
        return ConnectorError(field, display, hook, step, problem, stderr)
