"""``--resume``: what an episodes recording already holds, and where appending starts.

Two cases. A **finished** dataset (status ``complete``/``repaired``) is appended to: its files
stay as they are until the new session is finalized, which adds the new episodes after them the
way LeRobot's own writer resumes (next data, episodes and video files; tasks table extended; totals
and stats updated). What the dataset held is snapshotted into the status file (``append_base``) so
that finishing the append (at close, or by ``reflex recordings repair`` after a crash) derives
everything from that snapshot and the journal, and can simply be redone.

An **interrupted** recording (status ``recording``) continues. Read from what reached the disk:
the row journal (complete batches only) and the events sidecar, where the recorder notes which
journal episode each take went to (``take`` lines) and every episode's end with its outcome
(``episode_end``, made durable at once). An episode counts only if its end is there; the take a
crash cut short is dropped, never continued. The kept episodes must be exactly 0..n-1 with every
row present (the appended-to dataset's own from its files): anything else is a gap, and resuming
is refused rather than numbering new episodes into it (the index mix-up of LeRobot #1019).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reflex.recording.lerobot import layout as L
from reflex.recording.manifest import read_json

KEPT_OUTCOMES = ("success", "failure", "done")
MAX_EVENT_LINE = 1 << 20


class ResumeRefused(Exception):
    """The recording cannot be resumed; the message says why and what to do."""


APPENDABLE = ("complete", "repaired")


@dataclass
class ResumePlan:
    root: Path
    episodes: list[dict[str, Any]] = field(default_factory=list)  # kept: index, take, task, outcome
    keep_journal_episodes: list[int] = field(default_factory=list)
    next_take: int = 0
    next_journal_episode: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    # the finished dataset appended to (None: a plain recording cut short); its episodes are the
    # base the session's own ``episodes.count`` comes on top of
    base: dict[str, Any] | None = None

    @property
    def next_index(self) -> int:
        return len(self.episodes)

    @property
    def base_episodes(self) -> int:
        return 0 if self.base is None else int(self.base["episodes"])

    @property
    def appending(self) -> bool:
        """A finished dataset, not yet touched: the recorder snapshots it when it opens."""
        return self.status.get("status") in APPENDABLE


def mismatches(status: dict[str, Any], mine: dict[str, Any]) -> list[str]:
    """The fields of ``mine`` (recording.json's fps, joints, cameras, features, image_cameras)
    the recording has otherwise, each as ``field: recorded X, this session Y``."""
    out = []
    for key, value in mine.items():
        if key in status and status[key] != value:
            recorded = status[key]
            if key == "features":  # long: name the features that differ
                differ = sorted(k for k in set(recorded) | set(value) if recorded.get(k) != value.get(k))
                out.append(f"features ({', '.join(differ)}) differ")
            else:
                out.append(f"{key}: recorded {recorded}, this session {value}")
    return out


def _events(path: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not path.exists():
        return out
    with path.open("r", encoding="utf-8") as fh:
        for line in fh:
            if len(line) > MAX_EVENT_LINE or not line.endswith("\n"):
                break  # torn by the crash: nothing after it was written either
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line torn by an earlier crash, ended by the resume after it
            if isinstance(item, dict):
                out.append(item)
    return out


def plan_resume(root: Path) -> ResumePlan:
    """Raises :class:`ResumeRefused`."""
    from reflex.recording.lerobot.journal import read_journal

    status = read_json(root / L.STATUS_FILE)
    if status is None:
        raise ResumeRefused(f"{root}: no LeRobot recording to resume (no {L.STATUS_FILE})")
    state = status.get("status")
    base = status.get("append_base") if state == "recording" else None
    if state in APPENDABLE:
        base = _snapshot(root, status)
    elif state != "recording":
        raise ResumeRefused(f"{root}: holds no dataset to append to (status {state}: {status.get('reason', '')})")
    elif base is None and not (root / L.JOURNAL_FILE).exists():
        raise ResumeRefused(f"{root}: the recording was cut short before its journal was written; "
                            "`reflex recordings repair` finishes it")
    base_n = 0 if base is None else int(base["episodes"])
    table, _ = read_journal(root / L.JOURNAL_FILE) if state == "recording" else (None, True)
    present = set() if table is None else set(table.column(L.EPISODE_COLUMN).to_pylist())
    takes: dict[int, list[int]] = {}
    ends: dict[int, dict[str, Any]] = {}
    for item in _events(root / L.EVENTS_FILE):
        if item.get("type") == "take":
            takes.setdefault(int(item["take"]), []).append(int(item["journal_episode"]))
        elif item.get("kind") == "episode_end" and isinstance(item.get("data"), dict):
            data = item["data"]
            if data.get("outcome") in (*KEPT_OUTCOMES, "re-record"):
                ends[int(data["take"])] = data
    seen_takes = set(takes) | set(ends)
    plan = ResumePlan(root, status=status, next_take=max(seen_takes, default=-1) + 1, base=base)
    plan.next_journal_episode = max([*present, *(e for es in takes.values() for e in es)], default=-1) + 1
    for take in sorted(ends):
        data = ends[take]
        if data["outcome"] == "re-record":
            continue
        index = int(data["index"])
        if index != len(plan.episodes):
            have = [e["index"] for e in plan.episodes]
            raise ResumeRefused(
                f"{root}: episode {index} (take {take}) follows episodes {have}: a gap. Resuming would mix "
                "episode indices; `reflex recordings repair` keeps what is there as it is"
            )
        if index < base_n:  # in the finished dataset: its rows are there, not in the journal
            plan.episodes.append(data)
            continue
        journal_episodes = takes.get(take, [])
        missing = [e for e in journal_episodes if e not in present]
        if not journal_episodes or missing:
            raise ResumeRefused(
                f"{root}: episode {index} (take {take}) ended but its rows are not in the journal: a gap. "
                "Resuming would mix episode indices; `reflex recordings repair` keeps what is there"
            )
        plan.episodes.append(data)
        plan.keep_journal_episodes.extend(journal_episodes)
    if len(plan.episodes) < base_n:
        raise ResumeRefused(
            f"{root}: the dataset holds {base_n} episodes but the events record an outcome for "
            f"{len(plan.episodes)} of them (a recording made without episodes, or repaired after a "
            "crash cut an episode short): appending would number episodes into a gap"
        )
    return plan


def _snapshot(root: Path, status: dict[str, Any]) -> dict[str, Any]:
    """What a finished dataset holds, for appending after it: its info, stats, tasks and the
    files its last episode went to (LeRobot resumes into the files after those)."""
    import pyarrow.parquet as pq

    info = read_json(root / L.INFO_PATH)
    if info is None or info.get("codebase_version") != L.CODEBASE_VERSION:
        raise ResumeRefused(f"{root}: no readable {L.INFO_PATH} (LeRobot {L.CODEBASE_VERSION}) to append to")
    files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
    tasks_path = root / L.TASKS_PATH
    if not files or not tasks_path.exists():
        raise ResumeRefused(f"{root}: no episodes or tasks metadata to append to")
    last = pq.read_table(files[-1]).to_pylist()[-1]
    total = int(info["total_episodes"])
    if int(last["episode_index"]) != total - 1 or int(last["dataset_to_index"]) != int(info["total_frames"]):
        raise ResumeRefused(f"{root}: meta/info.json and meta/episodes disagree on the last episode: "
                            "appending would number episodes into a gap")
    video_keys = [k for k, f in info["features"].items() if f.get("dtype") == "video"]
    for key in video_keys:
        if (last[f"videos/{key}/chunk_index"], last[f"videos/{key}/file_index"]) != L.file_slot(total - 1):
            raise ResumeRefused(f"{root}: {key} is not stored one file per episode (Reflex's layout)")
    task_rows = sorted(pq.read_table(tasks_path).select(["task_index", "task"]).to_pylist(),
                       key=lambda r: int(r["task_index"]))
    return {
        "episodes": total,
        "frames": int(info["total_frames"]),
        "tasks": [str(r["task"]) for r in task_rows],
        "info": info,
        "stats": read_json(root / L.STATS_PATH) or {},
        "data_slot": [int(last["data/chunk_index"]), int(last["data/file_index"])],
        "episodes_slot": [int(last["meta/episodes/chunk_index"]), int(last["meta/episodes/file_index"])],
        "status": {k: status.get(k) for k in ("status", "rows", "episodes", "journal_rows", "frames", "reason")},
    }
