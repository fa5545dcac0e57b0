"""``reflex connect --check``: resolve everything that can be resolved without touching the robot."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from reflex.config.base import BuildContext
from reflex.errors import EXIT_OK, EXIT_SETUP
from reflex.recording.formats import FORMATS
from reflex.runtime.target_fit import RobotSide, describe, target_mismatches


def check_session_file(path: Path, api_key: str | None = None) -> dict[str, Any]:
    """Validate the file, load/reach the target and compare its shapes with the hardware layout.

    The hardware and cameras are never built or connected here.
    """
    from reflex.config.loader import load_session_config

    config = load_session_config(path)
    checks: dict[str, str] = {"config": "valid"}
    errors: list[str] = []
    ctx = BuildContext(config_dir=path.resolve().parent, mode=config.mode, api_key=api_key)
    layout = config.hardware.layout()
    checks["hardware"] = (
        f"{config.hardware.kind}: {layout.dim} joints" if layout else f"{config.hardware.kind}: layout known at connect"
    )
    target = config.target.build(ctx)
    try:
        info = target.connect()
    except Exception as exc:
        errors.append(f"target: {type(exc).__name__}: {exc}")
        info = None
    finally:
        try:
            target.close()
        except Exception as exc:
            errors.append(f"target: close: {exc}")
    if info is not None:
        checks["target"] = describe(info)
        # A sim robot has only the configured cameras; other kinds may bring their own.
        cameras = set(config.cameras) if config.hardware.kind == "sim" else None
        robot = RobotSide(layout.names if layout is not None else None, cameras, layout=layout)
        errors += [f"target: {problem}" for problem in target_mismatches(info, robot)]
        missing = [k for k in info.image_keys if k not in config.cameras]
        if cameras is None and missing:
            checks["cameras"] = f"policy needs camera(s) {missing} not in cameras: (must be provided by the hardware)"
    for name in config.record.formats:
        module = FORMATS[name].partition(":")[0]
        try:
            importlib.import_module(module)
        except ImportError as exc:
            errors.append(f"record: format '{name}' unavailable ({exc}); install its extra")
    checks["record"] = ", ".join(config.record.formats) if config.record.enabled else "off"
    return {
        "ok": not errors,
        "config": str(path),
        "mode": config.mode,
        "checks": checks,
        "errors": errors,
        "exitCode": EXIT_OK if not errors else EXIT_SETUP,
    }
