"""The /act response, the same dict on every transport (JSON turns arrays into lists)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from reflex.serve.model import ModelInfo
from reflex.serve.request import ActRequest, RequestError, finite_ms, new_request_id


def build_response(
    info: ModelInfo,
    req: ActRequest,
    actions: np.ndarray,
    timing: dict[str, float],
    t_received: float,
    decode_ms: float,
    actions_dtype: type[np.floating[Any]] = np.float64,
) -> dict[str, Any]:
    """``timing`` comes from :meth:`PolicyHost.infer`; ``t_received`` is ``perf_counter`` at arrival."""
    expected = (info.chunk_length, info.action_dim)
    if actions.shape != expected:
        raise RequestError(500, "bad_model_output", f"policy returned shape {actions.shape}, expected {expected}")
    server_timing = {
        "decode_ms": finite_ms(decode_ms),
        "queue_ms": finite_ms(timing.get("queue_ms", 0.0)),
        "infer_ms": finite_ms(timing.get("infer_ms", 0.0)),
        "total_ms": finite_ms((time.perf_counter() - t_received) * 1e3),
    }
    return {
        "actions": actions.astype(actions_dtype, copy=False),
        "chunk_length": info.chunk_length,
        "action_dim": info.action_dim,
        "action_dt_s": info.action_dt_s,
        "model": info.name,
        "model_hash": info.model_hash,
        "step": req.step,
        "request_id": req.request_id or new_request_id(),
        "server_timing": server_timing,
        "policy_timing": {"infer_ms": server_timing["infer_ms"]},  # openpi's key
    }


def to_json_ready(response: dict[str, Any]) -> dict[str, Any]:
    out = dict(response)
    out["actions"] = np.asarray(response["actions"], dtype=np.float64).tolist()
    return out


def server_timing_header(response: dict[str, Any]) -> str:
    """The standard ``Server-Timing`` header, so browser tools and proxies can read it too."""
    timing = response["server_timing"]
    return ", ".join(f"{k.removesuffix('_ms')};dur={v}" for k, v in timing.items())


def error_body(err: RequestError) -> dict[str, Any]:
    return {"error": err.to_dict()}
