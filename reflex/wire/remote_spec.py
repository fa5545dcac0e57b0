"""Config fields every remote target (http, websocket, webrtc) shares.

Light on purpose: the session config imports this module, so it must not import a transport.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from reflex.config.base import StrictModel
from reflex.targets.base import TargetSpec

if TYPE_CHECKING:
    from reflex.wire.jpeg import JpegBudgetEncoder


class RemoteTargetSpec(TargetSpec):
    """Where the policy server is, how to authenticate, and what a transport failure does."""

    url: str = Field(description="Server address, e.g. http://127.0.0.1:8000 (ws://... for websocket).")
    api_key: str | None = Field(
        None, description="API key sent with every request. Prefer api_key_env: keys in files leak."
    )
    api_key_env: str | None = Field(
        "REFLEX_API_KEY", description="Environment variable holding the API key (used when api_key is unset)."
    )
    model: str | None = Field(
        None, description="Model routing field: the server refuses requests meant for another model."
    )
    image_size: tuple[int, int] | None = Field(
        None, description="[height, width] frames are resized to before sending; default: the model's input size."
    )
    connect_timeout_s: float = Field(10.0, gt=0, description="How long connect() waits for a ready server.")
    timeout_s: float = Field(5.0, gt=0, description="Longest wait for one response.")
    retry_for_ms: float = Field(
        1000.0,
        ge=0,
        description="After a transport failure mid-session, keep retrying (reconnecting) for this long; "
        "then infer raises and the session safe-stops.",
    )
    ca_file: str | None = Field(
        None,
        description="PEM file of the certificate authority (or self-signed certificate) to trust for https:// "
        "and wss:// (relative to this file); default: the system's trust store.",
    )
    max_response_mb: float = Field(
        64.0, gt=0, description="Largest reply accepted, in MiB; a bigger one ends the session with a safe stop."
    )
    retry_backoff_ms: float = Field(20.0, gt=0, description="First pause between retries; doubles each time.")
    retry_backoff_max_ms: float = Field(250.0, gt=0, description="Longest pause between retries.")

    @model_validator(mode="after")
    def _sizes(self) -> RemoteTargetSpec:
        if self.image_size is not None and min(self.image_size) <= 0:
            raise ValueError("image_size must be [height, width] with both > 0")
        if self.retry_backoff_max_ms < self.retry_backoff_ms:
            raise ValueError("retry_backoff_max_ms must be >= retry_backoff_ms")
        return self

    @property
    def max_response_bytes(self) -> int:
        return int(self.max_response_mb * 1024 * 1024)


def check_url(url: str, schemes: tuple[str, ...], bare_ok: bool = False) -> None:
    """``url`` must be ``scheme://host[:port][/path]`` with one of ``schemes`` (or bare ``host:port``)."""
    from urllib.parse import urlsplit

    if bare_ok and "://" not in url:
        url = f"{schemes[0]}://{url}"
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"url '{url}': expected " + " or ".join(f"{s}://host:port" for s in schemes))


class JpegImageFields(StrictModel):
    """JPEG within a per-camera byte budget: how the webrtc target always sends images, and how
    the http and websocket targets send them to ``reflex serve`` with ``image_encoding: jpeg``."""

    jpeg_budget_bytes: int = Field(12000, ge=1000, description="Largest JPEG per camera and frame.")
    jpeg_quality: int = Field(90, ge=1, le=100, description="Starting (and highest) JPEG quality.")
    jpeg_min_quality: int = Field(30, ge=1, le=100, description="Lowest quality tried before it is an error.")

    @model_validator(mode="after")
    def _qualities(self) -> JpegImageFields:
        if self.jpeg_min_quality > self.jpeg_quality:
            raise ValueError("jpeg_min_quality must be <= jpeg_quality")
        return self

    def jpeg_encoder(self) -> JpegBudgetEncoder:
        from reflex.wire.jpeg import JpegBudgetEncoder

        return JpegBudgetEncoder(self.jpeg_budget_bytes, self.jpeg_quality, self.jpeg_min_quality)


ImageEncoding = Literal["raw", "jpeg"]
IMAGE_ENCODING_HELP = (
    "How images travel to reflex serve: raw (lossless uint8 arrays) or jpeg (within jpeg_budget_bytes "
    "per camera; about 20x fewer bytes, lossy). jpeg pays off once the link, not the CPU, is the bottleneck."
)
