"""Fields every camera block shares, whatever its kind."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from reflex.config.base import BuildContext, PluginKind, StrictModel, load_object
from reflex.config.bounds import sensible
from reflex.ports import Camera

FRAME_SIDE = sensible(None, 8192, "8K; larger frames exhaust memory, not a policy")


class CameraSpec(StrictModel):
    """A camera block. Subclasses narrow ``kind`` and add their own fields."""

    kind: str
    width: int | None = Field(
        None, gt=0, json_schema_extra=FRAME_SIDE,
        description="Expected width; a mismatch fails at start.",
    )
    height: int | None = Field(
        None, gt=0, json_schema_extra=FRAME_SIDE,
        description="Expected height; a mismatch fails at start.",
    )
    color_order: Literal["rgb", "bgr"] = Field(
        "rgb", description="Channel order the source delivers; frames reach the policy as RGB."
    )
    max_age_ms: float = Field(
        200.0,
        gt=0,
        json_schema_extra=sensible(None, 2000, "a frame two seconds old shows a scene the arm has left"),
        description="A frame older than this is never fed to the policy.",
    )

    def build(self, name: str, ctx: BuildContext) -> Camera:
        raise NotImplementedError


class PluginCameraSpec(CameraSpec):
    """``kind: package.module:Class``; extra settings go in ``config``."""

    kind: PluginKind  # type: ignore[assignment]
    config: dict[str, Any] = {}

    def build(self, name: str, ctx: BuildContext) -> Camera:
        camera = load_object(self.kind)(name=name, **self.config)
        if not isinstance(camera, Camera):
            raise TypeError(f"plugin '{self.kind}' does not implement the Camera port")
        return camera
