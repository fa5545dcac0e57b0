"""Turn the row journal and the partial videos into the LeRobot v3.0 files.

Used when a recording closes normally and, unchanged, to repair one whose runner died: each
episode is cut to the rows that exist in *every* stream (journal and each camera's video), so
rows and frames always line up; an episode with no complete row is left out. A recording with no
complete row at all is excluded: no ``meta/info.json`` is written and the status file says why.

Appending (``--resume`` on a finished dataset, status file ``append_base``): the dataset's files
stay as they are; the new episodes go after them as LeRobot's writer resumes: episode, row and
task indices continue, rows and episode metadata go to the next data and episodes files, each
episode's video to its own next file, the tasks table is extended, totals and stats updated,
``meta/info.json`` last. All of it derives from the snapshot and the journal, so it can be redone.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from reflex.recording.lerobot import layout as L
from reflex.recording.lerobot.journal import read_journal
from reflex.recording.lerobot.png import png_size
from reflex.recording.lerobot.stats import image_stats, merge_stats, vector_stats
from reflex.recording.lerobot.video import CODEC_NAME, pix_fmt_for, remux
from reflex.recording.manifest import read_json, write_json_atomic


@dataclass
class FinalizeReport:
    status: str  # "complete" | "repaired" | "excluded"
    rows: int = 0
    journal_rows: int = 0
    episodes: int = 0
    frames: dict[str, int] = field(default_factory=dict)  # per camera, all episodes
    reason: str = ""


def finalize(root: Path, *, repairing: bool) -> FinalizeReport:
    status = read_json(root / L.STATUS_FILE)
    if status is None:
        raise FileNotFoundError(f"{root / L.STATUS_FILE}: missing or unreadable, not a Reflex LeRobot recording")
    fps = int(status["fps"])
    cameras: list[str] = list(status["cameras"])
    image_cams = [c for c in cameras if c in (status.get("image_cameras") or [])]  # PNG in the rows
    video_cams = [c for c in cameras if c not in image_cams]
    features: dict[str, dict[str, Any]] = status["features"]

    base: dict[str, Any] | None = status.get("append_base")
    base_n = 0 if base is None else int(base["episodes"])
    base_frames = 0 if base is None else int(base["frames"])

    table, _ = read_journal(root / L.JOURNAL_FILE)
    journal_rows = 0 if table is None else table.num_rows
    report = FinalizeReport("repaired" if repairing else "complete", journal_rows=journal_rows,
                            frames={cam: 0 for cam in cameras})
    if base is None:
        shutil.rmtree(root / "videos", ignore_errors=True)  # a finalize cut short is simply redone
    else:
        _remove_videos_from(root, video_cams, base_n)

    # Each episode keeps the rows present in every stream: journal and each camera's video.
    kept: list[tuple[int, int, int]] = []  # (journal episode, first journal row, rows kept)
    discarded = set((read_json(root / L.DISCARDED_FILE) or {}).get("journal_episodes", []))  # re-recorded
    if table is not None:
        episodes = table.column(L.EPISODE_COLUMN).to_numpy()
        for source in sorted(set(episodes.tolist()) - discarded):
            rows = np.nonzero(episodes == source)[0]
            first, count = int(rows[0]), len(rows)
            target = base_n + len(kept)  # episodes renumbered so the kept ones stay contiguous
            n = count
            for cam in video_cams:
                src = L.partial_video(root, cam, source)
                n = min(n, remux(src, L.video_file(root, cam, target), n, fps) if src.exists() else 0)
            if n == 0:
                for cam in video_cams:
                    L.video_file(root, cam, target).unlink(missing_ok=True)
                continue
            for cam in video_cams:  # a camera behind the others: cut every video to the same length
                if _frame_count(L.video_file(root, cam, target)) != n:
                    remux(L.partial_video(root, cam, source), L.video_file(root, cam, target), n, fps)
            for cam in cameras:
                report.frames[cam] += n
            kept.append((source, first, n))

    if not kept and base is not None:  # nothing new: the dataset stays exactly what it was
        _remove_videos_from(root, video_cams, base_n)
        status.pop("append_base", None)
        status.update(base["status"])
        write_json_atomic(root / L.STATUS_FILE, status)
        return FinalizeReport(str(base["status"]["status"]), rows=base_frames, journal_rows=journal_rows,
                              episodes=base_n, frames={c: int(v) for c, v in (base["status"]["frames"] or {}).items()})
    if not kept:
        report.status = "excluded"
        report.reason = (
            "no complete row: the runner stopped before a step was recorded in every stream"
            f" (journal {journal_rows} rows)"
        )
        shutil.rmtree(root / "videos", ignore_errors=True)
        _write_status(root, status, report)
        return report

    assert table is not None
    parts = [table.slice(first, n) for _, first, n in kept]
    data = pa.concat_tables(parts)
    total = data.num_rows
    report.rows, report.episodes = base_frames + total, base_n + len(kept)
    task_list = data.column(L.TASK_COLUMN).to_pylist()
    tasks = _task_indices([*(base["tasks"] if base else []), *task_list])  # the dataset's keep their index
    frame_index = np.concatenate([np.arange(n, dtype=np.int64) for _, _, n in kept])
    episode_index = np.concatenate([np.full(n, base_n + e, dtype=np.int64) for e, (_, _, n) in enumerate(kept)])

    data = data.drop_columns([L.TASK_COLUMN, L.EPISODE_COLUMN])
    for cam in image_cams:  # LeRobot's image dtype: an HF Image struct {bytes, path} per row
        key = L.image_key(cam)
        pngs = data.column(key).combine_chunks()
        struct = pa.StructArray.from_arrays([pngs, pa.nulls(len(pngs), pa.string())], names=["bytes", "path"])
        data = data.set_column(data.schema.get_field_index(key), key, struct)
    data = data.append_column("timestamp", pa.array((frame_index / fps).astype(np.float32)))
    data = data.append_column("frame_index", pa.array(frame_index))
    data = data.append_column("episode_index", pa.array(episode_index))
    data = data.append_column("index", pa.array(np.arange(base_frames, base_frames + total, dtype=np.int64)))
    data = data.append_column("task_index", pa.array(np.array([tasks[t] for t in task_list], dtype=np.int64)))
    data_slot = (0, 0) if base is None else L.next_slot(base["data_slot"])
    episodes_slot = (0, 0) if base is None else L.next_slot(base["episodes_slot"])

    all_features = {**features, **L.default_features()}
    for cam in video_cams:
        h, w = _video_size(L.video_file(root, cam, base_n))
        all_features[L.image_key(cam)] = L.video_feature(h, w, fps, CODEC_NAME, pix_fmt_for(h, w))
    for cam in image_cams:
        first_png = data.column(L.image_key(cam))[0]["bytes"].as_py()
        all_features[L.image_key(cam)] = L.image_feature(*png_size(first_png))
    if base is not None:  # before any file the loader reads is written
        _check_same_features(base["info"]["features"], all_features)
    data_path = L.data_file(root, *data_slot)
    data_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(data, data_path, compression="snappy")

    hists = _load_hists(root)
    lengths = [n for _, _, n in kept]
    bounds = np.cumsum([0, *lengths])
    episode_rows = []
    for e, (source, _, n) in enumerate(kept):
        part = data.slice(int(bounds[e]), n)
        ep_stats = _vector_stats(part, features)
        for cam in cameras:
            hist = hists.get((cam, source))
            s_img = None if hist is None else image_stats(*hist)
            if s_img is not None:
                ep_stats[L.image_key(cam)] = s_img
        ep_tasks = list(dict.fromkeys(task_list[int(bounds[e]) : int(bounds[e]) + n]))
        episode_rows.append(_episode_row(base_n + e, base_frames + int(bounds[e]), n, fps, video_cams, ep_tasks,
                                         ep_stats, data_slot, episodes_slot))
    stats = _vector_stats(data, features)
    for cam in cameras:
        summed = [hists[(cam, source)] for source, _, _ in kept if (cam, source) in hists]
        if summed:
            s_img = image_stats(np.sum([h for h, _ in summed], axis=0), sum(f for _, f in summed))
            if s_img is not None:
                stats[L.image_key(cam)] = s_img

    if base is not None:
        stats = merge_stats(base["stats"], stats)
    _write_tasks(root, tasks)
    episodes_path = L.episodes_file(root, *episodes_slot)
    episodes_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(episode_rows), episodes_path, compression="snappy")
    write_json_atomic(root / L.STATS_PATH, stats)
    info = {
        "codebase_version": L.CODEBASE_VERSION,
        "robot_type": status.get("robot_type"),
        "total_episodes": report.episodes,
        "total_frames": report.rows,
        "total_tasks": len(tasks),
        "chunks_size": L.CHUNKS_SIZE,
        "data_files_size_in_mb": L.DATA_FILES_SIZE_MB,
        "video_files_size_in_mb": L.VIDEO_FILES_SIZE_MB,
        "fps": fps,
        "splits": {"train": f"0:{report.episodes}"},
        "data_path": L.DATA_PATH,
        "video_path": L.VIDEO_PATH if video_cams else None,
        "features": all_features,
    }
    if base is not None:  # the dataset's own info (its robot type, features) with the new totals
        info = {**base["info"], **{k: info[k] for k in ("total_episodes", "total_frames", "total_tasks", "splits")}}
        for cam in cameras:
            report.frames[cam] += int((base["status"]["frames"] or {}).get(cam, 0))
        status.pop("append_base")
    write_json_atomic(root / L.INFO_PATH, info)  # last: a dataset without info.json is unfinished
    _write_status(root, status, report)
    return report


def _remove_videos_from(root: Path, cameras: list[str], first: int) -> None:
    """Appending: the videos of episodes ``first`` on (a finalize cut short), never the dataset's."""
    for cam in cameras:
        episode = first
        while L.video_file(root, cam, episode).exists():
            L.video_file(root, cam, episode).unlink()
            episode += 1


