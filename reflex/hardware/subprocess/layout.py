"""Joint layout and cameras of a persistent connector: what the handshake declares, checked
against what the session config declares (the config may pin them; the two must agree)."""

from __future__ import annotations

import numpy as np

from reflex.hardware.subprocess.config import SubprocessConfig
from reflex.hardware.subprocess.contract import CameraDeclaration, Handshake
from reflex.hardware.subprocess.errors import ContractViolation
from reflex.ports import JointLayout

LIMIT_TOLERANCE = 1e-9


def reconcile(
    config: SubprocessConfig, hs: Handshake
) -> tuple[JointLayout, bool, dict[str, CameraDeclaration]]:
    """(layout, whether real limits are known, cameras by name). Raises ContractViolation."""
    names = list(hs.state_names)
    dim = len(names)
    if hs.action_names is not None and hs.action_names != names:
        raise ContractViolation(
            f"handshake action_names {hs.action_names} differ from state_names {names}; contract v1 "
            "drives the measured joints directly, so they must be the same list"
        )
    if config.state_names is not None and config.state_names != names:
        raise ContractViolation(
            f"handshake declares joints {names}, hardware.config.state_names has {config.state_names}"
        )
    limits = {}
    for side in ("lower", "upper"):
        declared = getattr(hs, side)
        pinned = getattr(config, side)
        if declared is not None and len(declared) != dim:
            raise ContractViolation(f"handshake {side} has {len(declared)} entries, state_names has {dim}")
        if declared is not None and pinned is not None:
            diff = np.abs(np.array(declared) - np.array(pinned))
            if np.any(diff > LIMIT_TOLERANCE):
                bad = [names[i] for i in np.flatnonzero(diff > LIMIT_TOLERANCE)]
                raise ContractViolation(
                    f"handshake {side} limits differ from hardware.config.{side} for {bad}"
                )
        limits[side] = declared if declared is not None else pinned
    lower, upper = limits["lower"], limits["upper"]
    if (lower is None) != (upper is None):
        raise ContractViolation("the handshake must declare both lower and upper limits, or neither")
    known = lower is not None and upper is not None
    lo = np.array(lower, float) if lower is not None else np.full(dim, -np.inf)
    hi = np.array(upper, float) if upper is not None else np.full(dim, np.inf)
    if known:
        bad = [names[i] for i in np.flatnonzero(~(lo <= hi))]
        if bad:
            raise ContractViolation(f"handshake lower limit above upper limit for {bad}")
    units = tuple(config.units) if config.units and len(config.units) == dim else None
    layout = JointLayout(tuple(names), lo, hi, units)
    return layout, known, _cameras(config, hs)


def _cameras(config: SubprocessConfig, hs: Handshake) -> dict[str, CameraDeclaration]:
    declared: dict[str, CameraDeclaration] = {}
    for cam in hs.cameras:
        if cam.name in declared:
            raise ContractViolation(f"handshake declares camera '{cam.name}' twice")
        declared[cam.name] = cam
    if config.cameras:
        for name, pinned in config.cameras.items():
            found = declared.get(name)
            if found is None:
                raise ContractViolation(
                    f"hardware.config.cameras.{name} is not in the handshake (declared: {sorted(declared)})"
                )
            ours = (pinned.width, pinned.height, pinned.source, pinned.shm_name or name)
            theirs = (found.width, found.height, found.source, found.shm_name or name)
            if ours != theirs:
                raise ContractViolation(
                    f"camera '{name}': hardware.config declares (width, height, source, shm_name) "
                    f"{ours}, the handshake {theirs}"
                )
        extra = sorted(set(declared) - set(config.cameras))
        if extra:
            raise ContractViolation(
                f"the handshake declares camera(s) {extra} missing from hardware.config.cameras"
            )
    return declared
