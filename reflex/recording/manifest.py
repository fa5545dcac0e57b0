"""``<recording>/recording.json``: what a recording holds and how it ended.

Written by the hub when recording starts (``status: recording``) and again when every format is
closed (``complete`` or ``degraded``). A file still saying ``recording`` belongs to a runner that
died: ``reflex recordings info`` says so and ``reflex recordings repair`` finishes what can be.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from reflex.ports import SessionMeta

MANIFEST = "recording.json"
SCHEMA = "reflex.recording/1"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write to a temp file, fsync, rename: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, allow_nan=False, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # e.g. disk full: leave the previous file, not a stub
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def manifest_start(meta: SessionMeta, formats: list[str]) -> dict[str, Any]:
    target = meta.target
    return {
        "schema": SCHEMA,
        "status": "recording",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "session_id": meta.session_id,
        "mode": meta.mode,
        "task": meta.task,
        "config_path": meta.config_path,
        "config_hash": meta.config_hash,
        "model_hash": None if target is None else target.model_hash,
        "seed": None if target is None else target.seed,
        "target_kind": None if target is None else target.kind,
        "software_version": meta.software_version,
        "control_rate_hz": meta.control_rate_hz,
        "joint_names": list(meta.joint_names),
        "camera_names": list(meta.camera_names),
        "t_start_wall": meta.t_start_wall,
        "t_start_mono": meta.t_start_mono,
        "formats": {name: {} for name in formats},
        "expert_override": meta.expert_override,
    }
