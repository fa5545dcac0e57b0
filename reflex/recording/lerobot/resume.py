"""``--resume``: what an episodes recording already holds, and where appending starts.

Read from what reached the disk: the row journal (complete batches only) and the events sidecar,
where the recorder notes which journal episode each take went to (``take`` lines) and every
episode's end with its outcome (``episode_end``, made durable at once). An episode counts only if
its end is there; the take a crash cut short is dropped, never continued. The kept episodes must
be exactly 0..n-1 with every row present: anything else is a gap, and resuming is refused rather
than numbering new episodes into it (the index mix-up of LeRobot #1019).
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


@dataclass
class ResumePlan:
    root: Path
    episodes: list[dict[str, Any]] = field(default_factory=list)  # kept: index, take, task, outcome
    keep_journal_episodes: list[int] = field(default_factory=list)
    next_take: int = 0
    next_journal_episode: int = 0
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def next_index(self) -> int:
        return len(self.episodes)


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
    if status.get("status") != "recording" or not (root / L.JOURNAL_FILE).exists():
        raise ResumeRefused(
            f"{root}: the recording is finished ({status.get('status')}); --resume continues a recording "
            "whose session was cut short (crash, kill, power loss). Record more episodes into a new directory"
        )
    table, _ = read_journal(root / L.JOURNAL_FILE)
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
    plan = ResumePlan(root, status=status, next_take=max(seen_takes, default=-1) + 1)
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
        journal_episodes = takes.get(take, [])
        missing = [e for e in journal_episodes if e not in present]
        if not journal_episodes or missing:
            raise ResumeRefused(
                f"{root}: episode {index} (take {take}) ended but its rows are not in the journal: a gap. "
                "Resuming would mix episode indices; `reflex recordings repair` keeps what is there"
            )
        plan.episodes.append(data)
        plan.keep_journal_episodes.extend(journal_episodes)
    return plan
