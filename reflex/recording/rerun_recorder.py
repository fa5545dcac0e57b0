"""``rerun`` recorder: one ``session.rrd`` for the Rerun viewer.

Timelines: ``step`` (the control step) and ``capture_time`` (wall clock derived from each
sensor's own monotonic capture time: an image sits at the instant it was taken, the state at the
instant it was read). Entities:

* ``camera/<name>``: ``EncodedImage`` (JPEG, or PNG when lossless; shared with the MCAP recorder);
* ``robot/state``: ``Scalars`` named by ``SeriesLines`` (one series per joint);
* ``action/applied`` and ``action/not_applied``: the action sent, or computed but not sent;
* ``policy/chunk``: each adopted chunk as a ``Tensor`` (horizon x joint), plus its numbers
  in ``policy/chunk_info``; ``policy/chunk_age_s``: the age of the chunk in use each step;
* ``reflex/step``: exact per-step values (monotonic times, frame numbers, applied, chunk id);
* ``events``: ``TextLog`` (safe stops, stale/fresh, guard clamps, session end);
* static: ``session`` (config hash, model hash, seed, version, ...), ``session/config``, ``task``.

Memory (docs/performance.md, "Long sessions"): for the footer (the chunk index readers use for
random access) Rerun keeps an entry per chunk until the file is closed, a row as wide as every
(timeline, component) pair of the recording; with Rerun's default batching (a chunk per entity
every 200 ms) that grew a session by ~15 MiB a minute, so this recorder batches for
:data:`FLUSH_EVERY_S` seconds (about 8 chunks per flush, 9,600 an hour) and leaves out the
``log_time`` timeline. Rerun's native allocator (mimalloc) kept the pages freed by every batch
instead of returning them, which was most of a session's growth: the recorder sets its purge
delay to 0 before loading Rerun (:func:`reflex.memory.purge_freed_native_memory`).
The file sink is flushed as often; after ``kill -9`` the file lacks its footer but
every flushed chunk reads back (at most the last ~3 s are lost), and ``reflex recordings repair``
rewrites it with a footer.

Disk full: Rerun's file sink writes from its own thread and, once a write fails, never finishes a
flush again (``disconnect`` and the exit handler then wait forever). So this recorder stops
*before* the disk is full: when free space drops under a reserve (several seconds of its own
output) it fails with ENOSPC while the footer still fits, and the session goes on or safe-stops
per ``record.on_error``. Should the sink get stuck anyway, the recorder abandons it (no blocking
close, no exit handler) instead of hanging the runner.
"""

from __future__ import annotations

import errno
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from reflex.ports import ActionChunk, SessionEvent, SessionMeta, StepRecord
from reflex.recording.clock import WallClock
from reflex.recording.formats import main_file
from reflex.recording.jpeg import encoded_images

FILE_NAME = main_file("rerun")
APPLICATION_ID = "reflex"
LEVELS = {"safe_stop": "ERROR", "safe_stop_failed": "CRITICAL", "stale": "WARN", "guard": "WARN"}
FLUSH_EVERY_S = 3.0  # one chunk per entity per flush: fewer chunks, less footer index in memory
BATCH_BYTES = 8 * 2**20  # image entities cut a chunk at this size between flushes
FLUSH_TIMEOUT_S = 5.0
CLOSE_TIMEOUT_S = 10.0
RESERVE_MIN_BYTES = 256 * 1024
RESERVE_FLUSHES = 4  # keep room for this many flush intervals of output (and the footer)
_ABANDONED: list[Any] = []  # stuck sinks: kept referenced so no destructor waits on them


def recording_id(session_id: str) -> str:
    """Rerun's catalog rewrites ids with dots; session ids have none, but be sure."""
    return session_id.replace(".", "_") or "reflex"


