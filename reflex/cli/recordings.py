"""``reflex recordings``: list what was recorded, show one recording, repair after a crash."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from reflex.cli.output import fail

app = typer.Typer(
    name="recordings", help="List, inspect and repair session recordings.", no_args_is_help=True,
    add_completion=False,
)


def _human_size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return "?"


@app.command("list")
def list_(
    root: Path | None = typer.Argument(
        None, help="Where to look (default $REFLEX_RECORDINGS_DIR or ~/.reflex/recordings)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Every recording under ROOT, newest first: when, how long, formats, drops, status."""
    from reflex.recording.inspect import default_root, find_recordings, summarize

    base = root or default_root()
    rows = [summarize(p) for p in find_recordings(base)]
    if as_json:
        print(json.dumps({"root": str(base), "recordings": rows}))
        return
    from reflex.cli.render import Writer

    out = Writer()
    if not rows:
        out.line(f"no recordings under {base}")
        return
    for r in rows:
        # whole ids and paths, never cut: one recording is a few lines, the terminal wraps long ones
        drops = sum(v for v in (r["dropped"] or {}).values() if v)
        status = out.paint(r["status"], _status_style(r["status"]))
        out.line(f"{r['sessionId']}  {status}")
        facts = [
            f"started {r['started']}" if r["started"] else "start unknown",
            "duration ?" if r["durationS"] is None else f"{r['durationS']:.1f} s",
            f"{r['steps']} steps" if r["steps"] is not None else "steps ?",
            ", ".join(r["formats"]) or "no formats",
            f"{drops} dropped",
            _human_size(r["sizeBytes"]),
        ]
        out.para(" · ".join(facts))
        out.line("  " + str(r["path"]))
    out.line(f"{len(rows)} recording(s) under {base}")


@app.command("info")
def info(
    path: Path = typer.Argument(..., help="A recording directory."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """One recording in detail: per-format files, counts, state, drops, hashes."""
    from reflex.recording.inspect import info as recording_info

    if not path.is_dir():
        fail(f"{path}: not a directory", 2, as_json)
    data = recording_info(path.resolve())
    if as_json:
        print(json.dumps(data, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{data['sessionId']}[/]  {_status_markup(data['status'])}  {data['path']}")
    table = Table(show_header=False, box=None, pad_edge=False)
    for key in ("started", "durationS", "steps", "mode", "task", "controlRateHz", "cameras", "configHash",
                "modelHash", "seed", "softwareVersion", "lagging"):
        table.add_row(key, str(data.get(key)))
    console.print(table)
    for name, detail in data["details"].items():
        console.print(f"[bold]{name}[/]  {detail.get('state', '?')}  {_human_size(detail.get('sizeBytes'))}  "
                      f"dropped={detail.get('dropped', '?')}  {detail.get('dir')}")
        for key, value in detail.items():
            if key not in ("state", "sizeBytes", "dropped", "dir"):
                console.print(f"  {key}: {value}")
    if data["status"] == "interrupted":
        console.print(f"[yellow]the runner died while recording: run `reflex recordings repair {path}`[/]")


@app.command("repair")
def repair(
    path: Path = typer.Argument(..., help="A recording directory left by a runner that died."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Finish every format a killed runner left open (no-op on finished recordings)."""
    from reflex.recording.inspect import repair as repair_recording

    if not path.is_dir():
        fail(f"{path}: not a directory", 2, as_json)
    try:
        data = repair_recording(path.resolve())
    except RuntimeError as exc:
        fail(str(exc), 1, as_json)
    failed = [n for n, r in data["formats"].items() if r.get("status") == "failed"]
    if as_json:
        print(json.dumps(data, default=str))
    else:
        for name, result in data["formats"].items():
            typer.echo(f"{name}: {result.get('status')}" + (f" ({result.get('error') or result.get('reason')})"
                                                           if result.get("error") or result.get("reason") else ""))
    raise typer.Exit(1 if failed else 0)


def _status_style(status: str) -> str:
    return {"complete": "ok", "interrupted": "bad", "degraded": "warn"}.get(status, "bold")


def _status_markup(status: str) -> str:
    colour = {"complete": "green", "repaired": "cyan", "degraded": "yellow", "interrupted": "red",
              "recording": "blue"}.get(status, "white")
    return f"[{colour}]{status}[/]"
