"""The built-in target kinds. A new kind adds its spec class here."""

from __future__ import annotations

from reflex.targets.base import TargetSpec
from reflex.targets.local.config import LocalTargetSpec

BUILTIN_TARGETS: list[type[TargetSpec]] = [LocalTargetSpec]
