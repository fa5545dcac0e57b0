"""The one rule for what a target declares, used by ``connect``, ``connect --check`` and ``replay``.

- A dimension or name the target does not declare (``None``; ``0`` from older plugins) is
  *unknown*: it never blocks.
- Anything declared that differs from the robot side (the hardware, or the recording replayed)
  always blocks, before motors are enabled.
- An export's action semantics (docs/export-format.md: absolute vs delta, units, gripper
  ranges) must fit the robot's joints when the robot's layout is known.
- What only inference can tell (the width of the actions) is checked on the first chunk, as it
  arrives and before the motors come live: every chunk must be as wide as the robot has joints.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np

from reflex.ports import JointLayout, TargetInfo

GRIPPER_RANGE_TOLERANCE = 0.01  # of the hardware's range


def declared(value: int | None) -> int | None:
    """``None`` when the target leaves a dimension open (``0`` counts as open, for old plugins)."""
    return value if value else None


@dataclass(frozen=True)
class RobotSide:
    """What the policy must fit. ``None`` means not known here (it never blocks)."""

    joint_names: tuple[str, ...] | None
    cameras: Collection[str] | None
    label: str = "hardware"  # how messages name it: "hardware", "the recording"
    layout: JointLayout | None = None  # units and limits, for the action semantics


def target_mismatches(info: TargetInfo, robot: RobotSide) -> list[str]:
    """Every declared fact of ``info`` that differs from ``robot``; empty when it fits."""
    problems: list[str] = []
    names = robot.joint_names
    if names is not None:
        dim = len(names)
        for what, value in (("state", declared(info.state_dim)), ("action", declared(info.action_dim))):
            if value is not None and value != dim:
                problems.append(f"policy declares {what} {value}-D, {robot.label} has {dim} joints")
        if info.action_names and tuple(info.action_names) != tuple(names):
            problems.append(
                f"policy action names {list(info.action_names)} differ from {robot.label} joints {list(names)}"
            )
        if info.state_names and tuple(info.state_names) != tuple(names):
            problems.append(
                f"policy state names {list(info.state_names)} differ from {robot.label} joints {list(names)}"
            )
    if robot.layout is not None and not problems:
        problems += semantics_problems(robot.layout, info.action_semantics)
    if robot.cameras is not None:
        missing = [k for k in info.image_keys if k not in robot.cameras]
        if missing:
            problems.append(
                f"policy needs camera(s) {missing}; {robot.label} has {sorted(robot.cameras)}"
            )
    return problems


def semantics_problems(layout: JointLayout, semantics: dict[str, Any] | None) -> list[str]:
    """A robot takes absolute joint positions in its own units: anything else is refused by name."""
    if not semantics:
        return []
    problems = []
    kind = semantics.get("kind", "absolute")
    if kind != "absolute":
        problems.append(
            f"policy actions are '{kind}' (action_semantics.kind) but the hardware takes absolute joint positions"
        )
    units = semantics.get("units")
    if units and layout.units and len(units) == layout.dim:
        wrong = [
            f"{name} ({theirs} vs {ours})"
            for name, theirs, ours in zip(layout.names, units, layout.units, strict=True)
            if theirs != ours
        ]
        if wrong:
            problems.append("policy action units differ from the hardware's (policy vs hardware): " + ", ".join(wrong))
    for name, pair in (semantics.get("gripper_ranges") or {}).items():
        if name not in layout.names:
            problems.append(f"policy gripper '{name}' is not a hardware joint")
            continue
        i = layout.names.index(name)
        lo, hi = float(layout.lower[i]), float(layout.upper[i])
        if not (np.isfinite(lo) and np.isfinite(hi)):
            continue  # limits unknown (e.g. replay of a dataset that names none): undeclared never blocks
        closed, opened = sorted(float(v) for v in pair)
        span = hi - lo if np.isfinite(hi - lo) and hi > lo else 1.0
        tol = GRIPPER_RANGE_TOLERANCE * span
        if abs(closed - lo) > tol or abs(opened - hi) > tol:
            problems.append(
                f"policy gripper '{name}' range [{pair[0]:g}, {pair[1]:g}] differs from the hardware's "
                f"limits [{lo:g}, {hi:g}]"
            )
    return problems


def describe(info: TargetInfo) -> str:
    """One line for ``--check``: declared values, and ``?`` for what the target leaves open."""

    def show(value: int | None) -> str:
        return "?" if declared(value) is None else str(value)

    return (
        f"{info.kind}: state {show(info.state_dim)}-D, action {show(info.action_dim)}-D, chunk "
        f"{show(info.chunk_length)} x {info.action_dt:g} s, providers {', '.join(info.providers) or 'none'}"
    )
