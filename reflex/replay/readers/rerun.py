"""Reader of the ``rerun`` recorder's ``session.rrd`` (through rerun-sdk's own chunk reader).

Exact values come from ``reflex/step`` (times, frame numbers, chunk position), ``robot/state``
and ``action/*`` (float64 scalars) and ``policy/chunk_info`` (whole chunks with ``obs_step``);
the session from the static ``session`` and ``session/config`` entities. Camera images are
JPEG (``EncodedImage``), so observations are flagged as approximate.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reflex.replay.episode import Episode, RecordedChunk, RecordedStep, RecordingError
from reflex.replay.readers.jsonl import truncated
from reflex.replay.readers.records import RecordParser, decode_image, locate_file, note_gaps


class RerunReader:
    name = "rerun"

    def locate(self, path: Path) -> Path | None:
        return locate_file(path, "rerun")

    def read(self, path: Path, allow_partial: bool, mapping: object = None) -> list[Episode]:
        try:
            from rerun.chunk import RrdReader
        except ImportError:
            hint = "reading .rrd needs the rerun extra: pip install 'reflex-runtime[rerun]'"
            raise RecordingError(str(path), hint) from None
        tables: dict[str, list[dict[str, Any]]] = {}
        blobs: dict[tuple[str, int], bytes] = {}
        media: set[str] = set()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                for chunk in RrdReader(path).stream():
                    _collect(chunk, tables, blobs, media)
            except (RuntimeError, ValueError, OSError) as exc:
                raise RecordingError(
                    str(path), f"cannot be read ({exc}); a truncated file may be fixed with `reflex recordings repair`"
                ) from None
        no_footer = any("no footer" in str(w.message) for w in caught)
        episode = _episode(path, tables, blobs, no_footer, allow_partial)
        lossy = sorted(m for m in media if m != "image/png")
        if lossy:
            episode.lossy_images.append(f"Rerun images are stored as {', '.join(lossy)}, not as the policy saw them")
        return [episode]


def _collect(
    chunk: Any, tables: dict[str, list[dict[str, Any]]], blobs: dict[tuple[str, int], bytes], media: set[str]
) -> None:
    entity = str(chunk.entity_path).lstrip("/")
    batch = chunk.to_record_batch()
    names = batch.schema.names
    if entity.startswith("camera/") and "EncodedImage:blob" in names:
        steps = batch.column("step").to_pylist() if "step" in names else []
        column = batch.column("EncodedImage:blob").flatten()
        for i, step in enumerate(steps):
            if step is not None:
                blobs[(entity[len("camera/") :], int(step))] = column[i].values.to_numpy().tobytes()
        if "EncodedImage:media_type" in names:
            media.update(str(m) for row in batch.column("EncodedImage:media_type").to_pylist() for m in row or [])
        return
    if entity not in ("session", "session/config", "reflex/step", "robot/state", "action/applied",
                      "action/not_applied", "policy/chunk_info", "events"):
        return
    keep = [n for n in names if n not in ("rerun.controls.RowId", "log_time", "capture_time")]
    rows = batch.select(keep).to_pylist()
    tables.setdefault(entity, []).extend(rows)


def _one(row: dict[str, Any], key: str) -> Any:
    value = row.get(key)
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _by_step(rows: list[dict[str, Any]], key: str) -> dict[int, Any]:
    return {int(r["step"]): r.get(key) for r in rows if r.get("step") is not None and r.get(key) is not None}


def _episode(
    path: Path, tables: dict[str, list[dict[str, Any]]], blobs: dict[tuple[str, int], bytes],
    no_footer: bool, allow_partial: bool,
) -> Episode:
    parser = RecordParser(0)
    parser.where = f"{path}: session"
    sessions = tables.get("session") or []
    if not sessions:
        raise RecordingError(str(path), "no 'session' entity: not a Reflex Rerun recording")
    session = sessions[0]
    meta = parser.meta(_meta_dict(session, tables.get("session/config") or []))
    states = _by_step(tables.get("robot/state", []), "Scalars:scalars")
    actions = _by_step(tables.get("action/applied", []), "Scalars:scalars")
    actions.update(_by_step(tables.get("action/not_applied", []), "Scalars:scalars"))

    def frame_loader(camera: str, seq: int, step: int, _path: object) -> Callable[[], np.ndarray] | None:
        blob = blobs.get((camera, step))
        if blob is None:
            return None
        where = f"{path}: step {step}, camera '{camera}' frame {seq}"
        return lambda: decode_image(blob, where)

    steps: list[RecordedStep] = []
    for row in sorted(tables.get("reflex/step", []), key=lambda r: r.get("step") or 0):
        step = int(row["step"])
        parser.where = f"{path}: reflex/step at step {step}"
        obj = {
            "step": step,
            "t_tick": _one(row, "t_tick"),
            "t_state": _one(row, "t_state"),
            "state": states.get(step),
            "action": actions.get(step) if _one(row, "has_action") else None,
            "applied": bool(_one(row, "applied")),
            "chunk_id": None if _one(row, "chunk_id") in (None, -1) else _one(row, "chunk_id"),
            "chunk_index": _nan_none(_one(row, "chunk_index")),
            "task": _one(row, "task") or "",
            "frames": {
                cam: {"seq": seq, "t_capture": t}
                for cam, seq, t in zip(
                    row.get("frame_cameras") or [], row.get("frame_seq") or [], row.get("frame_t_capture") or [],
                    strict=True,
                )
            },
        }
        steps.append(parser.step(obj, frame_loader))
    chunks: list[RecordedChunk] = []
    for row in tables.get("policy/chunk_info", []):
        parser.where = f"{path}: policy/chunk_info at step {row.get('step')}"
        flat = row.get("actions") or []
        horizon = _one(row, "horizon")
        if not isinstance(horizon, int) or horizon < 1 or len(flat) != horizon * parser.dim:
            raise RecordingError(parser.where, f"chunk has {len(flat)} numbers, expected {horizon} x {parser.dim}")
        obj = {k: _one(row, k) for k in ("chunk_id", "obs_step", "t_origin", "dt", "t_requested", "t_received")}
        obj["actions"] = np.asarray(flat, dtype=np.float64).reshape(horizon, parser.dim).tolist()
        chunks.append(parser.chunk(obj))
    chunks.sort(key=lambda c: c.chunk_id)
    episode = Episode(path, "rerun", 0, meta, steps, chunks)
    ended = any("session_end" in str(t) for r in tables.get("events", []) for t in (r.get("TextLog:text") or []))
    if no_footer or not ended:
        truncated(episode, "it has no footer" if no_footer else "it has no session_end event", allow_partial)
    note_gaps(steps, episode.notes)
    return episode


def _meta_dict(session: dict[str, Any], config_rows: list[dict[str, Any]]) -> dict[str, Any]:
    def loads(value: Any, default: Any) -> Any:
        try:
            return json.loads(value) if isinstance(value, str) else default
        except json.JSONDecodeError:
            return default

    seed = _one(session, "seed")
    model_hash = _one(session, "model_hash")
    config_text = _one(config_rows[0], "TextDocument:text") if config_rows else None
    return {
        "session_id": _one(session, "session_id"),
        "joint_names": loads(_one(session, "joint_names"), None),
        "camera_names": loads(_one(session, "camera_names"), []),
        "task": _one(session, "task") or "",
        "control_rate_hz": _one(session, "control_rate_hz"),
        "mode": _one(session, "mode") or "",
        "target": {
            "kind": _one(session, "target_kind") or "",
            "model_hash": model_hash or None,
            "seed": None if seed in (None, -1) else int(seed),
        },
        "config_resolved": loads(config_text, {}),
        "t_start_mono": _one(session, "t_start_mono"),
        "config_path": _one(session, "config_path") or "",
    }


def _nan_none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
