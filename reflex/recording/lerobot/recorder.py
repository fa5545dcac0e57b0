"""The ``lerobot`` recorder port: rows to the journal, frames to one encoder thread per camera.

Everything here runs on the hub's writer thread for this format (or the encoder threads): the
control loop only ever hands over a :class:`StepRecord`. ``close`` finishes the videos and
builds the dataset (see :mod:`finalize`); after a crash, ``reflex recordings repair`` does the
same from whatever reached the disk.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reflex.ports import ActionChunk, SessionEvent, SessionMeta, StepRecord
from reflex.recording.lerobot import layout as L
from reflex.recording.lerobot.layout import TASK_COLUMN
from reflex.recording.lerobot.png import PngFrames
from reflex.recording.lerobot.video import CameraEncoder
from reflex.recording.manifest import write_json_atomic
from reflex.recording.serialize import chunk_dict, event_dict, meta_dict

if TYPE_CHECKING:
    from reflex.recording.lerobot.finalize import FinalizeReport
    from reflex.recording.lerobot.journal import RowJournal

EXTRA_HINT = "pip install 'reflex-runtime[lerobot]'"


class LeRobotRecorder:
    name = "lerobot"

    def __init__(self, directory: Path, images: bool = True, image_encoding: str = "lossy") -> None:
        self.root = directory / "lerobot"
        self.images = images
        self.lossless = image_encoding == "lossless"  # PNG in the data parquet instead of H.264 video
        self.report: FinalizeReport | None = None
        self.finalize_s = 0.0
        self.rows = 0
        self.skipped_rows = 0  # steps before every camera had delivered a first frame
        self._meta: SessionMeta | None = None
        self._fps = 0
        self._cameras: list[str] = []
        self._joints: list[str] = []
        self._journal: RowJournal | None = None
        self._encoders: dict[str, CameraEncoder | PngFrames] = {}
        self._last: dict[str, Any] = {}  # camera -> last Frame seen
        self.episode_rows = 0  # rows per episode, from EPISODE_MAX_S and the fps (set by open)
        self._episode = 0
        self._episode_start = 0  # rows journaled before the current episode
        self._hists: dict[str, tuple[np.ndarray, int]] = {}  # "<camera>.<episode>" of finished episodes
        self._sidecars: dict[str, Any] = {}
        self._take: int | None = None  # episodes sessions: the take being recorded (StepRecord.episode)
        self._takes: dict[int, list[int]] = {}  # take -> its journal episodes
        self._discarded: list[int] = []  # journal episodes of re-recorded takes
        self.resume = False  # --resume: append to the recording in this directory
        self._expect_shapes: dict[str, list[int]] = {}  # appending: each camera's (height, width) in the dataset

    # -- Recorder port -------------------------------------------------------------------
    def open(self, meta: SessionMeta) -> None:
        try:
            import av  # noqa: F401
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise ImportError(f"recording format 'lerobot' needs pyarrow and av: {EXTRA_HINT} ({exc})") from exc
        from reflex.recording.lerobot.journal import RowJournal

        fps = meta.control_rate_hz
        if abs(fps - round(fps)) > 1e-9 or round(fps) < 1:
            raise ValueError(
                f"control_rate_hz: LeRobot datasets need a whole number of frames per second, got {fps}"
            )
        if not self.resume and self.root.exists() and any(self.root.iterdir()):
            raise FileExistsError(f"{self.root}: already holds a recording")
        self._meta = meta
        self._fps = round(fps)
        self.episode_rows = self.episode_rows or L.EPISODE_MAX_S * self._fps
        self._joints = list(meta.joint_names)
        self._cameras = list(meta.camera_names) if self.images else []
        features = L.vector_features(self._joints, self._cameras)
        keep = self._resume_rows(features) if self.resume else None
        (self.root / L.PARTIAL_DIR).mkdir(parents=True, exist_ok=True)
        (self.root / L.SIDECAR_DIR).mkdir(parents=True, exist_ok=True)
        target = meta.target
        if not self.resume:
            self._write_status(features, meta, target)
        binary = [L.image_key(c) for c in self._cameras] if self.lossless else []
        self._journal = RowJournal(self.root / L.JOURNAL_FILE, features, binary, keep=keep)
        self._start_encoders()
        for key, rel in (("events", L.EVENTS_FILE), ("chunks", L.CHUNKS_FILE)):
            self._sidecars[key] = _open_sidecar(self.root / rel, append=self.resume)

    def _write_status(self, features: dict[str, Any], meta: SessionMeta, target: Any) -> None:
        write_json_atomic(self.root / L.STATUS_FILE, {
            "schema": "reflex.lerobot/1",
            "status": "recording",
            "fps": self._fps,
            "robot_type": _robot_type(meta),
            "cameras": self._cameras,
            "joints": self._joints,
            "features": features,
            "image_cameras": self._cameras if self.lossless else [],  # PNG columns, no video
            "session": meta_dict(meta),
            "model_hash": None if target is None else target.model_hash,
            "seed": None if target is None else target.seed,
        })

    def _resume_rows(self, features: dict[str, Any]) -> Any:
        """--resume: the rows to start the journal from (None: a finished dataset appended to, whose
        rows stay where they are); journal episodes and takes go on after the recording's own."""
        from reflex.recording.lerobot.journal import read_journal
        from reflex.recording.lerobot.resume import ResumeRefused, mismatches, plan_resume

        plan = plan_resume(self.root)
        status = plan.status
        differ = mismatches(status, {"fps": self._fps, "joints": self._joints, "cameras": self._cameras,
                                     "features": features,
                                     "image_cameras": self._cameras if self.lossless else []})
        if differ:
            raise ResumeRefused(f"{self.root}: this session records differently ({'; '.join(differ)}): "
                                "resuming would mix two kinds of rows in one dataset")
        self._episode = plan.next_journal_episode
        if plan.base is not None:
            self._expect_shapes = {
                cam: list(plan.base["info"]["features"].get(L.image_key(cam), {}).get("shape", [])[:2])
                for cam in self._cameras
            }
        if plan.appending:  # nothing of the dataset is touched until the new episodes are finalized
            import shutil

            shutil.rmtree(self.root / L.PARTIAL_DIR, ignore_errors=True)  # left by a finished finalize
            write_json_atomic(self.root / L.STATUS_FILE, {**status, "status": "recording", "append_base": plan.base})
            return None
        table, _ = read_journal(self.root / L.JOURNAL_FILE)
        import pyarrow as pa
        import pyarrow.compute as pc

        if table is None:  # an append cut short before its journal had a row
            return None
        mask = pc.is_in(table.column(L.EPISODE_COLUMN), value_set=pa.array(plan.keep_journal_episodes, pa.int64()))
        table = table.filter(mask)
        write_json_atomic(self.root / L.DISCARDED_FILE, {"journal_episodes": []})
        self.rows = self._episode_start = table.num_rows
        self._load_image_stats()
        return table

    def write_step(self, rec: StepRecord) -> None:
        assert self._journal is not None, "recorder not open"
        for name, frame in rec.frames.items():
            if name in self._encoders:
                if name not in self._last and self._expect_shapes.get(name):
                    self._check_shape(name, frame.image)
                self._last[name] = frame
        if len(self._last) < len(self._cameras):
            self.skipped_rows += 1  # no image yet for some camera: a row would need a made-up frame
            return
        if rec.episode is not None and rec.episode != self._take:
            self._take = rec.episode  # a new episode of an episodes session: its own LeRobot episode
            if self.rows > self._episode_start:
                self._next_episode()
            else:
                self._note_take()
        if self.rows - self._episode_start >= self.episode_rows:
            self._next_episode()
        dim = len(self._joints)
        action = np.full(dim, np.nan) if rec.action is None else np.asarray(rec.action, dtype=np.float64)
        kinds = {e.kind for e in rec.guard_events}
        frames = [self._last[c] for c in self._cameras]
        pngs = {L.image_key(c): enc.encode(self._last[c].image)
                for c, enc in self._encoders.items() if isinstance(enc, PngFrames)}
        self._journal.append({
            **pngs,
            L.STATE_KEY: np.asarray(rec.state.position, dtype=np.float64),
            L.ACTION_KEY: action,
            "reflex.step": rec.step,
            "reflex.applied": bool(rec.applied),
            "reflex.t_tick": rec.t_tick,
            "reflex.t_state": rec.state.t_capture,
            "reflex.t_capture": np.array([f.t_capture for f in frames], dtype=np.float64),
            "reflex.frame_seq": np.array([f.seq for f in frames], dtype=np.int64),
            "reflex.frame_new": np.array([c in rec.frames for c in self._cameras], dtype=bool),
            "reflex.chunk_id": -1 if rec.chunk_id is None else rec.chunk_id,
            "reflex.chunk_index": math.nan if rec.chunk_index is None else rec.chunk_index,
            "reflex.chunk_age_s": math.nan if rec.chunk_age_s is None else rec.chunk_age_s,
            "reflex.guard": np.array(["clamp_limit" in kinds, "clamp_delta" in kinds], dtype=bool),
            L.EPISODE_COLUMN: self._episode,
            TASK_COLUMN: rec.task,
        })
        for cam, frame in zip(self._cameras, frames, strict=True):
            self._encoders[cam].put(frame.image)
        self.rows += 1
        if rec.guard_events:
            self._sidecar("events", {
                "type": "guard", "step": rec.step, "t": rec.t_tick,
                "events": [{"kind": e.kind, "joints": list(e.joints), "detail": e.detail}
                           for e in rec.guard_events],
            })

    def _check_shape(self, camera: str, image: Any) -> None:
        expected = self._expect_shapes[camera]
        got = list(np.shape(image)[:2])
        if got != expected:
            raise ValueError(f"camera {camera!r}: frames of {got[0]}x{got[1]} (height x width), the dataset "
                             f"appended to has {expected[0]}x{expected[1]}: left as it was")

    def write_chunk(self, chunk: ActionChunk) -> None:
        self._sidecar("chunks", chunk_dict(chunk))

    def write_event(self, event: SessionEvent) -> None:
        self._sidecar("events", event_dict(event))
        if event.kind == "episode_discarded":  # re-recorded: its rows are left out when finalized
            self._discarded.extend(self._takes.get(int(event.data.get("take", -1)), []))
            write_json_atomic(self.root / L.DISCARDED_FILE, {"journal_episodes": sorted(set(self._discarded))})
        if event.kind == "episode_end" and self._journal is not None:
            # an ended episode is durable before anything else happens: its videos closed, its
            # rows journaled, its end (with the outcome) synced; --resume relies on exactly this
            self._take = None  # the next rows are the next take's
            if self.rows > self._episode_start:
                self._next_episode()
            self._sync_sidecars()
        elif event.kind == "episode_start":
            self._sync_sidecars()

    def flush(self) -> None:
        if self._journal is None:
            return
        for encoder in self._encoders.values():
            encoder.flush()
        # a row goes to disk only once every camera's frame for it is there
        durable = min((e.durable for e in self._encoders.values()), default=None)
        self._journal.flush(upto=None if durable is None else self._episode_start + durable)
        self._sync_sidecars()
        self._save_image_stats()

    def _sync_sidecars(self) -> None:
        for fh in self._sidecars.values():
            fh.flush()
            os.fsync(fh.fileno())

    def close(self) -> None:
        if self._journal is None:
            return
        journal, self._journal = self._journal, None
        errors: list[str] = []
        for encoder in self._encoders.values():  # videos first: then every journaled row has its frames
            try:
                encoder.close()
            except Exception as exc:
                errors.append(str(exc))
        for step in (journal.close, *(fh.close for fh in self._sidecars.values())):
            try:
                step()
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
        if errors:  # leave .partial for `reflex recordings repair`
            raise RuntimeError("; ".join(errors))
        self._save_image_stats()
        from reflex.recording.lerobot.finalize import finalize, remove_partial

        t0 = time.monotonic()
        self.report = finalize(self.root, repairing=False)
        remove_partial(self.root)
        self.finalize_s = time.monotonic() - t0

    def summary(self) -> dict[str, Any]:
        """For the session result and ``recording.json``."""
        out: dict[str, Any] = {"rows": self.rows, "skipped_rows": self.skipped_rows}
        if self.report is not None:
            out.update({"status": self.report.status, "episodes": self.report.episodes,
                        "frames": self.report.frames,
                        "finalize_s": round(self.finalize_s, 3)})
        return out

    # -- helpers -------------------------------------------------------------------------
    def _sidecar(self, key: str, obj: dict[str, Any]) -> None:
        import json

        self._sidecars[key].write(json.dumps(obj, separators=(",", ":"), default=_plain) + "\n")

    def _start_encoders(self) -> None:
        self._encoders = {
            cam: PngFrames(cam) if self.lossless
            else CameraEncoder(cam, L.partial_video(self.root, cam, self._episode), self._fps)
            for cam in self._cameras
        }

    def _next_episode(self) -> None:
        """Close this episode's videos (complete files) and open the next episode's."""
        for cam, encoder in self._encoders.items():
            encoder.close()
            self._hists[f"{cam}.{self._episode}"] = (encoder.hist.copy(), encoder.hist_frames)
        assert self._journal is not None
        self._journal.flush()  # every row of the finished episode has its frames on disk now
        self._episode += 1
        self._episode_start = self.rows
        if self._take is not None:
            self._note_take()
        self._start_encoders()

    def _note_take(self) -> None:
        """Which journal episode this take's rows go to: ``--resume`` reads it back."""
        assert self._take is not None
        self._takes.setdefault(self._take, []).append(self._episode)
        self._sidecar("events", {"type": "take", "take": self._take, "journal_episode": self._episode})

    def _load_image_stats(self) -> None:
        """--resume: the histograms of the episodes already recorded (for their image stats)."""
        path = self.root / L.IMAGE_STATS_FILE
        if not path.exists():
            return
        with np.load(path, allow_pickle=False) as saved:
            for key in saved.files:
                if key.endswith(".hist"):
                    base = key[: -len(".hist")]
                    self._hists[base] = (saved[key], int(saved[base + ".frames"]))

    def _save_image_stats(self) -> None:
        if not self._encoders:
            return
        arrays: dict[str, np.ndarray] = {}
        for key, (hist, frames) in self._hists.items():
            arrays[f"{key}.hist"] = hist
            arrays[f"{key}.frames"] = np.array(frames)
        for cam, enc in self._encoders.items():
            arrays[f"{cam}.{self._episode}.hist"] = enc.hist.copy()
            arrays[f"{cam}.{self._episode}.frames"] = np.array(enc.hist_frames)
        path = self.root / L.IMAGE_STATS_FILE
        tmp = path.with_name("image_stats.tmp.npz")
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def _open_sidecar(path: Path, append: bool) -> Any:
    if not append:
        return path.open("w", encoding="utf-8")
    if path.exists() and path.stat().st_size:
        with path.open("rb") as fh:
            fh.seek(-1, os.SEEK_END)
            torn = fh.read(1) != b"\n"
        if torn:  # a line cut by the crash: ended, so the next one starts clean
            with path.open("a", encoding="utf-8") as fh:
                fh.write("\n")
    return path.open("a", encoding="utf-8")


def _robot_type(meta: SessionMeta) -> str | None:
    hardware = meta.config_resolved.get("hardware") if isinstance(meta.config_resolved, dict) else None
    kind = hardware.get("kind") if isinstance(hardware, dict) else None
    return str(kind) if kind else None


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)
