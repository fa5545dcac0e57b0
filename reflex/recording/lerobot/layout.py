"""Where every LeRobot v3.0 file goes, and the features a Reflex episode declares.

Each row is one control step as it was recorded: the state read at that step, the action computed
from it, and for each camera the newest frame at that step (repeated, and flagged, when the camera
had no new frame). ``timestamp`` is ``frame_index / fps`` exactly, as the LeRobot loader requires;
real monotonic times are kept in the ``reflex.*`` columns.

A session is one episode (an ``episodes`` session: one per episode, docs/episodes.md), split
every :data:`EPISODE_MAX_S`: the loader looks frames up by a float32 timestamp and checks it to
1e-4 s, which float32 can no longer resolve past 2048 s.
Each episode has its own MP4 per camera (``file_index`` = episode, ``from_timestamp`` = 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"

# Reflex's own files inside the dataset root (the LeRobot loader never reads them).
SIDECAR_DIR = "meta/reflex"
STATUS_FILE = "meta/reflex/recording.json"
EVENTS_FILE = "meta/reflex/events.jsonl"
CHUNKS_FILE = "meta/reflex/chunks.jsonl"
PARTIAL_DIR = ".partial"  # journal + fragmented videos while recording; removed when finalized
JOURNAL_FILE = ".partial/rows.arrows"
IMAGE_STATS_FILE = ".partial/image_stats.npz"
DISCARDED_FILE = ".partial/discarded.json"  # journal episodes the operator re-recorded: left out

EPISODE_MAX_S = 1800
TASK_COLUMN = "task"  # journal-only column: the task text, turned into task_index when finalized
EPISODE_COLUMN = "episode_index"
DEFAULT_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index")
STATE_KEY = "observation.state"
ACTION_KEY = "action"
IMAGE_PREFIX = "observation.images."


def image_key(camera: str) -> str:
    return IMAGE_PREFIX + camera


def partial_video(root: Path, camera: str, episode: int) -> Path:
    return root / PARTIAL_DIR / camera / f"episode-{episode:06d}.mp4"


def file_slot(episode: int) -> tuple[int, int]:
    """(chunk_index, file_index) of an episode's own files: 1000 files per chunk directory."""
    return episode // CHUNKS_SIZE, episode % CHUNKS_SIZE


def next_slot(slot: tuple[int, int] | list[int]) -> tuple[int, int]:
    """The (chunk_index, file_index) after ``slot``: where LeRobot's writer puts what it appends
    to an existing dataset (never into the files already there)."""
    chunk_index, file_index = int(slot[0]), int(slot[1]) + 1
    return (chunk_index + 1, 0) if file_index >= CHUNKS_SIZE else (chunk_index, file_index)


def video_file(root: Path, camera: str, episode: int) -> Path:
    chunk_index, file_index = file_slot(episode)
    key = image_key(camera)
    return root / VIDEO_PATH.format(video_key=key, chunk_index=chunk_index, file_index=file_index)


def data_file(root: Path, chunk_index: int = 0, file_index: int = 0) -> Path:
    return root / DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)


def episodes_file(root: Path, chunk_index: int = 0, file_index: int = 0) -> Path:
    return root / EPISODES_PATH.format(chunk_index=chunk_index, file_index=file_index)


def vector_features(joints: list[str], cameras: list[str]) -> dict[str, dict[str, Any]]:
    """The non-video, non-default features: exactly the journal's columns."""
    one: dict[str, Any] = {"shape": [1], "names": None}
    cams: dict[str, Any] = {"shape": [len(cameras)], "names": list(cameras)}
    return {
        STATE_KEY: {"dtype": "float32", "shape": [len(joints)], "names": list(joints)},
        # NaN where the loop held (stale data or no chunk): no action was computed at that step.
        ACTION_KEY: {"dtype": "float32", "shape": [len(joints)], "names": list(joints)},
        "reflex.step": {"dtype": "int64", **one},
        "reflex.applied": {"dtype": "bool", **one},
        "reflex.t_tick": {"dtype": "float64", **one},
        "reflex.t_state": {"dtype": "float64", **one},
        "reflex.t_capture": {"dtype": "float64", **cams},
        "reflex.frame_seq": {"dtype": "int64", **cams},
        "reflex.frame_new": {"dtype": "bool", **cams},
        "reflex.chunk_id": {"dtype": "int64", **one},
        "reflex.chunk_index": {"dtype": "float64", **one},
        "reflex.chunk_age_s": {"dtype": "float64", **one},
        "reflex.guard": {"dtype": "bool", "shape": [2], "names": ["clamp_limit", "clamp_delta"]},
    }


def default_features() -> dict[str, dict[str, Any]]:
    one: dict[str, Any] = {"shape": [1], "names": None}
    return {
        "timestamp": {"dtype": "float32", **one},
        "frame_index": {"dtype": "int64", **one},
        "episode_index": {"dtype": "int64", **one},
        "index": {"dtype": "int64", **one},
        "task_index": {"dtype": "int64", **one},
    }


def video_feature(height: int, width: int, fps: int, codec: str, pix_fmt: str) -> dict[str, Any]:
    return {
        "dtype": "video",
        "shape": [height, width, 3],
        "names": ["height", "width", "channels"],
        "info": {
            "video.height": height,
            "video.width": width,
            "video.codec": codec,
            "video.pix_fmt": pix_fmt,
            "video.is_depth_map": False,
            "video.fps": fps,
            "video.channels": 3,
            "has_audio": False,
        },
    }


def image_feature(height: int, width: int) -> dict[str, Any]:
    """A camera stored as PNG in the data parquet (``record.image_encoding: lossless``)."""
    return {"dtype": "image", "shape": [height, width, 3], "names": ["height", "width", "channels"]}
