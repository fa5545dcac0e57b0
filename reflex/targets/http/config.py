"""Config of the HTTP target."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from reflex.config.base import BuildContext, StrictModel
from reflex.ports import Target
from reflex.wire.remote_spec import (
    IMAGE_ENCODING_HELP,
    ImageEncoding,
    JpegImageFields,
    RemoteTargetSpec,
    check_url,
)


class HttpMapping(StrictModel):
    """How to talk to an HTTP policy server that is not ``reflex serve`` (JSON in, JSON out)."""

    state_field: str = Field("state", description="Request field holding the joint state list.")
    images: dict[str, str] = Field(
        default_factory=dict, description="Camera name -> request field of its base64 image (default: same name)."
    )
    image_encoding: Literal["jpeg", "png"] = Field("jpeg", description="How images are encoded before base64.")
    jpeg_quality: int = Field(90, ge=1, le=100)
    task_field: str | None = Field("instruction", description="Request field of the task text (null: not sent).")
    step_field: str | None = Field(None, description="Request field of the step number (null: not sent).")
    actions_path: str = Field("actions", description="Dotted path of the action chunk in the response.")
    server_ms_path: str | None = Field(
        None, description="Dotted path of the server's own latency in ms, if it reports one (e.g. latency_ms)."
    )
    extra: dict[str, Any] = Field(default_factory=dict, description="Constant fields added to every request.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra HTTP headers.")
    action_dim: int | None = Field(
        None, gt=0, description="Width of each action, if known; else the first chunk is checked against the robot."
    )
    chunk_length: int | None = Field(None, gt=0, description="Actions per chunk the server returns, if known.")
    action_dt_s: float = Field(gt=0, description="Seconds between consecutive actions of a chunk.")
    image_inputs: dict[str, tuple[int, int]] = Field(
        default_factory=dict, description="Camera -> [height, width] sent (resized on the client)."
    )


class HttpTargetSpec(JpegImageFields, RemoteTargetSpec):
    """POST each observation to ``reflex serve``'s ``/act`` (msgpack), or to another server via ``mapping``."""

    kind: Literal["http"] = "http"
    act_path: str = Field("/act", description="Path of the inference endpoint.")
    health_path: str | None = Field(
        "/health", description="Readiness endpoint polled by connect (null: only open a connection)."
    )
    encoding: Literal["msgpack", "json"] = Field(
        "msgpack", description="Body encoding for reflex serve (mapping always uses JSON)."
    )
    mapping: HttpMapping | None = Field(None, description="Field mapping for a server that is not reflex serve.")
    image_encoding: ImageEncoding = Field("raw", description=IMAGE_ENCODING_HELP)

    @model_validator(mode="after")
    def _jpeg_needs_reflex_serve(self) -> HttpTargetSpec:
        check_url(self.url, ("http", "https"))
        if self.image_encoding == "jpeg" and self.mapping is not None:
            raise ValueError("image_encoding: jpeg is for reflex serve; with a mapping use mapping.image_encoding")
        return self

    def build(self, ctx: BuildContext) -> Target:
        from reflex.targets.http.transport import HttpSession, HttpTransport
        from reflex.targets.protocols.mapped_json import MappedJsonProtocol
        from reflex.targets.protocols.reflex_wire import ReflexProtocol
        from reflex.targets.remote.ports import WireProtocol
        from reflex.targets.remote.target import RemoteTarget
        from reflex.wire.remote_client import resolve_api_key, ssl_context

        api_key = resolve_api_key(self, ctx)
        headers = dict(self.mapping.headers) if self.mapping else {}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        session = HttpSession(self.url, headers, self.timeout_s, self.max_response_bytes, ssl_context(self, ctx))
        protocol: WireProtocol
        if self.mapping is not None:
            protocol, health = MappedJsonProtocol(self.mapping), self.health_path
        else:
            protocol, health = ReflexProtocol(self, self.encoding), self.health_path or "/health"
        return RemoteTarget(self, HttpTransport(session, self.url, self.act_path, health), protocol)
