"""Reader of the ``mcap`` recorder's ``session.mcap``.

Exact numbers come from the JSON channels (``/reflex/step``: state, times, frame numbers;
``/policy/chunk``: whole chunks with ``obs_step``); the session meta from the
``session_meta.json`` attachment. Images are ``foxglove.CompressedImage`` messages matched to
steps by camera and frame number (the message ``sequence``); they are read lazily through the
file's index, one frame at a time. JPEG is lossy, so observations are flagged as approximate.
"""

from __future__ import annotations

import inspect
import json
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from reflex.replay.episode import Episode, RecordedChunk, RecordedStep, RecordingError
from reflex.replay.mapping import DatasetMapping
from reflex.replay.readers.jsonl import truncated
from reflex.replay.readers.records import RecordParser, decode_image, locate_file, note_gaps

META_ATTACHMENT = "session_meta.json"
IMAGE_PREFIX = "/camera/"
IMAGE_SUFFIX = "/image"
SEQ_MASK = 0xFFFFFFFF
PREFETCH_NS = 2_000_000_000


class McapReader:
    name = "mcap"

    def locate(self, path: Path) -> Path | None:
        return locate_file(path, "mcap")

    def read(self, path: Path, allow_partial: bool, mapping: DatasetMapping | None = None) -> list[Episode]:
        try:
            import mcap  # noqa: F401
        except ImportError:
            hint = "reading MCAP needs the mcap extra: pip install 'reflex-runtime[mcap]'"
            raise RecordingError(str(path), hint) from None
        try:
            if _written_by_reflex(path) is False:
                raise _NotReflex(str(path), "no Reflex channels")
            return [_Parse(path).run(allow_partial)]
        except _NotReflex:
            from reflex.replay.readers.mcap_foreign import read_foreign_mcap

            return [read_foreign_mcap(path, mapping)]  # Foxglove topics from another stack: a demonstration


class _NotReflex(RecordingError):
    """An MCAP without Reflex's session attachment."""


def _written_by_reflex(path: Path) -> bool | None:
    """From the summary alone (no pass over the data): whether Reflex's step channel is there;
    None when the file has no readable summary (a truncated file: the full pass decides)."""
    from mcap.reader import make_reader

    try:
        with path.open("rb") as fh:
            summary = make_reader(fh).get_summary()
    except Exception:  # any parse failure: let the full pass report it precisely
        return None
    if summary is None:
        return None
    return any(channel.topic == "/reflex/step" for channel in summary.channels.values())


