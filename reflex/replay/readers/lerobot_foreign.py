"""A LeRobot v3.0 dataset made by anyone (LeRobot's own writer, a converter, a teleop stack).

It carries no Reflex sidecars, so there are no policy chunks to reproduce: each frame becomes a
step (its state, its demonstrated action, its camera frames, its task), and the episode keeps the
demonstrated actions for open-loop evaluation (``reflex/replay/demonstration.py``). The mapping
(``reflex/replay/mapping.py``) says which features are the state, the action and the cameras.
Video frames decode lazily from the episode's MP4 at ``from_timestamp + timestamp``; ``image``
features are PNG bytes in the data parquet, read only when a frame is asked for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reflex.replay.episode import Episode, EpisodeMeta, RecordedFrame, RecordedStep, RecordingError
from reflex.replay.mapping import LEROBOT_ACTION, LEROBOT_IMAGE_PREFIX, LEROBOT_STATE, DatasetMapping
from reflex.replay.readers.lerobot import _Video
from reflex.replay.readers.records import decode_image

INFO = "meta/info.json"
MAX_INFO_BYTES = 16 * 1024 * 1024
DEFAULT_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"


def read_foreign_lerobot(root: Path, mapping: DatasetMapping | None) -> list[Episode]:
    return _Foreign(root, mapping or DatasetMapping()).episodes()


class _Foreign:
    def __init__(self, root: Path, mapping: DatasetMapping) -> None:
        self.root = root
        self.mapping = mapping
        path = root / INFO
        if path.stat().st_size > MAX_INFO_BYTES:
            raise RecordingError(str(path), f"larger than {MAX_INFO_BYTES} bytes")
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RecordingError(str(path), f"unreadable: {exc}") from None
        if not isinstance(info, dict) or not isinstance(info.get("features"), dict):
            raise RecordingError(str(path), "expected a JSON object with 'features'")
        version = str(info.get("codebase_version", ""))
        if not version.startswith("v3"):
            raise RecordingError(str(path), f"codebase_version {version!r}: only LeRobot v3.0 datasets are read "
                                 "(convert v2.1 with lerobot's convert_dataset_v21_to_v30)")
        self.info = info
        self.features: dict[str, Any] = info["features"]
        fps = info.get("fps")
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0:
            raise RecordingError(str(path), f"fps must be > 0, got {fps!r}")
        self.fps = float(fps)

    # -- which feature is what ---------------------------------------------------------------
    def _vector_key(self, key: str | None, default: str, what: str, required: bool) -> str | None:
        chosen = key or default
        feature = self.features.get(chosen)
        if feature is None:
            if not required and key is None:
                return None
            vectors = sorted(k for k, f in self.features.items() if len(f.get("shape") or []) == 1
                             and f.get("dtype") not in ("image", "video", "string"))
            raise RecordingError(
                str(self.root / INFO), f"no feature '{chosen}' for the {what} (vector features: {vectors}); "
                f"map one with --map {what}=KEY"
            )
        if feature.get("dtype") in ("image", "video", "string") or len(feature.get("shape") or []) != 1:
            raise RecordingError(str(self.root / INFO), f"feature '{chosen}' ({what}) is not a 1-D vector")
        return chosen

    def _cameras(self) -> dict[str, str]:
        if self.mapping.cameras is not None:
            for name, key in self.mapping.cameras.items():
                if (self.features.get(key) or {}).get("dtype") not in ("image", "video"):
                    have = sorted(k for k, f in self.features.items() if f.get("dtype") in ("image", "video"))
                    raise RecordingError(str(self.root / INFO),
                                         f"camera '{name}': '{key}' is not an image or video feature (have {have})")
            return dict(self.mapping.cameras)
        return {
            key[len(LEROBOT_IMAGE_PREFIX):] if key.startswith(LEROBOT_IMAGE_PREFIX) else key: key
            for key, f in self.features.items()
            if f.get("dtype") in ("image", "video")
        }

    def _joint_names(self, key: str) -> tuple[str, ...]:
        dim = int(self.features[key]["shape"][0])
        if self.mapping.joint_names is not None:
            if len(self.mapping.joint_names) != dim:
                raise RecordingError("--map joint_names", f"{len(self.mapping.joint_names)} names for {dim} dimensions")
            return tuple(self.mapping.joint_names)
        names = self.features[key].get("names")
        if isinstance(names, dict):  # older writers: {"motors": [...]}
            names = next(iter(names.values()), None) if len(names) == 1 else None
        if isinstance(names, list) and len(names) == dim and all(isinstance(n, str) for n in names):
            return tuple(names)
        return tuple(f"joint{i}" for i in range(dim))

    # -- reading -------------------------------------------------------------------------------
    def episodes(self) -> list[Episode]:
        import pyarrow as pa
        import pyarrow.parquet as pq

        state_key = self._vector_key(self.mapping.state, LEROBOT_STATE, "state", True)
        assert state_key is not None
        action_key = self._vector_key(self.mapping.action, LEROBOT_ACTION, "action", False)
        cameras = self._cameras()
        names = self._joint_names(state_key)
        if action_key is not None and int(self.features[action_key]["shape"][0]) != len(names):
            raise RecordingError(str(self.root / INFO), f"'{action_key}' has {self.features[action_key]['shape'][0]} "
                                 f"dimensions, the state '{state_key}' {len(names)}")
        image_keys = {key for key in cameras.values() if self.features[key].get("dtype") == "image"}
        columns = [state_key, "timestamp", "frame_index", "episode_index", "task_index",
                   *([action_key] if action_key else []), *sorted(image_keys)]
        files = sorted((self.root / "data").glob("*/*.parquet"))
        if not files:
            raise RecordingError(str(self.root), "no data/*/*.parquet files")
        try:
            present = pq.read_schema(files[0]).names
            missing = [c for c in columns if c not in present]
            if missing:
                raise RecordingError(str(files[0]), f"missing column(s) {missing}")
            table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files])
        except (OSError, pa.ArrowException) as exc:
            raise RecordingError(str(self.root / "data"), f"parquet is corrupt: {exc}") from None
        states = _matrix(table.column(state_key), len(names), state_key)
        actions = _matrix(table.column(action_key), len(names), action_key) if action_key else None
        timestamps = table.column("timestamp").to_numpy().astype(np.float64)
        frame_index = table.column("frame_index").to_numpy()
        episode_index = table.column("episode_index").to_numpy()
        task_index = table.column("task_index").to_numpy()
        tasks = self._tasks()
        videos = self._videos({name: key for name, key in cameras.items() if key not in image_keys})
        lossy_state = [] if self.features[state_key].get("dtype") == "float64" else [
            f"the dataset stores the state as {self.features[state_key].get('dtype')}"]
        video_cams = [name for name, key in cameras.items() if key not in image_keys]
        lossy_images = ["LeRobot stores images as video, decoded here"] if video_cams else []
        out = []
        for ep in sorted(set(episode_index.tolist())):
            rows = np.flatnonzero(episode_index == ep)
            rows = rows[np.argsort(frame_index[rows], kind="stable")]
            steps = []
            for i, row in enumerate(rows.tolist()):
                t = float(timestamps[row])
                fi = int(frame_index[row])
                task = self.mapping.task if self.mapping.task is not None else tasks.get(int(task_index[row]), "")
                frames = {}
                for name, key in cameras.items():
                    loader = (self._png(table.column(key), row, name, fi, int(ep)) if key in image_keys
                              else self._video_frame(videos, int(ep), name, fi))
                    frames[name] = RecordedFrame(name, fi, t, i, loader)
                action = None if actions is None else actions[row]
                steps.append(RecordedStep(i, t, states[row].copy(), t, action, False, None, None, task, frames))
            meta = EpisodeMeta(
                session_id=f"{self.root.name}/episode_{int(ep)}", joint_names=names,
                camera_names=tuple(cameras), task=steps[0].task if steps else "", control_rate_hz=self.fps,
            )
            episode = Episode(self.root, "lerobot", int(ep), meta, steps, [])
            episode.lossy_state, episode.lossy_images = list(lossy_state), list(lossy_images)
            episode.demonstration = None if actions is None else actions[rows]
            episode.foreign = True
            out.append(episode)
        return out

    def _tasks(self) -> dict[int, str]:
        import pyarrow.parquet as pq

        path = self.root / "meta" / "tasks.parquet"
        if not path.is_file():
            return {}
        out = {}
        for row in pq.read_table(path).to_pylist():
            name = row.get("task") or row.get("__index_level_0__")
            if isinstance(row.get("task_index"), int) and isinstance(name, str):
                out[row["task_index"]] = name
        return out

    def _videos(self, cameras: dict[str, str]) -> dict[tuple[int, str], tuple[Path, float]]:
        """(episode, camera) -> (MP4 file, from_timestamp), from the episodes metadata."""
        import pyarrow.parquet as pq

        if not cameras:
            return {}
        template = str(self.info.get("video_path") or DEFAULT_VIDEO_PATH)
        out: dict[tuple[int, str], tuple[Path, float]] = {}
        files = sorted((self.root / "meta" / "episodes").glob("*/*.parquet"))
        if not files:
            raise RecordingError(str(self.root / "meta" / "episodes"), "no episodes metadata (*/*.parquet)")
        for file in files:
            for row in pq.read_table(file).to_pylist():
                for name, key in cameras.items():
                    try:
                        rel = template.format(video_key=key, chunk_index=int(row[f"videos/{key}/chunk_index"]),
                                              file_index=int(row[f"videos/{key}/file_index"]))
                        start = float(row.get(f"videos/{key}/from_timestamp") or 0.0)
                    except (KeyError, TypeError, ValueError) as exc:
                        raise RecordingError(str(file), f"episode {row.get('episode_index')}: no video pointer "
                                             f"for '{key}' ({exc})") from None
                    out[(int(row["episode_index"]), name)] = (self.root / rel, start)
        return out

    def _video_frame(
        self, videos: dict[tuple[int, str], tuple[Path, float]], ep: int, name: str, fi: int
    ) -> Callable[[], np.ndarray] | None:
        found = videos.get((ep, name))
        if found is None:
            return None
        path, start = found
        decoder = self._decoders.setdefault(path, _Video(path, self.fps))
        index = fi + round(start * self.fps)
        where = f"{self.root}: episode {ep} frame {fi}, camera '{name}'"
        return lambda: decoder.frame(index, where)

    def _png(self, column: Any, row: int, name: str, fi: int, ep: int) -> Callable[[], np.ndarray]:
        where = f"{self.root}: episode {ep} frame {fi}, camera '{name}'"

        def load() -> np.ndarray:
            cell = column[row].as_py()
            data = cell.get("bytes") if isinstance(cell, dict) else None
            if not data:
                raise RecordingError(where, "image cell has no bytes")
            return decode_image(data, where)

        return load

    @property
    def _decoders(self) -> dict[Path, _Video]:
        if not hasattr(self, "_decoder_cache"):
            self._decoder_cache: dict[Path, _Video] = {}
        return self._decoder_cache


def _matrix(column: Any, dim: int, key: str) -> np.ndarray:
    values = column.to_pylist()
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise RecordingError(key, "rows are not equal-length numeric vectors") from None
    if array.ndim != 2 or array.shape[1] != dim:
        raise RecordingError(key, f"rows have shape {array.shape[1:]}, expected ({dim},)")
    return array