class RerunRecorder:
    name = "rerun"

    def __init__(self, directory: Path, images: bool = True, image_encoding: str = "lossy") -> None:
        self.directory = directory / "rerun"
        self.path = self.directory / FILE_NAME
        self.images = images
        self.image_encoding = image_encoding  # lossy: JPEG; lossless: PNG
        self._rec: Any = None
        self._rr: Any = None
        self._clock: WallClock | None = None
        self._cameras: set[str] = set()
        self.counts = {"steps": 0, "images": 0, "chunks": 0, "events": 0}
        self._last_size = 0
        self._reserve = RESERVE_MIN_BYTES
        self._stuck = False
        self._t_flush = time.monotonic()
        # seconds between flushes of the batcher (each cuts a chunk per entity); until then Rerun
        # holds the rows logged since the last one, so memory grows for up to this long, then drops
        self.flush_every_s = FLUSH_EVERY_S

    def open(self, meta: SessionMeta) -> None:
        from reflex.memory import purge_freed_native_memory

        purge_freed_native_memory()  # before rerun's native library loads (see its docstring)
        try:
            import rerun as rr
        except ImportError as exc:
            raise ImportError(f"recording format 'rerun' needs pip install 'reflex-runtime[rerun]' ({exc})") from exc

        self.directory.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            raise FileExistsError(f"{self.path}: already holds a recording")
        self._rr = rr
        self._check_space()
        self._clock = WallClock(meta)
        self._cameras = set(meta.camera_names) if self.images else set()
        batching = rr.ChunkBatcherConfig(
            flush_tick=FLUSH_EVERY_S, flush_num_bytes=BATCH_BYTES, flush_num_rows=2**31
        )
        rec = rr.RecordingStream(
            APPLICATION_ID, recording_id=recording_id(meta.session_id), batcher_config=batching
        )
        # ``log_time`` (when the writer thread called ``log``, not when anything happened: the
        # ``capture_time`` timeline has that) would be a third timeline in every chunk's footer entry
        rec.set_log_time_enabled(False)
        rec.save(self.path)
        self._rec = rec
        rec.send_recording_name(meta.session_id)
        joints = list(meta.joint_names)
        for entity in ("robot/state", "action/applied", "action/not_applied"):
            rec.log(entity, rr.SeriesLines(names=joints), static=True)
        target = meta.target
        session: dict[str, Any] = {
            "session_id": meta.session_id,
            "mode": meta.mode,
            "task": meta.task,
            "config_path": meta.config_path,
            "config_hash": meta.config_hash,
            "model_hash": "" if target is None or target.model_hash is None else target.model_hash,
            "seed": -1 if target is None or target.seed is None else int(target.seed),
            "target_kind": "" if target is None else target.kind,
            "software_version": meta.software_version,
            "control_rate_hz": float(meta.control_rate_hz),
            "joint_names": json.dumps(joints),
            "camera_names": json.dumps(list(meta.camera_names)),
            "t_start_wall": float(meta.t_start_wall),
            "t_start_mono": float(meta.t_start_mono),
        }
        rec.log("session", rr.AnyValues(**session), static=True)
        rec.send_property("session", rr.AnyValues(**session))
        rec.log("session/config", rr.TextDocument(json.dumps(meta.config_resolved, indent=2, default=str)),
                static=True)
        rec.log("task", rr.TextDocument(meta.task), static=True)

    def write_step(self, rec_: StepRecord) -> None:
        rr, rec = self._rr, self._rec
        assert rec is not None and self._clock is not None, "recorder not open"
        ns = self._clock.ns
        rec.set_time("step", sequence=rec_.step)
        frames = {cam: f for cam, f in rec_.frames.items() if cam in self._cameras}
        for cam, (data, fmt) in encoded_images(frames, self.image_encoding).items():
            rec.set_time("capture_time", timestamp=np.datetime64(ns(frames[cam].t_capture), "ns"))
            rec.log(f"camera/{cam}", rr.EncodedImage(contents=data, media_type=f"image/{fmt}"))
            self.counts["images"] += 1
        rec.set_time("capture_time", timestamp=np.datetime64(ns(rec_.state.t_capture), "ns"))
        rec.log("robot/state", rr.Scalars(np.asarray(rec_.state.position, dtype=np.float64)))
        rec.set_time("capture_time", timestamp=np.datetime64(ns(rec_.t_tick), "ns"))
        if rec_.action is not None:
            entity = "action/applied" if rec_.applied else "action/not_applied"
            rec.log(entity, rr.Scalars(np.asarray(rec_.action, dtype=np.float64)))
        if rec_.chunk_age_s is not None:
            rec.log("policy/chunk_age_s", rr.Scalars(float(rec_.chunk_age_s)))
        names = sorted(rec_.frames)
        rec.log("reflex/step", rr.AnyValues(
            t_tick=float(rec_.t_tick),
            t_state=float(rec_.state.t_capture),
            applied=bool(rec_.applied),
            has_action=rec_.action is not None,
            chunk_id=-1 if rec_.chunk_id is None else int(rec_.chunk_id),
            chunk_index=float("nan") if rec_.chunk_index is None else float(rec_.chunk_index),
            chunk_age_s=float("nan") if rec_.chunk_age_s is None else float(rec_.chunk_age_s),
            frame_cameras=names,
            frame_seq=np.array([rec_.frames[n].seq for n in names], dtype=np.int64),
            frame_t_capture=np.array([rec_.frames[n].t_capture for n in names], dtype=np.float64),
            task=rec_.task,
        ))
        self.counts["steps"] += 1
        for event in rec_.guard_events:
            rec.log("events", rr.TextLog(f"guard {event.kind}: {', '.join(event.joints)} {event.detail}".strip(),
                                         level=LEVELS["guard"]))

    def write_chunk(self, chunk: ActionChunk) -> None:
        rr, rec = self._rr, self._rec
        assert rec is not None and self._clock is not None, "recorder not open"
        rec.set_time("step", sequence=chunk.obs_step)
        rec.set_time("capture_time", timestamp=np.datetime64(self._clock.ns(chunk.t_origin), "ns"))
        actions = np.asarray(chunk.actions, dtype=np.float64)
        rec.log("policy/chunk", rr.Tensor(actions, dim_names=["horizon", "joint"]))
        rec.log("policy/chunk_info", rr.AnyValues(
            chunk_id=int(chunk.chunk_id), obs_step=int(chunk.obs_step), t_origin=float(chunk.t_origin),
            dt=float(chunk.dt), t_requested=float(chunk.t_requested), t_received=float(chunk.t_received),
            horizon=int(actions.shape[0]), actions=actions.ravel(),
        ))
        self.counts["chunks"] += 1

    def write_event(self, event: SessionEvent) -> None:
        rr, rec = self._rr, self._rec
        assert rec is not None and self._clock is not None, "recorder not open"
        rec.set_time("step", sequence=event.step)
        rec.set_time("capture_time", timestamp=np.datetime64(self._clock.ns(event.t), "ns"))
        rec.log("events", rr.TextLog(f"{event.kind}: {event.message}", level=LEVELS.get(event.kind, "INFO")))
        self.counts["events"] += 1

    def flush(self) -> None:
        if self._rec is None:
            return
        now = time.monotonic()
        if now - self._t_flush < self.flush_every_s:
            self._check_space()  # cheap; the write itself waits for the batch
            return
        self._t_flush = now
        try:
            self._rec.flush(timeout_sec=FLUSH_TIMEOUT_S)
        except RuntimeError as exc:
            self._stuck = True
            raise self._sink_error(exc) from exc
        size = self.path.stat().st_size if self.path.exists() else 0
        self._reserve = max(RESERVE_MIN_BYTES, RESERVE_FLUSHES * (size - self._last_size))
        self._last_size = size
        self._check_space()

    def _sink_error(self, exc: Exception) -> OSError:
        free = shutil.disk_usage(self.directory).free
        code = errno.ENOSPC if free < self._reserve else errno.EIO
        return OSError(code, f"{self.path}: Rerun's file sink stopped writing ({exc}; {free // 1024} KiB free)")

    def _check_space(self) -> None:
        free = shutil.disk_usage(self.directory).free
        if free < self._reserve:
            raise OSError(
                errno.ENOSPC,
                f"{self.directory}: disk nearly full ({free // 1024} KiB free, rerun keeps "
                f"{self._reserve // 1024} KiB in reserve so its file can still be closed)",
            )

    def summary(self) -> dict[str, Any]:
        return {"logged": dict(self.counts)}

    def close(self) -> None:
        if self._rec is None:
            return
        rec, self._rec = self._rec, None
        if self._stuck:
            self._abandon(rec)
            raise OSError(errno.EIO, f"{self.path}: abandoned a stuck Rerun sink (the file has no footer)")
        try:
            rec.flush(timeout_sec=CLOSE_TIMEOUT_S)
        except RuntimeError as exc:
            self._abandon(rec)
            raise self._sink_error(exc) from exc
        rec.disconnect()

    def _abandon(self, rec: Any) -> None:
        """Never touch a stuck sink again: its destructor and Rerun's exit handler would both wait
        for it forever, so the stream is kept alive (one leaked reference) and the handler removed."""
        import ctypes

        _ABANDONED.append(rec)
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(rec))
        self._rr.unregister_shutdown()