class _Images:
    """Where each (camera, frame number) image is, and how to fetch it later."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log_times: dict[tuple[str, int], int] = {}
        self.data: dict[tuple[str, int], bytes] = {}  # only for files without an index
        self.formats: dict[str, str] = {}
        self.indexed = False
        self._open: Any = None
        self._finalizer: Any = None
        self._ahead: dict[tuple[str, int], bytes] = {}

    def note(self, camera: str, sequence: int, log_time: int, payload: bytes, keep: bool) -> None:
        key = (camera, sequence & SEQ_MASK)
        self.log_times[key] = log_time
        if camera not in self.formats:
            self.formats[camera] = _image_message(payload).format or "?"
        if keep:
            self.data[key] = payload

    def loader(self, camera: str, seq: int, step: int) -> Callable[[], np.ndarray] | None:
        key = (camera, seq & SEQ_MASK)
        where = f"{self.path}: step {step}, camera '{camera}' frame {seq}"
        return lambda: self._load(key, where)

    def _load(self, key: tuple[str, int], where: str) -> np.ndarray:
        payload = self.data.get(key)
        if payload is None:
            payload = self._fetch(key, where)
        return decode_image(_image_message(payload).data, where)

    def _fetch(self, key: tuple[str, int], where: str) -> bytes:
        """Read ahead: every image of that camera in the next PREFETCH_NS, since a whole compressed
        MCAP chunk is decoded for any one message and replay asks for frames in time order."""
        log_time = self.log_times.get(key)
        if log_time is None or not self.indexed:
            raise RecordingError(where, "no image message for this frame in the recording")
        cached = self._ahead.pop(key, None)
        if cached is not None:
            return cached
        topic = f"{IMAGE_PREFIX}{key[0]}{IMAGE_SUFFIX}"
        reader = self._reader()
        params = inspect.signature(reader.iter_messages).parameters
        end = log_time + PREFETCH_NS
        # mcap >= 1.3 renamed the window arguments; older versions only know start/end_time
        window: dict[str, Any] = (
            {"starting_at": log_time, "ending_before": end}
            if "starting_at" in params
            else {"start_time": log_time, "end_time": end}
        )
        self._ahead.clear()
        for _, _, message in reader.iter_messages(topics=[topic], **window):
            self._ahead[(key[0], message.sequence)] = bytes(message.data)
        found = self._ahead.pop(key, None)
        if found is None:
            raise RecordingError(where, "image message vanished from the file")
        return found

    def _reader(self) -> Any:
        """One open indexed reader per recording (its summary is parsed once)."""
        if self._open is None:
            from mcap.reader import make_reader

            fh = self.path.open("rb")
            self._finalizer = weakref.finalize(self, fh.close)
            self._open = make_reader(fh)
        return self._open


def _image_message(payload: bytes) -> Any:
    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage

    msg = CompressedImage()
    msg.ParseFromString(payload)
    return msg


class _Parse:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.parser = RecordParser(0)
        self.images = _Images(path)

    def run(self, allow_partial: bool) -> Episode:
        from mcap.exceptions import McapError

        meta_obj: dict[str, Any] | None = None
        raw_steps: list[tuple[str, dict[str, Any]]] = []
        raw_chunks: list[tuple[str, dict[str, Any]]] = []
        footer = False
        count = 0
        try:
            for kind, record, topic in self._records(keep_images=allow_partial):
                count += 1
                if kind == "footer":
                    footer = True
                elif kind == "attachment" and record.name == META_ATTACHMENT:
                    meta_obj = self._json(record.data, f"attachment {META_ATTACHMENT}")
                elif kind == "message" and topic in ("/reflex/step", "/policy/chunk"):
                    into = raw_steps if topic == "/reflex/step" else raw_chunks
                    into.append((f"{self.path}: {topic} #{len(into)}", self._json(record.data, topic)))
        except McapError as exc:
            if count == 0:
                raise RecordingError(str(self.path), f"not an MCAP file ({exc})") from None
            cause = f"it breaks off after {count} records ({type(exc).__name__})"
        except (EOFError, ValueError, OSError) as exc:
            cause = f"it breaks off after {count} records ({type(exc).__name__}: {exc})"
        else:
            cause = "it has no footer"
        if meta_obj is None:
            raise _NotReflex(str(self.path), f"no {META_ATTACHMENT} attachment: not a Reflex MCAP recording")
        self.images.indexed = footer
        self.parser.where = f"{self.path}: {META_ATTACHMENT}"
        meta = self.parser.meta(meta_obj)
        steps: list[RecordedStep] = []
        for where, obj in raw_steps:
            self.parser.where = where
            steps.append(self.parser.step(obj, self._loader))
        chunks: list[RecordedChunk] = []
        for where, obj in raw_chunks:
            self.parser.where = where
            chunks.append(self.parser.chunk(obj))
        steps.sort(key=lambda s: s.step)
        episode = Episode(self.path, "mcap", 0, meta, steps, chunks)
        if not footer:
            truncated(episode, cause, allow_partial)
        lossy = sorted({f"{cam}: {fmt}" for cam, fmt in self.images.formats.items() if fmt.lower() != "png"})
        if lossy:
            kinds = ", ".join(lossy)
            episode.lossy_images.append(f"MCAP images are stored compressed ({kinds}), not as the policy saw them")
        note_gaps(steps, episode.notes)
        return episode

    def _loader(self, camera: str, seq: int, step: int, _path: object) -> Callable[[], np.ndarray] | None:
        if (camera, seq & SEQ_MASK) not in self.images.log_times:
            return None  # recorded with images off (or the frame never reached the file)
        return self.images.loader(camera, seq, step)

    def _records(self, keep_images: bool) -> Iterator[tuple[str, Any, str]]:
        """One linear pass over every record (works on files without a summary too)."""
        from mcap.records import Attachment, Channel, Footer, Message
        from mcap.stream_reader import StreamReader

        topics: dict[int, str] = {}
        with self.path.open("rb") as fh:
            for record in StreamReader(fh).records:
                if isinstance(record, Channel):
                    topics[record.id] = record.topic
                elif isinstance(record, Message):
                    topic = topics.get(record.channel_id, "")
                    if topic.startswith(IMAGE_PREFIX) and topic.endswith(IMAGE_SUFFIX):
                        camera = topic[len(IMAGE_PREFIX) : -len(IMAGE_SUFFIX)]
                        self.images.note(camera, record.sequence, record.log_time, bytes(record.data), keep_images)
                    yield "message", record, topic
                elif isinstance(record, Attachment):
                    yield "attachment", record, ""
                elif isinstance(record, Footer):
                    yield "footer", record, ""

    def _json(self, data: bytes, what: str) -> dict[str, Any]:
        try:
            obj = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordingError(f"{self.path}: {what}", f"not valid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise RecordingError(f"{self.path}: {what}", "expected a JSON object")
        return obj