def _check_same_features(recorded: dict[str, Any], now: dict[str, Any]) -> None:
    differ = sorted(k for k in set(recorded) | set(now) if recorded.get(k) != now.get(k))
    if differ:
        raise ValueError(f"appending: the new episodes' features differ from the dataset's ({', '.join(differ)}); "
                         "the dataset is left as it was")


def remove_partial(root: Path) -> None:
    shutil.rmtree(root / L.PARTIAL_DIR, ignore_errors=True)


def _video_size(path: Path) -> tuple[int, int]:
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        size = int(s.codec_context.height), int(s.codec_context.width)
    return size


def _task_indices(tasks: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for task in tasks:
        if task not in out:
            out[task] = len(out)
    return out


def _frame_count(path: Path) -> int:
    import av

    with av.open(str(path)) as c:
        count = int(c.streams.video[0].frames)
    return count


def _vector_stats(data: pa.Table, features: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in [*features, *L.DEFAULT_FEATURES]:
        column = data.column(name).combine_chunks()
        if pa.types.is_fixed_size_list(column.type):
            values = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), -1)
        else:
            values = column.to_numpy(zero_copy_only=False)
        s = vector_stats(values)
        if s is not None:
            out[name] = s
    return out


def _load_hists(root: Path) -> dict[tuple[str, int], tuple[np.ndarray, int]]:
    """Per (camera, journal episode) pixel histograms saved by the recorder at each flush."""
    path = root / L.IMAGE_STATS_FILE
    out: dict[tuple[str, int], tuple[np.ndarray, int]] = {}
    if not path.exists():
        return out
    with np.load(path) as saved:
        for key in saved.files:
            if key.endswith(".hist"):
                cam, episode = key[: -len(".hist")].rsplit(".", 1)
                out[(cam, int(episode))] = (saved[key], int(saved[key[: -len(".hist")] + ".frames"]))
    return out


