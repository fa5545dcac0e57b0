"""Human-readable rendering of a session result or check report."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def render_result(payload: dict[str, Any]) -> None:
    console = Console(stderr=False)
    ok = payload.get("ok")
    status = "[bold green]ok[/]" if ok else "[bold red]FAILED[/]"
    console.print(f"{status}  {payload.get('config')}  (exit {payload.get('exitCode')})")
    table = Table(show_header=False, box=None, pad_edge=False)
    for key in ("mode", "stopReason", "steps", "appliedSteps", "safeStops", "durationS", "timeToFirstActionS"):
        if key in payload:
            table.add_row(key, str(payload[key]))
    lateness = payload.get("loop", {}).get("latenessMs", {})
    if lateness.get("count"):
        table.add_row("lateness p50/p99 ms", f"{lateness['p50']} / {lateness['p99']}")
    infer = payload.get("stagesMs", {}).get("infer", {})
    if infer.get("count"):
        table.add_row("infer p50/p99 ms", f"{infer['p50']} / {infer['p99']}")
    target = payload.get("target") or {}
    if target:
        table.add_row("target", f"{target.get('kind')} {target.get('providers', '')}")
    recording = payload.get("recording")
    if recording:
        table.add_row("recording", f"{recording.get('path')} {recording.get('formats')}")
        dropped = recording.get("dropped")
        if dropped:
            table.add_row("dropped", str(dropped))
    for key, value in (payload.get("checks") or {}).items():
        table.add_row(key, str(value))
    console.print(table)
    for error in payload.get("errors", []):
        console.print(f"[red]error:[/] {error}")
    for failure in payload.get("safeStopFailures", []):
        console.print(f"[bold red]SAFE STOP FAILED:[/] {failure} — check the robot")
