"""Config of ``hardware.kind: subprocess``: the commands, their timeouts, and the joint layout."""

from __future__ import annotations

import shlex
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from reflex.config.base import BuildContext, StrictModel
from reflex.config.bounds import sensible
from reflex.hardware.base import HardwareSpec
from reflex.ports import Hardware, JointLayout

Command = str | list[str]
PER_CALL_ONLY = ("observe_command", "action_command", "enable_command", "reset_command")


class CameraConfig(StrictModel):
    """A camera the connector provides; the session feeds it to the policy under its name."""

    width: int = Field(gt=0, description="Image width the connector delivers.")
    height: int = Field(gt=0, description="Image height the connector delivers.")
    source: Literal["inline", "shm"] = Field(
        "inline",
        description="inline: images arrive in each observation's `images`; shm: Reflex reads the "
        "shared-memory channel `shm_name`.",
    )
    shm_name: str | None = Field(None, description="Channel name for source 'shm' (default: camera name).")


class SubprocessConfig(StrictModel):
    """The commands, timeouts and joint layout of a robot driven through docs/connector-contract.md.

    A command is a command line (split shell-style, run without a shell unless `shell: true`) or
    a list of arguments; it reads JSON requests on stdin and writes JSON replies on stdout.
    """

    protocol: Literal["per_call", "persistent"] = Field(
        "per_call",
        description="per_call: a fresh process per hook. persistent: one long-lived `command` "
        "speaking newline-delimited JSON on stdin/stdout (for control rates).",
    )
    command: Command | None = Field(None, description="persistent: the long-lived connector process.")
    observe_command: Command | None = Field(
        None, description="per_call (required): prints one observation."
    )
    action_command: Command | None = Field(
        None, description="per_call: executes one action; needed for apply_actions."
    )
    safe_stop_command: Command | None = Field(
        None,
        description="Run on every safe stop, in both protocols (persistent: after asking the process, "
        "which may be dead). Required for apply_actions with per_call.",
    )
    enable_command: Command | None = Field(
        None, description="per_call: run once before the first action (apply_actions only)."
    )
    reset_command: Command | None = Field(
        None, description="per_call: between episodes (episodes.reset.kind: command, apply_actions only); "
        "gets a 'reset' request, may reply an outcome.",
    )
    setup_command: Command | None = Field(None, description="Run once before connecting.")
    teardown_command: Command | None = Field(None, description="Run once at the end, also after errors.")
    shell: bool = Field(False, description="Run every command through /bin/sh -c.")
    cwd: str | None = Field(
        None, description="Working directory (relative to this file; default: the file's folder)."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    command_timeout_s: float = Field(
        2.0, gt=0, json_schema_extra=sensible(None, 30, "a robot that waits longer for one command runs on "
                                              "a stale action"),
        description="Limit for one observe/apply/enable call.",
    )
    safe_stop_timeout_s: float = Field(
        5.0, gt=0, json_schema_extra=sensible(None, 60, "a safe stop that takes over a minute is not one"),
        description="Limit for a safe stop.",
    )
    startup_timeout_s: float = Field(
        10.0, gt=0, json_schema_extra=sensible(None, 600, "bring-up that takes over ten minutes is stuck"),
        description="Limit for setup/teardown commands and the persistent handshake.",
    )
    state_names: list[str] | None = Field(
        None, description="Joint names in state/action order (required per_call; persistent: must "
        "match the handshake if given)."
    )
    lower: list[float] | None = Field(None, description="Lower joint limits, one per state name.")
    upper: list[float] | None = Field(None, description="Upper joint limits, one per state name.")
    units: list[str] | None = Field(
        None, description="Optional unit per state name (e.g. rad, m, normalized); a policy export "
        "declaring other units is refused."
    )
    cameras: dict[str, CameraConfig] = Field(
        default_factory=dict,
        description="Cameras the connector provides (persistent: must match the handshake if given).",
    )

    @field_validator(
        "command", "observe_command", "action_command", "safe_stop_command", "enable_command",
        "setup_command", "teardown_command", "reset_command",
    )
    @classmethod
    def _command(cls, value: Command | None) -> Command | None:
        if value is None:
            return None
        try:
            argv = shlex.split(value) if isinstance(value, str) else value
        except ValueError as exc:
            raise ValueError(f"cannot split command {value!r}: {exc}") from None
        if not argv or not argv[0]:
            raise ValueError("command is empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SubprocessConfig:
        if self.protocol == "per_call":
            if self.observe_command is None:
                raise ValueError("protocol per_call needs observe_command")
            if self.command is not None:
                raise ValueError("`command` is for protocol persistent; per_call uses observe_command etc.")
            if self.state_names is None or self.lower is None or self.upper is None:
                raise ValueError("protocol per_call needs state_names, lower and upper (the joint layout)")
        else:
            if self.command is None:
                raise ValueError("protocol persistent needs `command` (the long-lived connector process)")
            given = [name for name in PER_CALL_ONLY if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} are per_call fields; a persistent process "
                                 "handles every hook itself")
        if self.state_names is not None:
            if len(set(self.state_names)) != len(self.state_names) or not all(self.state_names):
                raise ValueError("state_names must be unique, non-empty names")
            for field in ("lower", "upper", "units"):
                values = getattr(self, field)
                if values is not None and len(values) != len(self.state_names):
                    raise ValueError(f"{field} has {len(values)} entries, state_names has "
                                     f"{len(self.state_names)}")
        elif self.lower is not None or self.upper is not None or self.units is not None:
            raise ValueError("lower/upper/units need state_names (which joint each limit belongs to)")
        if (self.lower is None) != (self.upper is None):
            raise ValueError("give both lower and upper limits, or neither")
        if self.lower is not None and self.upper is not None:
            pairs = zip(self.state_names or [], self.lower, self.upper, strict=True)
            bad = [n for n, lo, hi in pairs if not lo <= hi]
            if bad:
                raise ValueError(f"lower limit above upper limit (or not finite) for {bad}")
            if not (np.all(np.isfinite(self.lower)) and np.all(np.isfinite(self.upper))):
                raise ValueError("joint limits must be finite numbers")
        return self


class SubprocessHardwareSpec(HardwareSpec):
    """Any robot, driven by your own programs speaking the connector JSON contract."""

    kind: Literal["subprocess"] = "subprocess"
    config: SubprocessConfig

    def layout(self) -> JointLayout | None:
        c = self.config
        if c.state_names is None or c.lower is None or c.upper is None:
            return None  # persistent: the handshake completes it at connect
        return JointLayout(tuple(c.state_names), np.array(c.lower, float), np.array(c.upper, float),
                           tuple(c.units) if c.units else None)

    def apply_blockers(self) -> list[str]:
        """Why this config cannot run apply_actions (empty when it can)."""
        c = self.config
        if c.protocol == "persistent":
            return []  # the handshake declares can_apply and limits; checked at connect
        blockers = []
        if c.action_command is None:
            blockers.append("set hardware.config.action_command (there is nothing to execute actions)")
        if c.safe_stop_command is None:
            blockers.append("set hardware.config.safe_stop_command (a per_call robot needs a way to stop)")
        return blockers

    def can_apply(self) -> bool:
        return not self.apply_blockers()

    def build(self, ctx: BuildContext) -> Hardware:
        from reflex.hardware.subprocess.connector import SubprocessHardware

        return SubprocessHardware(self.config, ctx)
