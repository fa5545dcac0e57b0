"""Recording formats by name -> the module and class that writes them (imported lazily)."""

from __future__ import annotations

FORMATS: dict[str, str] = {
    "jsonl": "reflex.recording.jsonl:JsonlRecorder",
    "lerobot": "reflex.recording.lerobot.recorder:LeRobotRecorder",
    "mcap": "reflex.recording.mcap_recorder:McapRecorder",
    "rerun": "reflex.recording.rerun_recorder:RerunRecorder",
}
KNOWN_FORMATS = frozenset(FORMATS)