def rrd_is_complete(path: Path) -> bool:
    """True when the file has its footer (written by ``disconnect``)."""
    import warnings

    import rerun as rr

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rr.chunk.RrdReader(path).store()
        return True
    except Exception:
        return False


def rerun_cli() -> list[str]:
    """The ``rerun`` CLI of the installed rerun-sdk (same version as the writer)."""
    import importlib.util
    import sys

    spec = importlib.util.find_spec("rerun_cli")
    if spec is not None and spec.origin:
        exe = Path(spec.origin).parent / "rerun"
        if exe.exists():
            return [str(exe)]
    return [sys.executable, "-m", "rerun_cli"]


def repair_rrd(path: Path) -> dict[str, Any]:
    """Re-save a ``.rrd`` cut short by a crash or a full disk: every complete chunk, plus a footer.

    ``rerun rrd merge --continue-on-error`` reads up to the torn message and writes a clean file
    (the same recording id and application id)."""
    import os
    import subprocess

    if rrd_is_complete(path):
        return {"status": "complete", "repaired": False}
    tmp = path.with_name(path.name + ".repair")
    done = subprocess.run(
        [*rerun_cli(), "rrd", "merge", "--continue-on-error", str(path), "-o", str(tmp)],
        capture_output=True, text=True, timeout=3600,
    )
    if done.returncode != 0 or not tmp.exists() or not rrd_is_complete(tmp):
        tmp.unlink(missing_ok=True)
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"rerun rrd merge could not rewrite {path}: {tail[0]}")
    os.replace(tmp, path)
    return {"status": "repaired", "repaired": True}
