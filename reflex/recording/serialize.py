"""Plain-JSON views of the session data types, shared by text-based recorders."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from reflex.ports import ActionChunk, GuardEvent, SessionEvent, SessionMeta, StepRecord


def floats(array: np.ndarray | None) -> list[float] | None:
    return None if array is None else [float(x) for x in np.asarray(array).ravel()]


def meta_dict(meta: SessionMeta) -> dict[str, Any]:
    out = dataclasses.asdict(meta)
    out["joint_names"] = list(meta.joint_names)
    out["camera_names"] = list(meta.camera_names)
    return out


def guard_dict(event: GuardEvent) -> dict[str, Any]:
    return {"kind": event.kind, "joints": list(event.joints), "detail": event.detail}


def step_dict(rec: StepRecord, image_paths: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "step",
        "step": rec.step,
        "t_tick": rec.t_tick,
        "state": floats(rec.state.position),
        "t_state": rec.state.t_capture,
        "action": floats(rec.action),
        "applied": rec.applied,
        "chunk_id": rec.chunk_id,
        "chunk_index": rec.chunk_index,
        "chunk_age_s": rec.chunk_age_s,
        "guard": [guard_dict(e) for e in rec.guard_events],
        "task": rec.task,
        "frames": {
            name: {"seq": f.seq, "t_capture": f.t_capture, "path": image_paths.get(name)}
            for name, f in rec.frames.items()
        },
        "timing_ms": rec.timing_ms,
    }


def chunk_dict(chunk: ActionChunk) -> dict[str, Any]:
    return {
        "type": "chunk",
        "chunk_id": chunk.chunk_id,
        "obs_step": chunk.obs_step,
        "t_origin": chunk.t_origin,
        "dt": chunk.dt,
        "t_requested": chunk.t_requested,
        "t_received": chunk.t_received,
        "actions": np.asarray(chunk.actions).tolist(),
        "timing_ms": chunk.timing,
        "request_id": chunk.request_id,
    }


def event_dict(event: SessionEvent) -> dict[str, Any]:
    return {
        "type": "event",
        "kind": event.kind,
        "t": event.t,
        "step": event.step,
        "message": event.message,
        "data": event.data,
    }
