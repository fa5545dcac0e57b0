"""Config of the WebSocket (openpi protocol) target."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from reflex.config.base import BuildContext, StrictModel
from reflex.ports import Target
from reflex.wire.remote_spec import IMAGE_ENCODING_HELP, ImageEncoding, JpegImageFields, RemoteTargetSpec

KeyPath = str | list[str]


class OpenpiMapping(StrictModel):
    """How observations look to an openpi server (its metadata says nothing about shapes).

    A key path is one key (``observation/state``: the ``/`` is part of the key, as DROID uses)
    or a list of keys into nested maps (``[images, cam_high]``, as ALOHA uses).
    """

    state: KeyPath = Field("state", description="Key path of the state vector.")
    images: dict[str, KeyPath] = Field(
        default_factory=dict, description="Camera name -> key path of its image, e.g. top: [images, cam_high]."
    )
    prompt: KeyPath | None = Field("prompt", description="Key path of the task text (null: not sent).")
    image_layout: Literal["hwc", "chw"] = Field("hwc", description="hwc (DROID, LIBERO) or chw (ALOHA).")
    state_dtype: Literal["float32", "float64"] = "float32"
    actions_key: str = Field("actions", description="Response key of the action chunk.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Constant entries added to every observation.")
    action_dim: int = Field(gt=0, description="Width of each action.")
    action_dt_s: float = Field(gt=0, description="Seconds between consecutive actions of a chunk.")
    chunk_length: int | None = Field(
        None, gt=0, description="Actions per chunk; default: the server metadata's action_horizon."
    )


class WebsocketTargetSpec(JpegImageFields, RemoteTargetSpec):
    """Request/response over one WebSocket in openpi's msgpack-numpy protocol."""

    kind: Literal["websocket"] = "websocket"
    auth_scheme: Literal["Api-Key", "Bearer"] = Field(
        "Api-Key", description="Authorization scheme: Api-Key (what openpi-client sends) or Bearer."
    )
    max_message_mb: float = Field(64.0, gt=0, description="Largest response accepted.")
    openpi: OpenpiMapping | None = Field(
        None, description="Observation layout for an openpi server; unset for reflex serve."
    )
    image_encoding: ImageEncoding = Field("raw", description=IMAGE_ENCODING_HELP)

    @model_validator(mode="after")
    def _jpeg_needs_reflex_serve(self) -> WebsocketTargetSpec:
        if self.image_encoding == "jpeg" and self.openpi is not None:
            raise ValueError("image_encoding: jpeg is for reflex serve; openpi servers take raw arrays (drop it)")
        return self

    def build(self, ctx: BuildContext) -> Target:
        from reflex.targets.websocket.target import WebsocketTarget
        from reflex.wire.remote_client import resolve_api_key

        return WebsocketTarget(self, resolve_api_key(self, ctx))
