"""``mcap`` recorder: one ``session.mcap`` that opens in Foxglove as it is.

Channels (Foxglove's own protobuf schemas where one exists, jsonschema JSON otherwise):

* ``/camera/<name>/image`` ``foxglove.CompressedImage`` (JPEG; PNG when lossless), stamped with the capture time,
  ``sequence`` = the camera's frame number;
* ``/robot/joint_states`` ``foxglove.JointStates``: the state the step used, at its capture time;
* ``/action/applied`` ``foxglove.JointStates``: actions actually sent to the robot, and
  ``/action/not_applied``: actions computed but not sent (dry_run): never mixed up;
* ``/policy/chunk`` ``reflex.ActionChunk`` (JSON): every adopted chunk in full;
* ``/reflex/step`` ``reflex.Step`` (JSON): everything about a step, with monotonic times;
* ``/reflex/event`` ``reflex.Event`` (JSON) and ``/reflex/log`` ``foxglove.Log``: safe stops,
  stale/fresh, enable, session end (the Log panel shows them);
* a ``reflex.session`` metadata record (config hash, model hash, seed, version, ...) and the
  resolved config as the ``config.resolved.json`` attachment.

Log times are wall-clock nanoseconds derived from the monotonic capture times. Chunks are LZ4
compressed and cut at least once a second (``flush``), so a ``kill -9`` loses at most that
second; ``reflex recordings repair`` rewrites such a file with its index and summary.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from reflex import __version__
from reflex.ports import ActionChunk, SessionEvent, SessionMeta, StepRecord
from reflex.recording import mcap_schemas
from reflex.recording.clock import WallClock
from reflex.recording.formats import main_file
from reflex.recording.jpeg import encoded_images
from reflex.recording.serialize import chunk_dict, event_dict, meta_dict, step_dict

FILE_NAME = main_file("mcap")
CHUNK_SIZE = 1024 * 1024
LOG_LEVELS = {"safe_stop": 4, "safe_stop_failed": 5, "stale": 3, "record_failed": 4}  # foxglove.Log.Level


def dumps(obj: Any) -> bytes:
    """Strict JSON (no NaN tokens, which JSON readers reject): non-finite floats become null."""
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:
        return json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False).encode()


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


class McapRecorder:
    name = "mcap"

    def __init__(self, directory: Path, images: bool = True, image_encoding: str = "lossy") -> None:
        self.directory = directory / "mcap"
        self.path = self.directory / FILE_NAME
        self.images = images
        self.image_encoding = image_encoding  # lossy: JPEG; lossless: PNG
        self.counts: dict[str, int] = {}
        self._fh: IO[bytes] | None = None
        self._writer: Any = None
        self._clock: WallClock | None = None
        self._channels: dict[str, int] = {}
        self._joints: list[str] = []
        self._pb: Any = None

    def open(self, meta: SessionMeta) -> None:
        try:
            from foxglove_schemas_protobuf import CompressedImage_pb2, JointStates_pb2, Log_pb2
            from mcap.writer import CompressionType, Writer
            from mcap_protobuf.schema import register_schema
        except ImportError as exc:
            raise ImportError(f"recording format 'mcap' needs pip install 'reflex-runtime[mcap]' ({exc})") from exc

        self.directory.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: already holds a recording")
        self._fh = self.path.open("wb")
        w = Writer(self._fh, chunk_size=CHUNK_SIZE, compression=CompressionType.LZ4)
        w.start(profile="", library=f"reflex {__version__}")
        self._writer = w
        self._clock = WallClock(meta)
        self._joints = list(meta.joint_names)
        self._pb = (CompressedImage_pb2.CompressedImage, JointStates_pb2.JointStates, Log_pb2.Log)
        image_schema = register_schema(w, CompressedImage_pb2.CompressedImage)
        joints_schema = register_schema(w, JointStates_pb2.JointStates)
        log_schema = register_schema(w, Log_pb2.Log)

        def channel(topic: str, schema_id: int, encoding: str) -> None:
            self._channels[topic] = w.register_channel(topic, encoding, schema_id)
            self.counts[topic] = 0

        if self.images:
            for cam in meta.camera_names:
                channel(f"/camera/{cam}/image", image_schema, "protobuf")
        channel("/robot/joint_states", joints_schema, "protobuf")
        channel("/action/applied", joints_schema, "protobuf")
        channel("/action/not_applied", joints_schema, "protobuf")
        channel("/reflex/log", log_schema, "protobuf")
        for topic, schema in (("/reflex/step", mcap_schemas.STEP), ("/policy/chunk", mcap_schemas.CHUNK),
                              ("/reflex/event", mcap_schemas.EVENT)):
            sid = w.register_schema(schema["title"], "jsonschema", mcap_schemas.encoded(schema))
            channel(topic, sid, "json")

        target = meta.target
        w.add_metadata("reflex.session", {
            "session_id": meta.session_id,
            "mode": meta.mode,
            "task": meta.task,
            "config_path": meta.config_path,
            "config_hash": meta.config_hash,
            "model_hash": "" if target is None or target.model_hash is None else target.model_hash,
            "seed": "" if target is None or target.seed is None else str(target.seed),
            "target_kind": "" if target is None else target.kind,
            "software_version": meta.software_version,
            "control_rate_hz": repr(meta.control_rate_hz),
            "joint_names": json.dumps(list(meta.joint_names)),
            "camera_names": json.dumps(list(meta.camera_names)),
            "t_start_wall": repr(meta.t_start_wall),
            "t_start_mono": repr(meta.t_start_mono),
        })
        t0 = self._clock.ns(meta.t_start_mono)
        w.add_attachment(t0, t0, "config.resolved.json", "application/json",
                         dumps(meta.config_resolved))
        w.add_attachment(t0, t0, "session_meta.json", "application/json", dumps(meta_dict(meta)))
        self.flush()

    def write_step(self, rec: StepRecord) -> None:
        assert self._clock is not None, "recorder not open"
        ns = self._clock.ns
        image_cls, joints_cls, _ = self._pb
        if self.images:
            frames = {cam: f for cam, f in rec.frames.items() if f"/camera/{cam}/image" in self._channels}
            for cam, (data, fmt) in encoded_images(frames, self.image_encoding).items():
                topic = f"/camera/{cam}/image"
                frame = frames[cam]
                t = ns(frame.t_capture)
                msg = image_cls(frame_id=cam, data=data, format=fmt)
                msg.timestamp.FromNanoseconds(t)
                self._add(topic, t, msg.SerializeToString(), sequence=frame.seq)
        t_state = ns(rec.state.t_capture)
        self._add("/robot/joint_states", t_state,
                  self._joint_states(joints_cls, t_state, rec.state.position, rec.state.velocity,
                                     rec.state.effort), sequence=rec.step)
        t_tick = ns(rec.t_tick)
        if rec.action is not None:
            topic = "/action/applied" if rec.applied else "/action/not_applied"
            self._add(topic, t_tick, self._joint_states(joints_cls, t_tick, rec.action), sequence=rec.step)
        self._add("/reflex/step", t_tick, dumps(step_dict(rec, {})), sequence=rec.step)

    def write_chunk(self, chunk: ActionChunk) -> None:
        assert self._clock is not None, "recorder not open"
        payload = chunk_dict(chunk)
        payload.pop("type", None)
        payload["names"] = self._joints
        payload["timing_ms"] = payload.pop("timing_ms", {})
        self._add("/policy/chunk", self._clock.ns(chunk.t_received), dumps(payload), sequence=chunk.chunk_id)

    def write_event(self, event: SessionEvent) -> None:
        assert self._clock is not None, "recorder not open"
        _, _, log_cls = self._pb
        t = self._clock.ns(event.t)
        payload = event_dict(event)
        payload.pop("type", None)
        self._add("/reflex/event", t, dumps(payload), sequence=event.step)
        log = log_cls(level=LOG_LEVELS.get(event.kind, 2), message=f"{event.kind}: {event.message}",
                      name="reflex", file="", line=0)
        log.timestamp.FromNanoseconds(t)
        self._add("/reflex/log", t, log.SerializeToString(), sequence=event.step)

    def flush(self) -> None:
        if self._writer is None or self._fh is None:
            return
        self._writer.flush()  # closes the open chunk: everything so far is on disk
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._writer is None or self._fh is None:
            return
        writer, self._writer = self._writer, None
        try:
            writer.finish()
            self._fh.flush()
            os.fsync(self._fh.fileno())
        finally:
            self._fh.close()
            self._fh = None

    def summary(self) -> dict[str, Any]:
        return {"messages": dict(self.counts)}

    # -- helpers -------------------------------------------------------------------------
    def _add(self, topic: str, t_ns: int, data: bytes, sequence: int) -> None:
        self._writer.add_message(self._channels[topic], log_time=t_ns, data=data, publish_time=t_ns,
                                 sequence=max(0, int(sequence)) & 0xFFFFFFFF)
        self.counts[topic] += 1

    def _joint_states(self, cls: Any, t_ns: int, position: Any, velocity: Any = None,
                      effort: Any = None) -> bytes:
        msg = cls()
        msg.timestamp.FromNanoseconds(t_ns)
        for i, name in enumerate(self._joints):
            joint = msg.joints.add(name=name, position=float(position[i]))
            if velocity is not None:
                joint.velocity = float(velocity[i])
            if effort is not None:
                joint.effort = float(effort[i])
        return bytes(msg.SerializeToString())
