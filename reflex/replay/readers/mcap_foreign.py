"""An MCAP from another stack: Foxglove ``JointStates`` plus ``CompressedImage``/``RawImage`` topics.

No Reflex attachment, so no chunks: every message of the state topic is a step (its positions,
in the order of its ``joints``), the demonstrated action of a step is the action-topic message
nearest in time, and a camera's frame at a step is its newest image logged at or before the step
(half a period of slack: a camera logged in the same tick just after the state still counts).
All times are MCAP ``log_time``. Images are fetched lazily through the file's index, a window at
a time, so a long log never sits in memory.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reflex.replay.episode import Episode, EpisodeMeta, RecordedFrame, RecordedStep, RecordingError
from reflex.replay.mapping import DatasetMapping
from reflex.replay.readers.records import decode_image

JOINT_STATES = "foxglove.JointStates"
IMAGE_SCHEMAS = ("foxglove.CompressedImage", "foxglove.RawImage")
PREFETCH_NS = 2_000_000_000
CAMERA_NOISE = {"camera", "cameras", "image", "images", "image_raw", "compressed"}
MAX_JOINTS = 4096
MAX_MESSAGES = 2_000_000  # JointStates + image messages kept in the index (hours at 100 Hz)


def read_foreign_mcap(path: Path, mapping: DatasetMapping | None) -> Episode:
    return _ForeignMcap(path, mapping or DatasetMapping()).episode()


def camera_name(topic: str) -> str:
    """``/camera/top/image`` -> ``top``; other topics keep their words joined by ``_``."""
    parts = [p for p in topic.split("/") if p and p not in CAMERA_NOISE]
    return "_".join(parts) or topic.strip("/") or topic


class _ForeignMcap:
    def __init__(self, path: Path, mapping: DatasetMapping) -> None:
        self.path = path
        self.mapping = mapping
        self.topics: dict[str, str] = {}  # topic -> schema name
        self.vectors: dict[str, list[tuple[int, list[str], list[float]]]] = {}
        self.images: dict[str, list[int]] = {}  # image topic -> log times
        self._fetcher = _ImageFetcher(path)

    def _scan(self) -> None:
        from foxglove_schemas_protobuf.JointStates_pb2 import JointStates
        from google.protobuf.message import DecodeError
        from mcap.exceptions import McapError
        from mcap.records import Channel, Message, Schema
        from mcap.stream_reader import StreamReader

        schemas: dict[int, str] = {}
        channels: dict[int, str] = {}
        count = 0
        try:
            with self.path.open("rb") as fh:
                for record in StreamReader(fh).records:
                    if isinstance(record, Schema):
                        schemas[record.id] = record.name
                    elif isinstance(record, Channel):
                        channels[record.id] = record.topic
                        self.topics[record.topic] = schemas.get(record.schema_id, "")
                    elif isinstance(record, Message):
                        topic = channels.get(record.channel_id, "")
                        schema = self.topics.get(topic, "")
                        if schema == JOINT_STATES or schema in IMAGE_SCHEMAS:
                            count += 1
                            if count > MAX_MESSAGES:
                                raise RecordingError(str(self.path), f"more than {MAX_MESSAGES} joint and image "
                                                     "messages: split the log (mcap filter) and evaluate the parts")
                        if schema == JOINT_STATES:
                            msg = JointStates()
                            msg.ParseFromString(record.data)
                            if len(msg.joints) > MAX_JOINTS:
                                raise RecordingError(f"{self.path}: {topic}", f"more than {MAX_JOINTS} joints")
                            self.vectors.setdefault(topic, []).append(
                                (record.log_time, [j.name for j in msg.joints], [j.position for j in msg.joints])
                            )
                        elif schema in IMAGE_SCHEMAS:
                            self.images.setdefault(topic, []).append(record.log_time)
        except (McapError, DecodeError, EOFError, ValueError, OSError) as exc:
            raise RecordingError(str(self.path), f"not a readable MCAP ({type(exc).__name__}: {exc})") from None

    def _pick(self, chosen: str | None, words: tuple[str, ...], what: str, exclude: str | None) -> str | None:
        candidates = [t for t in self.topics if self.topics[t] == JOINT_STATES and t != exclude]
        if chosen is not None:
            if self.topics.get(chosen) != JOINT_STATES:
                raise RecordingError(str(self.path), f"--map {what}={chosen}: not a {JOINT_STATES} topic "
                                     f"(JointStates topics: {sorted(candidates)})")
            return chosen
        named = [t for t in candidates if any(w in t.lower() for w in words)]
        if what == "state":
            named = [t for t in (named or candidates) if not any(w in t.lower() for w in ("action", "command"))]
        if len(named) == 1:
            return named[0]
        if what == "action" and not named:
            return None
        raise RecordingError(str(self.path), f"which {JOINT_STATES} topic holds the {what}? found {sorted(candidates)}"
                             f"; map one with --map {what}=TOPIC")

    def episode(self) -> Episode:
        self._scan()
        state_topic = self._pick(self.mapping.state, ("state",), "state", None)
        assert state_topic is not None
        action_topic = self._pick(self.mapping.action, ("action", "command"), "action", state_topic)
        states = sorted(self.vectors.get(state_topic, []), key=lambda m: m[0])
        if not states:
            raise RecordingError(f"{self.path}: {state_topic}", "no messages")
        names = tuple(self.mapping.joint_names or states[0][1] or [f"joint{i}" for i in range(len(states[0][2]))])
        dim = len(names)
        bad = [i for i, m in enumerate(states) if len(m[2]) != dim]
        if bad:
            raise RecordingError(f"{self.path}: {state_topic} message {bad[0]}",
                                 f"{len(states[bad[0]][2])} joints, expected {dim}")
        t = np.array([m[0] for m in states], dtype=np.int64)
        fps = self.mapping.fps or (1e9 / float(np.median(np.diff(t))) if len(t) > 1 else 30.0)
        half_ns = int(0.5e9 / fps)
        actions = self._actions(action_topic, t, dim) if action_topic else None
        cameras = self._cameras()
        picked = {name: np.searchsorted(self.images[topic], t + half_ns, side="right") - 1
                  for name, topic in cameras.items()}
        steps = []
        last = dict.fromkeys(cameras, -1)
        for k, (log_time, _names, position) in enumerate(states):
            frames = {}
            for name, topic in cameras.items():
                index = int(picked[name][k])
                if index >= 0 and index != last[name]:
                    last[name] = index
                    image_time = self.images[topic][index]
                    frames[name] = RecordedFrame(name, index, image_time * 1e-9, k,
                                                 self._fetcher.loader(topic, image_time, f"{self.path}: {topic}"))
            seconds = log_time * 1e-9
            action = None if actions is None else actions[k]
            steps.append(RecordedStep(k, seconds, np.asarray(position, dtype=np.float64), seconds, action, False,
                                      None, None, self.mapping.task or "", frames))
        meta = EpisodeMeta(session_id=self.path.stem, joint_names=names, camera_names=tuple(cameras),
                           task=self.mapping.task or "", control_rate_hz=float(fps))
        episode = Episode(self.path, "mcap", 0, meta, steps, [])
        compressed = [topic for topic in cameras.values() if self.topics[topic] == "foxglove.CompressedImage"]
        if compressed:
            episode.lossy_images.append(f"MCAP images are stored compressed ({', '.join(compressed)})")
        episode.demonstration = actions
        episode.foreign = True
        return episode

    def _actions(self, topic: str, t: np.ndarray, dim: int) -> np.ndarray:
        messages = sorted(self.vectors.get(topic, []), key=lambda m: m[0])
        if not messages:
            raise RecordingError(f"{self.path}: {topic}", "no messages")
        times = np.array([m[0] for m in messages], dtype=np.int64)
        values = [m[2] for m in messages]
        if any(len(v) != dim for v in values):
            raise RecordingError(f"{self.path}: {topic}", f"action messages must have {dim} joints like the state")
        array = np.asarray(values, dtype=np.float64)
        right = np.clip(np.searchsorted(times, t), 0, len(times) - 1)
        left = np.clip(right - 1, 0, len(times) - 1)
        nearest = np.where(np.abs(times[left] - t) <= np.abs(times[right] - t), left, right)
        return np.asarray(array[nearest])

    def _cameras(self) -> dict[str, str]:
        if self.mapping.cameras is not None:
            for name, topic in self.mapping.cameras.items():
                if self.topics.get(topic) not in IMAGE_SCHEMAS:
                    raise RecordingError(str(self.path), f"camera '{name}': '{topic}' is not an image topic "
                                         f"(image topics: {sorted(self.images)})")
                self.images.setdefault(topic, [])
            return dict(self.mapping.cameras)
        return {camera_name(topic): topic for topic in sorted(self.images)}


class _ImageFetcher:
    """Images by (topic, log_time) through the file's index, reading ahead a window at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader: Any = None
        self._ahead: dict[tuple[str, int], tuple[str, bytes]] = {}

    def loader(self, topic: str, log_time: int, where: str) -> Callable[[], np.ndarray]:
        return lambda: self._load(topic, log_time, where)

    def _load(self, topic: str, log_time: int, where: str) -> np.ndarray:
        key = (topic, log_time)
        if key not in self._ahead:
            self._read_window(topic, log_time)
        found = self._ahead.get(key)
        if found is None:
            raise RecordingError(where, f"no image message at log time {log_time}")
        return _decode(found[0], found[1], f"{where} @ {log_time}")

    def _read_window(self, topic: str, log_time: int) -> None:
        reader = self._open()
        params = inspect.signature(reader.iter_messages).parameters
        end = log_time + PREFETCH_NS
        # mcap >= 1.3 renamed the window arguments; older versions only know start/end_time
        window: dict[str, Any] = (
            {"starting_at": log_time, "ending_before": end} if "starting_at" in params
            else {"start_time": log_time, "end_time": end}
        )
        self._ahead = {k: v for k, v in self._ahead.items() if k[0] != topic}
        for schema, _channel, message in reader.iter_messages(topics=[topic], **window):
            self._ahead[(topic, message.log_time)] = (schema.name if schema else "", bytes(message.data))

    def _open(self) -> Any:
        if self._reader is None:
            from mcap.reader import make_reader

            fh = self.path.open("rb")
            weakref.finalize(self, fh.close)
            self._reader = make_reader(fh)
        return self._reader


