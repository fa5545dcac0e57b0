"""The interface every recording reader implements."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from reflex.replay.episode import Episode
from reflex.replay.mapping import DatasetMapping


class RecordingReader(Protocol):
    name: str

    def locate(self, path: Path) -> Path | None:
        """This format's file or directory under ``path`` (a session dir or the file itself)."""
        ...

    def read(self, path: Path, allow_partial: bool, mapping: DatasetMapping | None = None) -> list[Episode]:
        """Every episode in the recording. Raises RecordingError naming the line/step at fault;
        a recording that ends without its closing marker raises unless ``allow_partial``.
        ``mapping`` names the inputs of a dataset not recorded by Reflex (formats that read such)."""
        ...