def _write_tasks(root: Path, tasks: dict[str, int]) -> None:
    """``meta/tasks.parquet`` as pandas writes it: the task string is the (named) index, which is
    what makes the loader return ``item["task"]`` as text rather than a row number."""
    table = pa.table({
        "task_index": pa.array(list(tasks.values()), type=pa.int64()),
        "task": pa.array(list(tasks), type=pa.string()),
    })
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode",
                            "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
             "numpy_type": "int64", "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode",
             "numpy_type": "object", "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.0",
    }
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    pq.write_table(table, root / L.TASKS_PATH)


def _episode_row(
    episode: int, first: int, n: int, fps: int, cameras: list[str], tasks: list[str], stats: dict[str, Any],
    data_slot: tuple[int, int], episodes_slot: tuple[int, int],
) -> dict[str, Any]:
    chunk_index, file_index = L.file_slot(episode)
    row: dict[str, Any] = {
        "episode_index": episode,
        "tasks": tasks,
        "length": n,
        "data/chunk_index": data_slot[0],
        "data/file_index": data_slot[1],
        "dataset_from_index": first,
        "dataset_to_index": first + n,
    }
    for cam in cameras:
        key = L.image_key(cam)
        row[f"videos/{key}/chunk_index"] = chunk_index
        row[f"videos/{key}/file_index"] = file_index
        row[f"videos/{key}/from_timestamp"] = 0.0
        row[f"videos/{key}/to_timestamp"] = n / fps
    row["meta/episodes/chunk_index"] = episodes_slot[0]
    row["meta/episodes/file_index"] = episodes_slot[1]
    for feature, values in stats.items():
        for stat, value in values.items():
            row[f"stats/{feature}/{stat}"] = value
    return row


def _write_status(root: Path, status: dict[str, Any], report: FinalizeReport) -> None:
    status = dict(status)
    status.update({
        "status": report.status,
        "rows": report.rows,
        "episodes": report.episodes,
        "journal_rows": report.journal_rows,
        "frames": report.frames,
        "reason": report.reason,
    })
    write_json_atomic(root / L.STATUS_FILE, status)
