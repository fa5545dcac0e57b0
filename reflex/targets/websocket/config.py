"""Config of the WebSocket (openpi protocol) target."""

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

KeyPath = str | list[str]


class StatePart(StrictModel):
    """A slice of the robot's joint vector sent under its own key (DROID splits joints and gripper)."""

    key: KeyPath = Field(description="Key path the slice goes to, e.g. observation/joint_position.")
    joints: tuple[int, int] = Field(description="[start, stop) indices into the joint vector, e.g. [0, 7].")

    @model_validator(mode="after")
    def _range(self) -> StatePart:
        if not 0 <= self.joints[0] < self.joints[1]:
            raise ValueError("joints must be [start, stop) with 0 <= start < stop")
        return self


class OpenpiMapping(StrictModel):
    """How observations look to an openpi server (its metadata says nothing about shapes).

    A key path is one key (``observation/state``: the ``/`` is part of the key, as DROID uses)
    or a list of keys into nested maps (``[images, cam_high]``, as ALOHA uses).
    """

    state: KeyPath | list[StatePart] = Field(
        "state", description="Key path of the whole joint vector, or a list of {key, joints: [start, stop]} slices."
    )
    images: dict[str, KeyPath] = Field(
        default_factory=dict, description="Camera name -> key path of its image, e.g. top: [images, cam_high]."
    )
    prompt: KeyPath | None = Field("prompt", description="Key path of the task text (null: not sent).")
    image_layout: Literal["hwc", "chw"] = Field("hwc", description="hwc (DROID, LIBERO) or chw (ALOHA).")
    image_resize: Literal["pad", "stretch"] = Field(
        "pad", description="To image_size: pad (letterbox, as openpi's clients do) or stretch."
    )
    state_dtype: Literal["float32", "float64"] = Field("float64", description="As openpi's example clients send.")
    actions_key: str = Field("actions", description="Response key of the action chunk.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Constant entries added to every observation.")
    action_dim: int | None = Field(
        None, gt=0, description="Width of each action, if known; else the first chunk is checked against the robot."
    )
    action_dt_s: float = Field(gt=0, description="Seconds between consecutive actions of a chunk.")
    chunk_length: int | None = Field(
        None, gt=0, description="Actions per chunk; default: the server metadata's action_horizon, if any."
    )
    velocity_columns: tuple[int, int] | None = Field(
        None,
        description="[start, stop) action columns that are joint velocities (DROID: [0, 7]); they are integrated "
        "from the observed joints over action_dt_s into position targets.",
    )


class WebsocketTargetSpec(JpegImageFields, RemoteTargetSpec):
    """Request/response over one WebSocket in openpi's msgpack-numpy protocol."""

    kind: Literal["websocket"] = "websocket"
    auth_scheme: Literal["Api-Key", "Bearer"] = Field(
        "Api-Key", description="Authorization scheme: Api-Key (what openpi-client sends) or Bearer."
    )
    max_message_mb: float | None = Field(
        None, gt=0, description="Deprecated spelling of max_response_mb (kept so older configs load)."
    )
    openpi: OpenpiMapping | None = Field(
        None, description="Observation layout for an openpi server; unset for reflex serve."
    )
    image_encoding: ImageEncoding = Field("raw", description=IMAGE_ENCODING_HELP)

    @model_validator(mode="after")
    def _jpeg_needs_reflex_serve(self) -> WebsocketTargetSpec:
        check_url(self.url, ("ws", "wss"), bare_ok=True)
        if self.image_encoding == "jpeg" and self.openpi is not None:
            raise ValueError("image_encoding: jpeg is for reflex serve; openpi servers take raw arrays (drop it)")
        return self

    @property
    def max_response_bytes(self) -> int:
        mb = self.max_message_mb if self.max_message_mb is not None else self.max_response_mb
        return int(mb * 1024 * 1024)

    def build(self, ctx: BuildContext) -> Target:
        from reflex.targets.protocols.openpi import OpenpiProtocol
        from reflex.targets.protocols.reflex_wire import ReflexProtocol
        from reflex.targets.remote.target import RemoteTarget
        from reflex.targets.websocket.transport import WebsocketTransport
        from reflex.wire.remote_client import resolve_api_key, ssl_context

        api_key = resolve_api_key(self, ctx)
        url = self.url if "://" in self.url else f"ws://{self.url}"
        headers = {"Authorization": f"{self.auth_scheme} {api_key}"} if api_key else {}
        transport = WebsocketTransport(
            url, headers, self.connect_timeout_s, self.max_response_bytes, ssl_context(self, ctx)
        )
        protocol = OpenpiProtocol(self.openpi, self.image_size) if self.openpi else ReflexProtocol(self)
        return RemoteTarget(self, transport, protocol)
