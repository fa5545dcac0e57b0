"""JSON schemas of the Reflex-specific MCAP channels (Foxglove reads jsonschema channels natively)."""

from __future__ import annotations

import json
from typing import Any

_NUM = {"type": "number"}
_NUM_OR_NULL = {"type": ["number", "null"]}
_VECTOR = {"type": "array", "items": _NUM}

STEP: dict[str, Any] = {
    "title": "reflex.Step",
    "description": "One control step: what was observed, decided, sent (or not) and why.",
    "type": "object",
    "properties": {
        "step": {"type": "integer"},
        "t_tick": _NUM,
        "t_state": _NUM,
        "state": _VECTOR,
        "action": {"type": ["array", "null"], "items": _NUM},
        "applied": {"type": "boolean"},
        "chunk_id": {"type": ["integer", "null"]},
        "chunk_index": _NUM_OR_NULL,
        "chunk_age_s": _NUM_OR_NULL,
        "guard": {"type": "array", "items": {"type": "object"}},
        "task": {"type": "string"},
        "frames": {"type": "object"},
        "timing_ms": {"type": "object"},
    },
}

CHUNK: dict[str, Any] = {
    "title": "reflex.ActionChunk",
    "description": "A full action chunk as adopted; action k is meant for t_origin + k * dt.",
    "type": "object",
    "properties": {
        "chunk_id": {"type": "integer"},
        "obs_step": {"type": "integer"},
        "t_origin": _NUM,
        "dt": _NUM,
        "t_requested": _NUM,
        "t_received": _NUM,
        "names": {"type": "array", "items": {"type": "string"}},
        "actions": {"type": "array", "items": _VECTOR},
        "timing_ms": {"type": "object"},
        "request_id": {"type": ["string", "null"]},
    },
}

EVENT: dict[str, Any] = {
    "title": "reflex.Event",
    "description": "A session event: safe_stop, stale, fresh, enabled, session_end, ...",
    "type": "object",
    "properties": {
        "kind": {"type": "string"},
        "t": _NUM,
        "step": {"type": "integer"},
        "message": {"type": "string"},
        "data": {"type": "object"},
    },
}


def encoded(schema: dict[str, Any]) -> bytes:
    return json.dumps(schema).encode()
