"""One reader per recording format, chosen by name or detected from the directory layout.

The readers come from the format registry (``reflex/recording/formats.py``), imported lazily; its
order is the preference when a session directory holds several formats (the most exact first).
"""

from __future__ import annotations

from pathlib import Path

from reflex.config.base import load_object
from reflex.recording.formats import SPECS
from reflex.replay.episode import Episode, RecordingError
from reflex.replay.mapping import DatasetMapping
from reflex.replay.readers.base import RecordingReader

READERS: dict[str, str] = {spec.name: spec.reader for spec in SPECS}


def reader_for(name: str) -> RecordingReader:
    if name not in READERS:
        raise RecordingError("--format", f"unknown recording format '{name}'; expected one of {sorted(READERS)}")
    reader: RecordingReader = load_object(READERS[name])()
    return reader


def detect_formats(path: Path) -> list[tuple[str, Path]]:
    """Every format found at ``path`` (a session directory, a format directory or a file)."""
    found = []
    for name in READERS:
        located = reader_for(name).locate(path)
        if located is not None:
            found.append((name, located))
    return found


def read_recording(
    path: Path, fmt: str | None = None, allow_partial: bool = False, mapping: DatasetMapping | None = None
) -> list[Episode]:
    """The episodes in ``path``; ``fmt`` picks a format when the session wrote several; ``mapping``
    names the inputs of a dataset Reflex did not record (LeRobot, MCAP)."""
    if not path.exists():
        raise RecordingError(str(path), "no such file or directory")
    if fmt is not None:
        reader = reader_for(fmt)
        located = reader.locate(path)
        if located is None:
            present = [name for name, _ in detect_formats(path)]
            raise RecordingError(str(path), f"no {fmt} recording here (found: {present or 'none'})")
        return reader.read(located, allow_partial, mapping)
    found = detect_formats(path)
    if not found:
        raise RecordingError(
            str(path), f"not a recording: expected a session directory or a file in one of {sorted(READERS)}"
        )
    name, located = found[0]
    return reader_for(name).read(located, allow_partial, mapping)
