"""Client plumbing shared by the remote targets: keys, readiness, retries, requests, timing."""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from reflex.config.base import BuildContext
from reflex.errors import SetupError
from reflex.ports import Observation, TargetInfo
from reflex.wire.jpeg import JpegBudgetEncoder, resize_rgb
from reflex.wire.remote_spec import RemoteTargetSpec

log = logging.getLogger("reflex.targets.remote")
T = TypeVar("T")


class TransportFailure(RuntimeError):
    """The server could not be reached or answered 429/502/503/504: worth retrying."""


class RemoteError(RuntimeError):
    """The server refused the request (4xx/5xx with a reason): retrying would not help."""

    def __init__(self, status: int, message: str, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field


class ResponseTooLarge(RuntimeError):
    """A reply over ``max_response_mb``: not retried (the server would send it again); the
    session stops safely with this as the cause."""


class TransportGaveUp(RuntimeError):
    """Transport failures lasted longer than ``retry_for_ms``; the session must safe-stop."""


RETRY_STATUSES = (429, 502, 503, 504)


def resolve_api_key(spec: RemoteTargetSpec, ctx: BuildContext) -> str | None:
    if spec.api_key:
        return spec.api_key
    if spec.api_key_env and os.environ.get(spec.api_key_env):
        return os.environ[spec.api_key_env]
    return ctx.api_key


def ssl_context(spec: RemoteTargetSpec, ctx: BuildContext) -> ssl.SSLContext | None:
    """The TLS context for https:// and wss:// (certificates verified; ``ca_file`` adds a trust root)."""
    if spec.ca_file is None:
        return None
    path = Path(spec.ca_file).expanduser()
    if not path.is_absolute():
        path = ctx.config_dir / path
    try:
        return ssl.create_default_context(cafile=str(path))
    except (OSError, ssl.SSLError) as exc:
        raise SetupError("target", f"ca_file '{spec.ca_file}': cannot load it as PEM certificates: {exc}") from exc


def _summarise(text: str, limit: int = 300) -> str:
    """A short reason from a free-text error body. openpi servers send a whole traceback: its
    last line names the exception, so that is the part worth showing."""
    text = text.strip()
    if len(text) <= limit:
        return text
    lines = [line for line in text.splitlines() if line.strip()]
    if text.startswith("Traceback") and lines:
        return f"...{lines[-1].strip()[-limit:]}"
    return text[:limit] + "..."


def error_from_status(status: int, body: Any, where: str) -> RemoteError | TransportFailure:
    """Map an HTTP-style status and its JSON error body to the right exception."""
    err = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(err, Mapping):
        message, code, field = str(err.get("message", "")), err.get("code"), err.get("field")
    else:
        message, code, field = (_summarise(str(body)) if body else ""), None, None
    if field:
        message = f"{field}: {message}" if not message.startswith(f"{field}:") else message
    if status == 401:
        return RemoteError(401, f"{where}: API key rejected by the server (401): {message}", code, field)
    if status in RETRY_STATUSES:
        return TransportFailure(f"{where}: server busy or not ready ({status}): {message}")
    label = f"{status} {code}" if code else str(status)
    return RemoteError(status, f"{where}: server refused the request ({label}): {message}", code, field)


def wait_until_ready(probe: Callable[[], T], timeout_s: float, stage: str) -> T:
    """Call ``probe`` until it succeeds; transient failures are retried until ``timeout_s``.

    A refusal (wrong key, wrong model, bad URL) fails at once: waiting would not fix it.
    """
    deadline = time.monotonic() + timeout_s
    pause = 0.05
    while True:
        try:
            return probe()
        except RemoteError as exc:
            raise SetupError(stage, str(exc)) from exc
        except TransportFailure as exc:
            if time.monotonic() + pause > deadline:
                raise SetupError(stage, f"server not ready within connect_timeout_s={timeout_s}: {exc}") from exc
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def call_with_retry(spec: RemoteTargetSpec, attempt: Callable[[], T], what: str) -> tuple[T, int]:
    """Run ``attempt``; on TransportFailure retry with back-off for ``spec.retry_for_ms``.

    ``attempt`` must (re)connect by itself when its connection is gone. Returns the result and
    the number of retries it took.
    """
    deadline: float | None = None
    pause = spec.retry_backoff_ms / 1e3
    retries = 0
    while True:
        try:
            return attempt(), retries
        except TransportFailure as exc:
            now = time.monotonic()
            if deadline is None:
                deadline = now + spec.retry_for_ms / 1e3
                log.warning("%s: transport failure, retrying for %.0f ms: %s", what, spec.retry_for_ms, exc)
            remaining = deadline - now
            if remaining <= 0:
                raise TransportGaveUp(
                    f"{what}: transport failed and did not recover within retry_for_ms={spec.retry_for_ms:g} "
                    f"({retries} retries): {exc}"
                ) from exc
            time.sleep(min(pause, remaining))
            pause = min(pause * 2, spec.retry_backoff_max_ms / 1e3)
            retries += 1


def model_image_sizes(model: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    return {str(k): (int(v[0]), int(v[1])) for k, v in dict(model.get("image_inputs") or {}).items()}


def select_frames(
    obs: Observation, sizes: Mapping[str, tuple[int, int]], override: tuple[int, int] | None
) -> dict[str, np.ndarray]:
    """The frames of the cameras the model takes, resized to what it expects.

    A camera the model needs but the observation lacks is left out: the server's 422 names it.
    """
    frames: dict[str, np.ndarray] = {}
    for name, size in sizes.items():
        frame = obs.images.get(name)
        if frame is None:
            continue
        height, width = override or size
        frames[name] = resize_rgb(frame.image, height, width)
    return frames


def encode_frames(
    frames: dict[str, np.ndarray], encoder: JpegBudgetEncoder | None
) -> tuple[dict[str, np.ndarray | bytes], int]:
    """The frames as the wire carries them (JPEG when there is an encoder), and their byte count."""
    if encoder is None:
        return dict(frames), sum(f.nbytes for f in frames.values())
    images: dict[str, np.ndarray | bytes] = {name: encoder.encode(name, image) for name, image in frames.items()}
    return images, sum(len(v) for v in images.values())


def reflex_request(
    obs: Observation, images: dict[str, Any], model: str | None, state_dtype: type = np.float64
) -> dict[str, Any]:
    """The /act request for one observation (images already encoded as the transport wants)."""
    req: dict[str, Any] = {
        "state": np.asarray(obs.state.position, dtype=state_dtype),
        "images": images,
        "task": obs.task,
        "step": int(obs.step),
    }
    if model is not None:
        req["model"] = model
    return req


def chunk_from_response(resp: Any, where: str, actions_key: str = "actions") -> tuple[np.ndarray, float | None]:
    """``(actions float64 (H, A), server_ms or None)`` from a response dict."""
    if not isinstance(resp, Mapping):
        raise RemoteError(502, f"{where}: response is {type(resp).__name__}, expected an object")
    if actions_key not in resp:
        raise RemoteError(502, f"{where}: response has no '{actions_key}' (keys: {sorted(map(str, resp))})")
    actions = np.asarray(resp[actions_key], dtype=np.float64)
    if actions.ndim == 1:
        actions = actions[None, :]
    if actions.ndim != 2 or actions.shape[0] == 0:
        raise RemoteError(502, f"{where}: '{actions_key}' has shape {actions.shape}, expected (horizon, dim)")
    timing = resp.get("server_timing")
    server_ms: float | None = None
    if isinstance(timing, Mapping):
        value = timing.get("total_ms", timing.get("infer_ms"))
        server_ms = float(value) if isinstance(value, (int, float)) else None
    return actions, server_ms


def timing_dict(rtt_ms: float, server_ms: float | None, retries: int, encode_ms: float) -> dict[str, float]:
    """Per-chunk timing: network_ms is the round trip minus the time the server reported."""
    server = server_ms if server_ms is not None else 0.0
    return {
        "server_ms": round(server, 3),
        "network_ms": round(max(0.0, rtt_ms - server), 3),
        "rtt_ms": round(rtt_ms, 3),
        "encode_ms": round(encode_ms, 3),
        "retries": float(retries),
    }


def target_info(kind: str, model: Mapping[str, Any], url: str, extra: dict[str, Any] | None = None) -> TargetInfo:
    """TargetInfo from the model description ``reflex serve`` sends (/health, handshakes)."""
    return TargetInfo(
        kind=kind,
        action_dim=int(model["action_dim"]),
        state_dim=int(model["state_dim"]),
        chunk_length=int(model["chunk_length"]),
        action_dt=float(model["action_dt_s"]),
        image_keys=tuple(model_image_sizes(model)),
        action_names=tuple(model.get("action_names") or ()),
        providers=tuple(model.get("providers") or ()),
        model_hash=model.get("model_hash"),
        seed=model.get("seed"),
        details={"url": url, "model": model.get("name"), **(extra or {})},
    )


def check_model_routing(spec: RemoteTargetSpec, model: Mapping[str, Any], stage: str) -> None:
    if spec.model is not None and model.get("name") != spec.model:
        raise SetupError(stage, f"target.model is '{spec.model}' but the server hosts '{model.get('name')}'")
