"""Base of every ``hardware`` config block: ``{kind, config}``."""

from __future__ import annotations

from typing import Any

from reflex.config.base import BuildContext, PluginKind, StrictModel, load_object
from reflex.ports import Hardware, JointLayout


class HardwareSpec(StrictModel):
    """A hardware block. Subclasses narrow ``kind`` to a Literal and type ``config``."""

    kind: str

    def layout(self) -> JointLayout | None:
        """The state/action layout if it is known without touching the robot."""
        return None

    def can_apply(self) -> bool:
        """Whether this connector can execute actions (``apply_actions`` needs it)."""
        return True

    def build(self, ctx: BuildContext) -> Hardware:
        raise NotImplementedError


class PluginHardwareSpec(HardwareSpec):
    """``kind: package.module:Class``; ``config`` is passed to ``Class(**config)``."""

    kind: PluginKind  # type: ignore[assignment]
    config: dict[str, Any] = {}

    def build(self, ctx: BuildContext) -> Hardware:
        factory = load_object(self.kind)
        hardware = factory(**self.config)
        if not isinstance(hardware, Hardware):
            raise TypeError(f"plugin '{self.kind}' does not implement the Hardware port")
        return hardware
