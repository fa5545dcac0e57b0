"""Reader of the ``lerobot`` recorder's LeRobot v3.0 dataset (parquet + MP4, Reflex sidecars).

Row ``k`` of an episode is control step ``reflex.step``: its state, its action, and per camera
the newest frame (``reflex.frame_seq``, ``reflex.frame_new``), decoded from the episode's video
at ``from_timestamp + k / fps``. Chunks come from the ``meta/reflex/chunks.jsonl`` sidecar and the
session from ``meta/reflex/recording.json``. The video is lossy (H.264) and the state float32,
so observations are flagged as approximate. Cameras recorded with ``image_encoding: lossless``
are LeRobot ``image`` features (PNG bytes in the data parquet) and decode exactly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reflex.recording.formats import spec
from reflex.replay.episode import Episode, RecordedChunk, RecordedStep, RecordingError
from reflex.replay.mapping import DatasetMapping
from reflex.replay.readers.records import RecordParser, decode_image, note_gaps

INFO = "meta/info.json"
STATUS = "meta/reflex/recording.json"
CHUNKS = "meta/reflex/chunks.jsonl"
IMAGE_PREFIX = "observation.images."
LOSSLESS_VIDEO = {("ffv1", "gbrp"), ("ffv1", "bgr0"), ("libx264rgb", "rgb24"), ("h264", "rgb24")}


class LeRobotReader:
    name = "lerobot"

    def locate(self, path: Path) -> Path | None:
        if not path.is_dir():
            return None
        for candidate in (path, path / spec("lerobot").directory):
            if (candidate / INFO).is_file() or (candidate / STATUS).is_file():
                return candidate
        return None

    def read(self, path: Path, allow_partial: bool, mapping: DatasetMapping | None = None) -> list[Episode]:
        try:
            import av  # noqa: F401
            import pyarrow.parquet  # noqa: F401
        except ImportError:
            hint = "reading LeRobot datasets needs the lerobot extra: pip install 'reflex-runtime[lerobot]'"
            raise RecordingError(str(path), hint) from None
        if (path / INFO).is_file() and not (path / STATUS).is_file():
            from reflex.replay.readers.lerobot_foreign import read_foreign_lerobot

            return read_foreign_lerobot(path, mapping)  # not recorded by Reflex: a demonstration
        return _Dataset(path).episodes()


class _Video:
    """Sequential decoding of one MP4; frames are asked for in (mostly) increasing order."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path = path
        self.fps = fps
        self._iter: Any = None
        self._container: Any = None
        self._last: tuple[int, np.ndarray] | None = None

    def frame(self, index: int, where: str) -> np.ndarray:
        if self._last is not None and self._last[0] == index:
            return self._last[1]
        if self._iter is None or self._last is None or index < self._last[0]:
            self._open(where)
        try:
            while True:
                frame = next(self._iter)
                k = round(float(frame.pts * frame.time_base) * self.fps) if frame.pts is not None else -1
                if k >= index:
                    image = frame.to_ndarray(format="rgb24")
                    self._last = (k, image)
                    if k != index:
                        raise RecordingError(where, f"video {self.path} has no frame {index} (next is {k})")
                    return image
        except StopIteration:
            raise RecordingError(where, f"video {self.path} ends before frame {index}") from None
        except RecordingError:
            raise
        except Exception as exc:  # PyAV raises its own error types for broken streams
            raise RecordingError(where, f"video {self.path} is corrupt: {exc}") from None

    def _open(self, where: str) -> None:
        import av

        if self._container is not None:
            self._container.close()
        if not self.path.is_file():
            raise RecordingError(where, f"video file {self.path} is missing")
        try:
            self._container = av.open(str(self.path))
            self._iter = self._container.decode(video=0)
        except Exception as exc:
            raise RecordingError(where, f"video {self.path} cannot be opened: {exc}") from None
        self._last = None


