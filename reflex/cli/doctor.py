"""``reflex doctor``: check this machine (and optionally a session file) before running a robot."""

from __future__ import annotations

import json
from pathlib import Path

import typer


def doctor(
    config_arg: Path | None = typer.Argument(
        None, metavar="CONFIG", help="A session file: also probe it like `reflex connect --check`.",
        show_default=False,
    ),
    config_opt: Path | None = typer.Option(
        None, "--config", "-c", metavar="FILE", help="A session file (same as the argument).", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="REFLEX_API_KEY", help="API key for remote targets.", show_default=False
    ),
) -> None:
    """Check Python, packages, extras, ONNX Runtime providers, CAN, /dev/shm, video devices, clock.

    Each failing check names the fix. Exit 0 when nothing fails, 1 when something does.
    """
    from reflex.doctor import run_doctor

    report = run_doctor(config_arg or config_opt, api_key)
    if as_json:
        print(json.dumps(report))
    else:
        _render(report)
    raise typer.Exit(report["exitCode"])


def _render(report: dict) -> None:
    from reflex.cli.render import Writer

    out = Writer()
    marks = {"pass": ("ok", "ok"), "fail": ("FAIL", "bad"), "warn": ("warn", "warn"), "info": ("--", "dim")}
    for check in report["checks"]:
        mark, style = marks.get(check["status"], ("?", "dim"))
        out.line(f"{out.paint(f'{mark:<4}', style)} {check['name']}")
        out.para(check["found"], 7)
        if check["fix"] and check["status"] in ("fail", "warn"):
            out.para(f"fix: {check['fix']}", 7)
    failed = report["failed"]
    verdict = out.paint("ready", "ok") if not failed else out.paint(f"{len(failed)} check(s) failed", "bad")
    out.line(f"reflex doctor: {verdict}" + (f" ({', '.join(failed)})" if failed else ""))