def _decode(schema: str, payload: bytes, where: str) -> np.ndarray:
    from google.protobuf.message import DecodeError

    try:
        if schema == "foxglove.RawImage":
            from foxglove_schemas_protobuf.RawImage_pb2 import RawImage

            raw = RawImage()
            raw.ParseFromString(payload)
            return _raw_to_rgb(raw, where)
        from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage

        msg = CompressedImage()
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise RecordingError(where, f"image message is corrupt: {exc}") from None
    return decode_image(msg.data, where)


RAW_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8UC1": 1, "8UC3": 3}


def _raw_to_rgb(raw: Any, where: str) -> np.ndarray:
    channels = RAW_CHANNELS.get(raw.encoding)
    if channels is None:
        raise RecordingError(where, f"RawImage encoding '{raw.encoding}' not supported (have {sorted(RAW_CHANNELS)})")
    h, w = int(raw.height), int(raw.width)
    step = int(raw.step) or w * channels
    if step < w * channels or len(raw.data) < step * h:
        raise RecordingError(where, f"RawImage {w}x{h} {raw.encoding}: step {step}, {len(raw.data)} bytes")
    rows = np.frombuffer(raw.data, dtype=np.uint8, count=step * h).reshape(h, step)[:, : w * channels]
    pixels: np.ndarray = rows.reshape(h, w, channels)
    if channels == 1:
        return np.repeat(pixels, 3, axis=2)
    if raw.encoding.startswith("bgr"):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])