class _Dataset:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _json(self, rel: str) -> dict[str, Any]:
        path = self.root / rel
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RecordingError(str(path), "missing") from None
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordingError(str(path), f"unreadable: {exc}") from None
        if not isinstance(obj, dict):
            raise RecordingError(str(path), "expected a JSON object")
        return obj

    def episodes(self) -> list[Episode]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not (self.root / INFO).is_file():
            if (self.root / ".partial").exists():
                raise RecordingError(
                    str(self.root), "LeRobot recording was never finalized (the session or its recorder died): "
                    f"run `reflex recordings repair {self.root.parent}` first"
                )
            raise RecordingError(str(self.root), f"no {INFO}: not a LeRobot dataset")
        status = self._json(STATUS) if (self.root / STATUS).is_file() else None
        if status is None or not isinstance(status.get("session"), dict):
            raise RecordingError(
                str(self.root), f"no {STATUS}: not recorded by Reflex, so the policy's chunks are unknown"
            )
        if status.get("status") == "excluded":
            raise RecordingError(str(self.root), f"the episode was excluded: {status.get('reason', '')}")
        info = self._json(INFO)
        parser = RecordParser(0)
        parser.where = str(self.root / STATUS)
        meta = parser.meta(status["session"])
        fps = float(info.get("fps") or meta.control_rate_hz)
        files = sorted((self.root / "data").glob("*/*.parquet"))
        if not files:
            raise RecordingError(str(self.root), "no data/*/*.parquet files")
        try:
            table = pa.concat_tables([pq.read_table(f) for f in files])
        except (OSError, pa.ArrowException) as exc:
            raise RecordingError(str(self.root / "data"), f"parquet is corrupt: {exc}") from None
        required = ["observation.state", "reflex.step", "reflex.t_tick", "reflex.t_state", "episode_index"]
        missing = [c for c in required if c not in table.column_names]
        if missing:
            raise RecordingError(str(files[0]), f"missing column(s) {missing}: not a Reflex LeRobot recording")
        chunks = self._chunks(parser)
        tasks = self._tasks()
        cameras = list(status.get("cameras") or [])
        video_starts = self._video_starts()
        lossy_state, lossy_images = [], []
        state_dtype = (info.get("features", {}).get("observation.state") or {}).get("dtype")
        if state_dtype != "float64":
            lossy_state.append(f"LeRobot stores the state as {state_dtype}")
        image_cams = {c for c in cameras if _dtype(info, c) == "image"}  # exact PNG, not video
        videos = [_video_info(info, c) for c in cameras if c not in image_cams]
        lossy_videos = sorted({f"{codec} {pix}" for codec, pix in videos if (codec, pix) not in LOSSLESS_VIDEO})
        if lossy_videos:
            kinds = ", ".join(lossy_videos)
            lossy_images.append(f"LeRobot stores images as video ({kinds}), not as the policy saw them")
        rows = table.to_pylist()
        out = []
        for episode_index in sorted({r["episode_index"] for r in rows}):
            ep_rows = [r for r in rows if r["episode_index"] == episode_index]
            steps = self._steps(parser, ep_rows, cameras, tasks, fps, video_starts.get(episode_index, {}),
                                image_cams)
            first, last = (steps[0].step, steps[-1].step) if steps else (0, -1)
            ep_chunks = [c for c in chunks if first <= c.obs_step <= last] if len(rows) != len(ep_rows) else chunks
            episode = Episode(self.root, "lerobot", int(episode_index), meta, steps, ep_chunks)
            episode.lossy_state, episode.lossy_images = list(lossy_state), list(lossy_images)
            if status.get("status") == "repaired":
                episode.notes.append("recording was repaired after a crash: it ends where the data did")
            note_gaps(steps, episode.notes)
            out.append(episode)
        return out

    def _chunks(self, parser: RecordParser) -> list[RecordedChunk]:
        path = self.root / CHUNKS
        if not path.is_file():
            raise RecordingError(str(path), "missing: the policy's chunks were not recorded")
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            parser.where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordingError(parser.where, f"not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise RecordingError(parser.where, "expected a JSON object")
            out.append(parser.chunk(obj))
        return out

    def _tasks(self) -> dict[int, str]:
        import pyarrow.parquet as pq

        path = self.root / "meta" / "tasks.parquet"
        if not path.is_file():
            return {}
        table = pq.read_table(path)
        out = {}
        for row in table.to_pylist():
            name = row.get("task") or row.get("__index_level_0__")
            if isinstance(row.get("task_index"), int) and isinstance(name, str):
                out[row["task_index"]] = name
        return out

    def _video_starts(self) -> dict[int, dict[str, tuple[Path, float]]]:
        """episode -> camera -> (video file, from_timestamp) from the episodes metadata."""
        import pyarrow.parquet as pq

        out: dict[int, dict[str, tuple[Path, float]]] = {}
        for file in sorted((self.root / "meta" / "episodes").glob("*/*.parquet")):
            for row in pq.read_table(file).to_pylist():
                cams = out.setdefault(int(row["episode_index"]), {})
                for key in row:
                    if key.startswith(f"videos/{IMAGE_PREFIX}") and key.endswith("/chunk_index"):
                        video_key = key[len("videos/") : -len("/chunk_index")]
                        cam = video_key[len(IMAGE_PREFIX) :]
                        chunk_no, file_no = int(row[key]), int(row[f"videos/{video_key}/file_index"])
                        rel = f"videos/{video_key}/chunk-{chunk_no:03d}/file-{file_no:03d}.mp4"
                        cams[cam] = (self.root / rel, float(row.get(f"videos/{video_key}/from_timestamp") or 0.0))
        return out

    def _steps(
        self, parser: RecordParser, rows: list[dict[str, Any]], cameras: list[str], tasks: dict[int, str],
        fps: float, videos: dict[str, tuple[Path, float]], image_cams: set[str] | None = None,
    ) -> list[RecordedStep]:
        decoders = {cam: _Video(path, fps) for cam, (path, _) in videos.items()}
        starts = {cam: start for cam, (_, start) in videos.items()}
        pngs = {cam: {int(r.get("frame_index", i)): r.get(IMAGE_PREFIX + cam) for i, r in enumerate(rows)}
                for cam in image_cams or ()}

        def loader(cam: str, frame_index: int, step: int) -> Callable[[], np.ndarray] | None:
            if cam in pngs:
                cell = pngs[cam].get(frame_index)
                data = cell.get("bytes") if isinstance(cell, dict) else None
                if not data:
                    return None
                where_png = f"{self.root}: step {step}, camera '{cam}'"
                return lambda: decode_image(data, where_png)
            if cam not in decoders:
                return None
            index = frame_index + round(starts[cam] * fps)
            where = f"{self.root}: step {step}, camera '{cam}'"
            return lambda: decoders[cam].frame(index, where)

        steps = []
        for i, row in enumerate(rows):
            step = int(row["reflex.step"])
            parser.where = f"{self.root}: episode {row['episode_index']} row {i} (step {step})"
            seqs = _list(row.get("reflex.frame_seq"))
            times = _list(row.get("reflex.t_capture"))
            new = _list(row.get("reflex.frame_new"))
            frames = {
                cam: {"seq": int(seqs[c]), "t_capture": times[c], "frame_index": int(row.get("frame_index", i))}
                for c, cam in enumerate(cameras)
                if c < len(seqs) and (i == 0 or (c < len(new) and new[c]))
            }
            action = row.get("action")
            obj = {
                "step": step,
                "t_tick": row["reflex.t_tick"],
                "t_state": row["reflex.t_state"],
                "state": [float(x) for x in row["observation.state"]],
                "action": None if action is None or any(math.isnan(x) for x in action) else [float(x) for x in action],
                "applied": bool(row.get("reflex.applied", False)),
                "chunk_id": None if row.get("reflex.chunk_id", -1) == -1 else row["reflex.chunk_id"],
                "chunk_index": _nan_none(row.get("reflex.chunk_index")),
                "task": tasks.get(int(row.get("task_index", -1) or 0), ""),
                "frames": {cam: {"seq": f["seq"], "t_capture": f["t_capture"], "path": f["frame_index"]}
                           for cam, f in frames.items()},
            }
            steps.append(parser.step(obj, lambda cam, _seq, st, fi: loader(cam, int(fi), st)))
        return steps


def _dtype(info: dict[str, Any], camera: str) -> str:
    return str(((info.get("features") or {}).get(IMAGE_PREFIX + camera) or {}).get("dtype", "video"))


def _video_info(info: dict[str, Any], camera: str) -> tuple[str, str]:
    feature = (info.get("features") or {}).get(IMAGE_PREFIX + camera) or {}
    details = feature.get("info") or {}
    return str(details.get("video.codec", "?")), str(details.get("video.pix_fmt", "?"))


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _nan_none(value: Any) -> Any:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
