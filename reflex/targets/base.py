"""Base of every ``target`` block."""

from __future__ import annotations

from typing import Any

from reflex.config.base import BuildContext, PluginKind, StrictModel, load_object
from reflex.ports import Target


class TargetSpec(StrictModel):
    """A target block. Subclasses narrow ``kind`` and add their own fields."""

    kind: str

    def build(self, ctx: BuildContext) -> Target:
        raise NotImplementedError


class PluginTargetSpec(TargetSpec):
    """``kind: package.module:Class``; settings go in ``config``."""

    kind: PluginKind  # type: ignore[assignment]
    config: dict[str, Any] = {}

    def build(self, ctx: BuildContext) -> Target:
        target = load_object(self.kind)(**self.config)
        if not isinstance(target, Target):
            raise TypeError(f"plugin '{self.kind}' does not implement the Target port")
        return target
