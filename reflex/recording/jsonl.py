"""``jsonl`` recorder: one JSON object per line, camera images as files beside it.

Layout of ``<recording>/jsonl/``::

    steps.jsonl             header line, then step / chunk / event lines, an ``end`` line last
    images/<camera>/<seq>.jpg   (record.image_encoding: lossy, the default)
    images/<camera>/<seq>.png   (record.image_encoding: lossless)

JPEG costs about 1 ms per 640x480 frame and is encoded once per frame for JSONL, MCAP and Rerun
together; PNG is exact (a replay feeds the policy the very pixels it saw) but costs 4-35 ms per
640x480 frame, too much for several cameras at 30 Hz on a small computer. Lines are flushed to
disk at least once a second; a file without an ``end`` line is from a session that died.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from reflex.ports import ActionChunk, SessionEvent, SessionMeta, StepRecord
from reflex.recording.formats import main_file
from reflex.recording.jpeg import encoded_images
from reflex.recording.serialize import chunk_dict, event_dict, meta_dict, step_dict

SCHEMA = "reflex.jsonl/1"


class JsonlRecorder:
    name = "jsonl"

    def __init__(self, directory: Path, images: bool = True, image_encoding: str = "lossy") -> None:
        self.directory = directory / "jsonl"
        self.images = images
        self.image_encoding = image_encoding
        self._made: set[str] = set()  # image directories created so far
        self._fh: IO[str] | None = None
        self._counts = {"step": 0, "chunk": 0, "event": 0, "image": 0}

    def open(self, meta: SessionMeta) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fh = (self.directory / main_file("jsonl")).open("w", encoding="utf-8")
        self._line({"type": "header", "schema": SCHEMA, **meta_dict(meta)})
        self.flush()

    def write_step(self, rec: StepRecord) -> None:
        paths: dict[str, str] = {}
        if self.images:
            for name, (data, fmt) in encoded_images(rec.frames, self.image_encoding).items():
                frame = rec.frames[name]
                rel = f"images/{name}/{frame.seq:08d}.{'png' if fmt == 'png' else 'jpg'}"
                if name not in self._made:
                    (self.directory / "images" / name).mkdir(parents=True, exist_ok=True)
                    self._made.add(name)
                (self.directory / rel).write_bytes(data)
                paths[name] = rel
                self._counts["image"] += 1
        self._line(step_dict(rec, paths))
        self._counts["step"] += 1

    def write_chunk(self, chunk: ActionChunk) -> None:
        self._line(chunk_dict(chunk))
        self._counts["chunk"] += 1

    def write_event(self, event: SessionEvent) -> None:
        self._line(event_dict(event))
        self._counts["event"] += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is None:
            return
        self._line({"type": "end", "counts": dict(self._counts)})
        self.flush()
        self._fh.close()
        self._fh = None

    def _line(self, obj: dict[str, Any]) -> None:
        assert self._fh is not None, "recorder not open"
        self._fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
