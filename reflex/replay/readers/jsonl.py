"""Reader of the ``jsonl`` recorder's output (``<session>/jsonl/steps.jsonl`` + image files).

The numbers are JSON float64; with ``record.image_encoding: lossless`` the images are PNG and
observations are rebuilt bit for bit. JPEG images (the default) are flagged as approximate.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from reflex.replay.episode import Episode, EpisodeMeta, RecordedChunk, RecordedStep, RecordingError
from reflex.replay.readers.records import RecordParser, locate_file, note_gaps

SUPPORTED_SCHEMAS = ("reflex.jsonl/1",)


class JsonlReader:
    name = "jsonl"

    def locate(self, path: Path) -> Path | None:
        return locate_file(path, "jsonl")

    def read(self, path: Path, allow_partial: bool, mapping: object = None) -> list[Episode]:
        return [_parse(path, allow_partial)]


def load_image(path: Path, where: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise RecordingError(where, f"image file {path} is missing")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise RecordingError(where, f"image file {path} is corrupt: {exc}") from None


def _parse(path: Path, allow_partial: bool) -> Episode:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(str(path), f"cannot read: {exc}") from None
    lines = text.split("\n")
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    if last < 0:
        raise RecordingError(str(path), "empty file (the session died before the header was written?)")
    parser = RecordParser(0)
    root = path.parent
    lossy_files: set[str] = set()

    def frame_loader(camera: str, seq: int, step: int, rel: object) -> Callable[[], np.ndarray] | None:
        if not isinstance(rel, str):
            return None  # recorded with images off
        file, where = root / rel, f"{path}: step {step}"
        if not rel.endswith(".png"):
            lossy_files.add(rel.rsplit(".", 1)[-1])
        return lambda: load_image(file, where)

    meta: EpisodeMeta | None = None
    steps: list[RecordedStep] = []
    chunks: list[RecordedChunk] = []
    ended = truncated_line = False
    for index, line in enumerate(lines[: last + 1]):
        parser.where = f"{path}:{index + 1}"
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if index == last and not ended:
                truncated_line = True  # a half-written last line: the writer died mid-line
                break
            raise RecordingError(parser.where, f"not valid JSON ({exc.msg}); the file is corrupt") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
            raise RecordingError(parser.where, "expected an object with a 'type' field")
        kind = obj["type"]
        if meta is None:
            if kind != "header":
                raise RecordingError(parser.where, f"first line must be the header, got a '{kind}' line")
            schema = obj.get("schema")
            if schema not in SUPPORTED_SCHEMAS:
                known = list(SUPPORTED_SCHEMAS)
                raise RecordingError(parser.where, f"unsupported schema {schema!r}; this reader knows {known}")
            meta = parser.meta(obj)
        elif ended:
            raise RecordingError(parser.where, "data after the 'end' line; the file is corrupt")
        elif kind == "step":
            steps.append(parser.step(obj, frame_loader))
        elif kind == "chunk":
            chunks.append(parser.chunk(obj))
        elif kind == "end":
            ended = True
        elif kind != "event":
            raise RecordingError(parser.where, f"unknown line type '{kind}'")
    if meta is None:
        raise RecordingError(str(path), "no header line")
    episode = Episode(path, "jsonl", 0, meta, steps, chunks, complete=ended)
    if lossy_files:
        kinds = ", ".join(sorted(lossy_files))
        episode.lossy_images.append(
            f"JSONL images are stored compressed ({kinds}; record.image_encoding: lossless stores PNG), "
            "not as the policy saw them"
        )
    if not ended:
        what = "ends in a half-written line" if truncated_line else "has no 'end' line"
        truncated(episode, f"it {what}", allow_partial)
    note_gaps(steps, episode.notes)
    return episode


def truncated(episode: Episode, what: str, allow_partial: bool) -> None:
    """A recording whose session or recorder died: an error, or a note with ``--partial``."""
    last_step = episode.steps[-1].step if episode.steps else None
    message = f"recording is truncated: {what} (the session or its recorder died); last complete step: {last_step}"
    if not allow_partial:
        raise RecordingError(str(episode.source), message + ". Pass --partial to replay the complete part")
    episode.complete = False
    episode.notes.append(message)
