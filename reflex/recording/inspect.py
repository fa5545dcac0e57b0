"""What ``reflex recordings list / info / repair`` report: read from the files, nothing cached.

A recording is a directory with ``recording.json`` (written by the hub) and one subdirectory per
format. Probes stay cheap for ``list`` (manifest + file sizes); ``info`` opens each format with
its own library where installed. ``repair`` finishes what a killed runner left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from reflex.config.base import load_object
from reflex.recording.formats import BY_NAME, SPECS
from reflex.recording.manifest import MANIFEST, read_json, write_json_atomic


def default_root() -> Path:
    root = os.environ.get("REFLEX_RECORDINGS_DIR")
    return Path(root).expanduser() if root else Path.home() / ".reflex" / "recordings"


def find_recordings(root: Path, max_depth: int = 3) -> list[Path]:
    """Recording directories under ``root`` (``root`` itself counts), newest first."""
    found: list[Path] = []

    def walk(path: Path, depth: int) -> None:
        if _is_recording(path):
            found.append(path)
            return
        if depth >= max_depth:
            return
        try:
            children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            return
        for child in children:
            walk(child, depth + 1)

    if root.is_dir():
        walk(root, 0)
    return sorted(found, key=_started, reverse=True)


def _is_recording(path: Path) -> bool:
    if (path / MANIFEST).is_file():
        return True
    # a format directory without its marker files (a bare "lerobot/" folder of source code) is not one
    return any(spec.recorded_in(path) for spec in SPECS)


def _started(path: Path) -> float:
    manifest = read_json(path / MANIFEST) or {}
    value = manifest.get("t_start_wall")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status_of(manifest: dict[str, Any] | None) -> str:
    """complete | degraded | repaired | recording (runner alive) | interrupted | unknown."""
    if manifest is None:
        return "unknown"
    status = str(manifest.get("status", "unknown"))
    if status == "recording":
        here = manifest.get("host") in (None, socket.gethostname())
        if not here or not _pid_alive(manifest.get("pid")):
            return "interrupted"
    return status


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):  # a file removed while we walk
                total += (Path(dirpath) / name).stat().st_size
    return total


def _iso(t: Any) -> str | None:
    if not isinstance(t, (int, float)):
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def summarize(path: Path) -> dict[str, Any]:
    manifest = read_json(path / MANIFEST)
    m = manifest or {}
    block = m.get("formats")
    formats_block: dict[str, Any] = block if isinstance(block, dict) else {}
    formats = list(formats_block) or [s.name for s in SPECS if (path / s.directory).is_dir()]
    duration = m.get("duration_s")
    steps = m.get("steps")
    if duration is None:  # interrupted: ask the JSONL file, the cheapest to read from its ends
        jsonl = BY_NAME["jsonl"]
        first, last, count = _jsonl_span(jsonl.target(path / jsonl.directory))
        if first is not None and last is not None:
            duration, steps = round(last - first, 3), count
    return {
        "path": str(path),
        "sessionId": m.get("session_id", path.name),
        "status": status_of(manifest),
        "started": _iso(m.get("t_start_wall")),
        "durationS": duration,
        "steps": steps,
        "mode": m.get("mode"),
        "task": m.get("task"),
        "formats": formats,
        "dropped": {name: (v or {}).get("dropped") for name, v in formats_block.items()},
        "sizeBytes": _size(path),
    }


def _jsonl_span(path: Path) -> tuple[float | None, float | None, int | None]:
    """First and last step tick of a JSONL recording (last complete line), and the last step + 1."""
    if not path.is_file():
        return None, None, None
    first = last = None
    last_step = None
    with path.open("rb") as fh:
        for _ in range(64):  # header, first chunk and events come before step 0
            line = fh.readline()
            obj = _loads(line)
            if obj and obj.get("type") == "step":
                first = obj.get("t_tick")
                break
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 256 * 1024))
        for line in reversed(fh.read().splitlines()):
            obj = _loads(line)
            if obj and obj.get("type") == "step":
                last, last_step = obj.get("t_tick"), obj.get("step")
                break
    count = None if last_step is None else int(last_step) + 1
    return first, last, count


def _loads(line: bytes) -> dict[str, Any] | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# -- info ----------------------------------------------------------------------------------------
def info(path: Path) -> dict[str, Any]:
    manifest = read_json(path / MANIFEST) or {}
    out = summarize(path)
    out.update({
        "configHash": manifest.get("config_hash"),
        "modelHash": manifest.get("model_hash"),
        "seed": manifest.get("seed"),
        "softwareVersion": manifest.get("software_version"),
        "controlRateHz": manifest.get("control_rate_hz"),
        "cameras": manifest.get("camera_names"),
        "lagging": manifest.get("lagging"),
    })
    details: dict[str, Any] = {}
    block = manifest.get("formats")
    recorded: dict[str, Any] = block if isinstance(block, dict) else {}
    for name in out["formats"]:
        spec = BY_NAME.get(name)
        detail: dict[str, Any] = dict(recorded.get(name) or {})
        fmt_dir = path / (spec.directory if spec else name)
        detail["dir"] = str(fmt_dir)
        detail["sizeBytes"] = _size(fmt_dir) if fmt_dir.exists() else 0
        if spec is not None and fmt_dir.exists():
            try:
                detail.update(load_object(spec.probe)(spec.target(fmt_dir)))
            except ImportError as exc:
                detail["probe"] = f"cannot open: {exc} (install reflex-runtime[{name}])"
            except Exception as exc:
                detail["probe"] = f"cannot open: {type(exc).__name__}: {exc}"
        elif not fmt_dir.exists():
            detail["state"] = "missing"
        details[name] = detail
    out["details"] = details
    return out


def probe_jsonl(path: Path) -> dict[str, Any]:
    counts: dict[str, int] = {}
    torn = ended = False
    with path.open("rb") as fh:
        for line in fh:
            obj = _loads(line)
            if obj is None:
                torn = True
                continue
            kind = str(obj.get("type"))
            counts[kind] = counts.get(kind, 0) + 1
            ended = ended or kind == "end"
    state = "complete" if ended else "interrupted"
    return {"state": state, "lines": counts, "tornLastLine": torn}


def probe_lerobot(d: Path) -> dict[str, Any]:
    from reflex.recording.lerobot import layout as L
    from reflex.recording.lerobot.repair import lerobot_state

    status = read_json(d / L.STATUS_FILE) or {}
    info_json = read_json(d / L.INFO_PATH) or {}
    return {
        "state": lerobot_state(d),
        "rows": info_json.get("total_frames"),
        "episodes": info_json.get("total_episodes"),
        "fps": status.get("fps"),
        "cameras": status.get("cameras"),
        "reason": status.get("reason") or None,
    }


def probe_mcap(path: Path) -> dict[str, Any]:
    from mcap.reader import make_reader

    from reflex.recording.mcap_repair import mcap_is_complete

    if not mcap_is_complete(path):
        return {"state": "interrupted"}
    with path.open("rb") as fh:
        summary = make_reader(fh).get_summary()
    assert summary is not None
    counts = summary.statistics.channel_message_counts if summary.statistics else {}
    topics = {ch.topic: counts.get(cid, 0) for cid, ch in summary.channels.items()}
    return {"state": "complete", "messages": topics}


def probe_rerun(path: Path) -> dict[str, Any]:
    from reflex.recording.rerun_recorder import rrd_is_complete

    return {"state": "complete" if rrd_is_complete(path) else "interrupted"}


# -- repair --------------------------------------------------------------------------------------
def repair(path: Path) -> dict[str, Any]:
    """Finish every format a dead runner left open; a no-op on finished recordings."""
    manifest = read_json(path / MANIFEST)
    if manifest is not None and status_of(manifest) == "recording":
        raise RuntimeError(f"{path}: still being recorded by process {manifest.get('pid')}")
    results: dict[str, Any] = {}
    for spec in SPECS:
        name, d = spec.name, path / spec.directory
        if not d.is_dir():
            continue
        try:
            results[name] = load_object(spec.repair)(spec.target(d))
        except Exception as exc:
            results[name] = {"status": "failed", "repaired": False, "error": f"{type(exc).__name__}: {exc}"}
    if manifest is not None and status_of(manifest) == "interrupted":
        manifest["status"] = "repaired"
        manifest["repair"] = {"t_wall": time.time(), "formats": results}
        write_json_atomic(path / MANIFEST, manifest)
    return {"path": str(path), "formats": results}


def repair_jsonl(path: Path) -> dict[str, Any]:
    """Drop a torn last line and close the file with an ``end`` line marked ``repaired``."""
    if not path.is_file():
        return {"status": "missing", "repaired": False}
    data = path.read_bytes()
    lines = data.splitlines(keepends=True)
    keep = len(lines)
    while keep and _loads(lines[keep - 1]) is None:
        keep -= 1
    last = _loads(lines[keep - 1]) if keep else None
    if last is not None and last.get("type") == "end" and keep == len(lines):
        return {"status": "complete", "repaired": False}
    counts: dict[str, int] = {}
    for line in lines[:keep]:
        obj = _loads(line)
        kind = str(obj.get("type")) if obj else "?"
        counts[kind] = counts.get(kind, 0) + 1
    body = b"".join(lines[:keep])
    if body and not body.endswith(b"\n"):
        body += b"\n"
    end = {"type": "end", "repaired": True, "counts": counts, "droppedTornLines": len(lines) - keep}
    tmp = path.with_name(path.name + ".repair")
    with tmp.open("wb") as fh:
        fh.write(body + json.dumps(end).encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return {"status": "repaired", "repaired": True, "lines": counts, "droppedTornLines": len(lines) - keep}
