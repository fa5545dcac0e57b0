"""Recording formats by name -> the module and class that writes them (imported lazily)."""

from __future__ import annotations

FORMATS: dict[str, str] = {
    "jsonl": "reflex.recording.jsonl:JsonlRecorder",
}
KNOWN_FORMATS = frozenset(FORMATS)
