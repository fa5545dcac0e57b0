"""The one rule for what a target declares, used by ``connect``, ``connect --check`` and ``replay``.

- A dimension or name the target does not declare (``None``; ``0`` from older plugins) is
  *unknown*: it never blocks.
- Anything declared that differs from the robot side (the hardware, or the recording replayed)
  always blocks, before motors are enabled.
- What only inference can tell (the width of the actions) is checked on the first chunk, as it
  arrives and before the motors come live: every chunk must be as wide as the robot has joints.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from reflex.ports import TargetInfo


def declared(value: int | None) -> int | None:
    """``None`` when the target leaves a dimension open (``0`` counts as open, for old plugins)."""
    return value if value else None


@dataclass(frozen=True)
class RobotSide:
    """What the policy must fit. ``None`` means not known here (it never blocks)."""

    joint_names: tuple[str, ...] | None
    cameras: Collection[str] | None
    label: str = "hardware"  # how messages name it: "hardware", "the recording"


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
    if robot.cameras is not None:
        missing = [k for k in info.image_keys if k not in robot.cameras]
        if missing:
            problems.append(
                f"policy needs camera(s) {missing}; {robot.label} has {sorted(robot.cameras)}"
            )
    return problems


def describe(info: TargetInfo) -> str:
    """One line for ``--check``: declared values, and ``?`` for what the target leaves open."""

    def show(value: int | None) -> str:
        return "?" if declared(value) is None else str(value)

    return (
        f"{info.kind}: state {show(info.state_dim)}-D, action {show(info.action_dim)}-D, chunk "
        f"{show(info.chunk_length)} x {info.action_dt:g} s, providers {list(info.providers)}"
    )
