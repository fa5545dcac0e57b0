"""The joint layout (names, limits) of a recorded session, rebuilt from its resolved config.

The recordings carry the resolved config, not the limits themselves: the hardware block is
validated again and asked for its static layout. A session that itself ran on
``hardware.kind: replay`` takes the layout of the recording it played back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reflex.ports import JointLayout
from reflex.replay.episode import EpisodeMeta

MAX_REPLAY_DEPTH = 3


def recorded_layout(meta: EpisodeMeta, depth: int = 0) -> JointLayout | None:
    """The layout the recorded hardware declares, or None when it cannot be known here."""
    hardware = (meta.config_resolved or {}).get("hardware")
    if not isinstance(hardware, dict):
        return None
    if hardware.get("kind") == "replay":
        return _replayed_layout(meta, hardware, depth)
    try:
        from pydantic import TypeAdapter

        from reflex.config.session import HardwareBlock

        layout = TypeAdapter(HardwareBlock).validate_python(hardware).layout()
    except Exception:  # a plugin that is not importable here, or an older config
        return None
    if not isinstance(layout, JointLayout) or tuple(layout.names) != tuple(meta.joint_names):
        return None
    return layout


def _replayed_layout(meta: EpisodeMeta, hardware: dict[str, object], depth: int) -> JointLayout | None:
    config = hardware.get("config")
    source = config.get("recording") if isinstance(config, dict) else None
    if not isinstance(source, str) or depth >= MAX_REPLAY_DEPTH:
        return None
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = Path(meta.config_path).expanduser().resolve().parent / path
    try:
        from reflex.replay.readers import read_recording

        episodes = read_recording(path, None, allow_partial=True)
    except Exception:  # moved or deleted since: the limits are simply unknown
        return None
    layout = recorded_layout(episodes[0].meta, depth + 1) if episodes else None
    if layout is None or tuple(layout.names) != tuple(meta.joint_names):
        return None
    return layout


def unbounded_layout(names: tuple[str, ...]) -> JointLayout:
    dim = len(names)
    return JointLayout(names, np.full(dim, -np.inf), np.full(dim, np.inf))
