"""Finish a LeRobot episode whose runner died (``kill -9``, power loss).

The episode is rebuilt from the row journal and the fragmented videos, cut to the last row
present in every stream; nothing is invented. Without a single complete row the episode is
excluded (status file says so, no ``meta/info.json``), so a loader never sees half an episode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reflex.recording.lerobot import layout as L
from reflex.recording.lerobot.finalize import finalize, remove_partial
from reflex.recording.manifest import read_json


def lerobot_state(root: Path) -> str:
    """``complete`` | ``repaired`` | ``excluded`` | ``interrupted`` | ``missing``."""
    status = read_json(root / L.STATUS_FILE)
    if status is None:
        return "missing"
    state = str(status.get("status"))
    if state == "recording" or (root / L.PARTIAL_DIR).exists():
        return "interrupted"
    return state


def repair_lerobot(root: Path) -> dict[str, Any]:
    state = lerobot_state(root)
    if state != "interrupted":
        return {"status": state, "repaired": False}
    report = finalize(root, repairing=True)
    remove_partial(root)
    return {
        "status": report.status,
        "repaired": report.status == "repaired",
        "rows": report.rows,
        "episodes": report.episodes,
        "journal_rows": report.journal_rows,
        "frames": report.frames,
        "reason": report.reason,
    }
