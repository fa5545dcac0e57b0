"""The built-in target kinds. A new kind adds its spec class here."""

from __future__ import annotations

from reflex.targets.base import TargetSpec
from reflex.targets.http.config import HttpTargetSpec
from reflex.targets.local.config import LocalTargetSpec
from reflex.targets.webrtc.config import WebrtcTargetSpec
from reflex.targets.websocket.config import WebsocketTargetSpec

BUILTIN_TARGETS: list[type[TargetSpec]] = [
    LocalTargetSpec,
    HttpTargetSpec,
    WebsocketTargetSpec,
    WebrtcTargetSpec,
]
