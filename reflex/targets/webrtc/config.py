"""Config of the WebRTC target."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from reflex.config.base import BuildContext
from reflex.ports import Target
from reflex.wire.remote_spec import JpegImageFields, RemoteTargetSpec, check_url


class WebrtcTargetSpec(JpegImageFields, RemoteTargetSpec):
    """HTTP offer/answer at ``<url>/webrtc/offer``, then msgpack requests over a data channel.

    Images travel as JPEG within ``jpeg_budget_bytes`` per camera: aiortc's SCTP stack moves
    about 10 KB per millisecond, so raw frames would cost tens of milliseconds.
    """

    kind: Literal["webrtc"] = "webrtc"
    offer_path: str = Field("/webrtc/offer", description="Signaling endpoint (HTTP POST of the SDP offer).")
    health_path: str = Field("/health", description="Readiness endpoint polled by connect.")
    part_bytes: int = Field(
        64 * 1024, ge=1024, le=256 * 1024, description="Largest data-channel message; bigger ones are split."
    )
    ice_servers: list[str] = Field(
        default_factory=list, description="STUN/TURN URLs (default none: no traffic to public STUN servers)."
    )
    ice_addresses: list[str] | None = Field(
        None, description="Local addresses offered as ICE candidates; default 127.0.0.1 for a loopback url."
    )
    channel: Literal["ordered", "unordered"] = Field("ordered", description="Data-channel ordering.")

    @model_validator(mode="after")
    def _url(self) -> WebrtcTargetSpec:
        check_url(self.url, ("http", "https"))
        return self

    def build(self, ctx: BuildContext) -> Target:
        import numpy as np

        from reflex.targets.http.transport import HttpSession
        from reflex.targets.protocols.reflex_wire import ReflexProtocol
        from reflex.targets.remote.target import RemoteTarget
        from reflex.targets.webrtc.transport import WebrtcTransport
        from reflex.wire.remote_client import resolve_api_key, ssl_context

        api_key = resolve_api_key(self, ctx)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        http = HttpSession(self.url, headers, self.connect_timeout_s, self.max_response_bytes, ssl_context(self, ctx))
        # JPEG always: aiortc's SCTP moves ~10 KB/ms; float32 state: the server casts anyway
        protocol = ReflexProtocol(self, encoder=self.jpeg_encoder(), state_dtype=np.float32)
        return RemoteTarget(self, WebrtcTransport(self, http), protocol)
