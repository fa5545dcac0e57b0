"""JSON Schemas of ``reflex serve``'s HTTP API: /act request and response, errors, /health.

These models document the JSON encoding; the msgpack encoding has the same fields, with images
as JPEG/PNG bytes or uint8 arrays and ``actions`` as an ndarray. The server validates with
``reflex.serve.request`` (fast, and aware of msgpack types); a test keeps the field lists equal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from reflex.schemas import dumps


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ActRequest(_Strict):
    """One observation. Unknown fields are refused (422 ``unknown_field``), never ignored."""

    state: list[float] = Field(description="Joint state, exactly the model's state_dim numbers.")
    images: dict[str, str] = Field(
        default_factory=dict,
        description="Camera name -> base64 JPEG or PNG. Exactly the model's cameras (GET /health "
        "model.image_inputs); a missing camera is 422 missing_field, an unknown one 422 unknown_field. "
        "Sizes must match unless the server runs with --resize-images.",
    )
    task: str | None = Field(None, description="Instruction text.")
    prompt: str | None = Field(None, description="Alias of task (openpi's name); give one, not both.")
    step: int = Field(0, ge=0, description="Observation step; seeds the policy noise with the export's seed.")
    model: str | None = Field(None, description="Routing: the model this request is for (404 if another is served).")
    request_id: str | None = Field(None, max_length=128, description="Echoed in the response.")


class ServerTiming(_Strict):
    decode_ms: float = Field(description="Parsing, validation and image decoding.")
    queue_ms: float = Field(description="Waiting for the inference thread.")
    infer_ms: float = Field(description="The policy call itself.")
    total_ms: float = Field(description="From the request's arrival to the response being built.")


class PolicyTiming(_Strict):
    infer_ms: float


class ActResponse(_Strict):
    actions: list[list[float]] = Field(description="chunk_length rows of action_dim numbers, robot units.")
    chunk_length: int
    action_dim: int
    action_dt_s: float = Field(description="Seconds between consecutive actions.")
    model: str
    model_hash: str | None
    step: int
    request_id: str | None
    server_timing: ServerTiming
    policy_timing: PolicyTiming = Field(description="openpi's key, same infer_ms.")


class ErrorDetail(_Strict):
    status: int = Field(description="HTTP status: 400 body, 401 key, 404 model, 413 size, 415 type, "
                        "422 fields, 429 overload, 500 inference, 501 feature missing, 503 not ready.")
    code: str = Field(description="Stable code, e.g. unknown_field, missing_field, invalid_field, unauthorized.")
    field: str | None = Field(description="The offending field, e.g. images.top.")
    message: str


class ErrorResponse(_Strict):
    error: ErrorDetail


class ModelDescription(_Strict):
    name: str
    state_dim: int
    action_dim: int
    chunk_length: int
    action_dt_s: float
    image_inputs: dict[str, list[int]] = Field(description="Camera -> [height, width].")
    state_names: list[str]
    action_names: list[str]
    providers: list[str]
    model_hash: str | None
    seed: int | None
    export_dir: str | None


class Health(_Strict):
    """GET /health: 200 when ready, 503 while loading/warming or after a failed load."""

    status: Literal["loading", "warming", "ready", "failed"]
    ready: bool
    error: str | None
    model: ModelDescription | None
    providers: list[str]
    in_flight: int
    max_concurrent: int
    max_batch: int = Field(description="Requests per batched inference call at most (1: no batching).")
    queue_depth: int = Field(description="Requests waiting for the model (batching only).")
    served: int
    refused: int = Field(description="Requests refused with 429 because the queue was full.")
    uptime_s: float
    version: str
    transports: dict[str, str]


DOCUMENTS: dict[str, tuple[type[BaseModel], str]] = {
    "act_request.schema.json": (ActRequest, "reflex serve: POST /act request (JSON encoding)"),
    "act_response.schema.json": (ActResponse, "reflex serve: POST /act response (JSON encoding)"),
    "error.schema.json": (ErrorResponse, "reflex serve: error body of every 4xx/5xx"),
    "health.schema.json": (Health, "reflex serve: GET /health"),
}


def schema_documents() -> dict[str, dict[str, Any]]:
    docs = {}
    for file_name, (model, title) in DOCUMENTS.items():
        doc = model.model_json_schema()
        doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        doc["title"] = title
        docs[file_name] = doc
    return docs


def render_schemas() -> dict[str, str]:
    """``{"serve/<name>.schema.json": text}``: the shape ``reflex.schemas.RENDERERS`` expects."""
    return {f"serve/{name}": dumps(doc) for name, doc in schema_documents().items()}


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every serve schema as ``out_dir/<name>.schema.json`` (``schemas/serve`` in the repo)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, doc in schema_documents().items():
        path = out_dir / file_name
        path.write_text(dumps(doc))
        written.append(path)
    return written
