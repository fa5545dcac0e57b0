"""Decoding and validating one /act request, the same for every transport.

Strict by design: an unknown field, an unknown camera, a missing model input or an image of the
wrong size is a 4xx naming the field. Nothing is ever filled in with a blank image or zeros.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from reflex.serve.model import ModelInfo
from reflex.wire.jpeg import ImageCodecError, ImageTooLarge, decode_image, resize_rgb

# The request fields; docs/serve.md and schemas/serve/act_request.schema.json list the same.
REQUEST_FIELDS = ("state", "images", "task", "prompt", "step", "model", "request_id")
MAX_REQUEST_ID = 128


class RequestError(Exception):
    """A request the server refuses; carries the HTTP status, a stable code and the field."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "code": self.code, "field": self.field, "message": self.message}


@dataclass
class ActRequest:
    state: np.ndarray  # float64 (state_dim,)
    images: dict[str, np.ndarray]  # camera -> RGB HxWx3 uint8 at the model's input size
    task: str
    step: int
    request_id: str | None


def new_request_id() -> str:
    """The id of a response whose request brought none (clients log it with the chunk)."""
    return uuid.uuid4().hex


def _invalid(field: str, message: str) -> RequestError:
    return RequestError(422, "invalid_field", f"{field}: {message}", field)


def decode_json_body(body: bytes, what: str = "body") -> Any:
    """JSON of any shape the client sends, or a 400 — never a 500 (deep nesting included)."""
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(400, "invalid_body", f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise RequestError(400, "invalid_body", f"{what} nests too deeply") from None


def parse_act_request(
    payload: Any, info: ModelInfo, resize_images: bool = False, max_image_pixels: int | None = None
) -> ActRequest:
    """Validate a decoded request (JSON object or msgpack map) against the hosted model."""
    if not isinstance(payload, dict):
        raise RequestError(400, "invalid_body", f"the request must be an object, got {type(payload).__name__}")
    for key in payload:
        if key not in REQUEST_FIELDS:
            raise RequestError(
                422,
                "unknown_field",
                f"unknown field '{key}'; a request has only {', '.join(REQUEST_FIELDS)}",
                str(key),
            )
    if "state" not in payload:
        raise RequestError(422, "missing_field", "missing field 'state' (the robot's joint state)", "state")
    state = _parse_state(payload["state"], info.state_dim)
    images = _parse_images(payload.get("images"), info, resize_images, max_image_pixels)
    if "task" in payload and "prompt" in payload:
        raise RequestError(422, "conflicting_fields", "give 'task' or its alias 'prompt', not both", "prompt")
    task_field = "prompt" if "prompt" in payload else "task"
    task = payload.get(task_field, "")
    if not isinstance(task, str):
        raise _invalid(task_field, f"expected a string, got {type(task).__name__}")
    step = payload.get("step", 0)
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) or step < 0:
        raise _invalid("step", f"expected an integer >= 0, got {step!r}")
    model = payload.get("model")
    if model is not None and model != info.name:
        raise RequestError(
            404, "unknown_model", f"model '{model}' is not served here; this server hosts '{info.name}'", "model"
        )
    request_id = payload.get("request_id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > MAX_REQUEST_ID):
        raise _invalid("request_id", f"expected a string of at most {MAX_REQUEST_ID} characters")
    return ActRequest(state=state, images=images, task=task, step=int(step), request_id=request_id)


def _parse_state(value: Any, dim: int) -> np.ndarray:
    try:
        state = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _invalid("state", f"expected {dim} numbers") from None
    if state.shape != (dim,):
        raise _invalid("state", f"expected {dim} numbers, got shape {state.shape}")
    if not np.all(np.isfinite(state)):
        raise _invalid("state", "contains NaN or Inf")
    return state


def _parse_images(value: Any, info: ModelInfo, resize: bool, max_pixels: int | None) -> dict[str, np.ndarray]:
    expected = info.image_inputs
    if value is None:
        if expected:
            first = next(iter(expected))
            raise RequestError(
                422, "missing_field", f"missing field 'images' (the model needs camera '{first}')", f"images.{first}"
            )
        return {}
    if not isinstance(value, dict):
        raise _invalid("images", f"expected an object of camera name -> image, got {type(value).__name__}")
    for name in value:
        if name not in expected:
            known = ", ".join(expected) or "none"
            raise RequestError(
                422, "unknown_field", f"unknown camera '{name}'; the model takes: {known}", f"images.{name}"
            )
    images: dict[str, np.ndarray] = {}
    for name, (height, width) in expected.items():
        field = f"images.{name}"
        if name not in value:
            raise RequestError(
                422, "missing_field", f"missing image for camera '{name}' (a model input)", field
            )
        image = _decode(value[name], field, max_pixels)
        if image.shape[:2] != (height, width):
            if not resize:
                raise _invalid(
                    field,
                    f"image is {image.shape[0]}x{image.shape[1]} (HxW), the model takes {height}x{width}; "
                    "resize on the client or start the server with --resize-images",
                )
            image = resize_rgb(image, height, width)
        images[name] = image
    return images


def _decode(value: Any, field: str, max_pixels: int | None = None) -> np.ndarray:
    if isinstance(value, str):  # JSON: base64 JPEG/PNG
        try:
            value = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(field, "expected base64 of a JPEG or PNG image") from None
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return decode_image(value, max_pixels)
        except ImageTooLarge as exc:
            raise RequestError(413, "image_too_large", f"{field}: {exc}", field) from None
        except ImageCodecError as exc:
            raise _invalid(field, str(exc)) from None
    if isinstance(value, np.ndarray):
        if value.dtype != np.uint8 or value.ndim != 3:
            raise _invalid(field, f"expected a uint8 HxWx3 (or 3xHxW) array, got {value.dtype} {value.shape}")
        if value.shape[2] == 3:
            return value
        if value.shape[0] == 3:  # CHW, as openpi's ALOHA clients send
            return np.ascontiguousarray(value.transpose(1, 2, 0))
        raise _invalid(field, f"expected 3 colour channels, got shape {value.shape}")
    raise _invalid(field, f"expected JPEG/PNG bytes or a uint8 array, got {type(value).__name__}")


def finite_ms(value: float) -> float:
    """Round a duration for the wire (and guard against NaN from a broken clock)."""
    return round(value, 3) if math.isfinite(value) else 0.0
