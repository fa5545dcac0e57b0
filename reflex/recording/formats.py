"""Every recording format, one spec each: everything Reflex knows about a format is here.

A spec names the format's directory inside a session directory, its main file, the files that
show it recorded anything, and where its recorder, reader, probe (``reflex recordings info``) and
repair (``reflex recordings repair``) live (``module:attribute``, imported lazily: a format's heavy
library is only needed when that format is used). Adding a format is one more spec here; the
session config, the recorder factory, ``reflex replay``, the replay hardware and
``reflex recordings`` all read this table.

Contracts: the recorder is built as ``Recorder(session_dir, images=..., image_encoding=...)``
and writes under ``session_dir / directory``; the reader implements
:class:`~reflex.replay.readers.base.RecordingReader`; probe and repair take the format's
*target* (``directory / main_file``, or the directory when the format has no single main file)
and return a JSON-able dict.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class FormatSpec:
    name: str
    directory: str  # subdirectory of a session directory
    main_file: str | None  # the single file the format writes (None: a directory tree)
    markers: tuple[str, ...]  # any of these (relative to the directory) means something was recorded
    recorder: str
    reader: str
    probe: str
    repair: str

    def target(self, session_or_format_dir: Path) -> Path:
        """What probe and repair take, given the format's directory."""
        return session_or_format_dir / self.main_file if self.main_file else session_or_format_dir

    def recorded_in(self, session_dir: Path) -> bool:
        return any((session_dir / self.directory / marker).is_file() for marker in self.markers)


# In replay preference order: when a session wrote several formats, the most exact one first.
SPECS: tuple[FormatSpec, ...] = (
    FormatSpec(
        name="jsonl", directory="jsonl", main_file="steps.jsonl", markers=("meta.json", "steps.jsonl"),
        recorder="reflex.recording.jsonl:JsonlRecorder",
        reader="reflex.replay.readers.jsonl:JsonlReader",
        probe="reflex.recording.inspect:probe_jsonl",
        repair="reflex.recording.inspect:repair_jsonl",
    ),
    FormatSpec(
        name="mcap", directory="mcap", main_file="session.mcap", markers=("session.mcap",),
        recorder="reflex.recording.mcap_recorder:McapRecorder",
        reader="reflex.replay.readers.mcap:McapReader",
        probe="reflex.recording.inspect:probe_mcap",
        repair="reflex.recording.mcap_repair:repair_mcap",
    ),
    FormatSpec(
        name="lerobot", directory="lerobot", main_file=None, markers=("meta/info.json",),
        recorder="reflex.recording.lerobot.recorder:LeRobotRecorder",
        reader="reflex.replay.readers.lerobot:LeRobotReader",
        probe="reflex.recording.inspect:probe_lerobot",
        repair="reflex.recording.lerobot.repair:repair_lerobot",
    ),
    FormatSpec(
        name="rerun", directory="rerun", main_file="session.rrd", markers=("session.rrd",),
        recorder="reflex.recording.rerun_recorder:RerunRecorder",
        reader="reflex.replay.readers.rerun:RerunReader",
        probe="reflex.recording.inspect:probe_rerun",
        repair="reflex.recording.rerun_recorder:repair_rrd",
    ),
)
BY_NAME: dict[str, FormatSpec] = {spec.name: spec for spec in SPECS}
FORMATS: dict[str, str] = {spec.name: spec.recorder for spec in SPECS}  # name -> recorder
KNOWN_FORMATS = frozenset(BY_NAME)


def spec(name: str) -> FormatSpec:
    return BY_NAME[name]


def main_file(name: str) -> str:
    """The file a single-file format writes (recorders and readers take the name from here)."""
    value = BY_NAME[name].main_file
    assert value is not None, f"format {name} has no single main file"
    return value
