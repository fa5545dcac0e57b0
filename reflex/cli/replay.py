"""``reflex replay``: run a policy offline on recorded sessions and compare with what was recorded."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer


def replay(
    recordings: list[Path] = typer.Argument(
        ..., help="Recording(s): a session directory, a format directory, or a recording file."
    ),
    target: str | None = typer.Option(
        None, "--target", "-t", metavar="TARGET",
        help="Export directory, builtin:NAME, or a YAML file with a target block (local, http, websocket, "
        "webrtc). Default: the target the recording names.",
        show_default=False,
    ),
    fmt: str | None = typer.Option(
        None, "--format", help="Which recorded format to read when a session wrote several (default: best found)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
    plots: Path | None = typer.Option(
        None, "--plots", help="Write per-joint PNG plots and report.html into this directory."
    ),
    fail_on: list[str] = typer.Option(
        [], "--fail-on",
        help="Threshold, e.g. max_abs=1e-3, mse=1e-4, cosine=0.999, step_max_abs=0.01, reproduce. "
        "Repeatable. Exit code 1 when one trips.",
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed for the policy's noise (default: the seed stamped in the recording)."
    ),
    batch_size: int = typer.Option(32, "--batch-size", min=1, help="Observations per batched inference."),
    no_batch: bool = typer.Option(False, "--no-batch", help="Infer one observation at a time."),
    partial: bool = typer.Option(
        False, "--partial", help="Replay the complete part of a truncated recording instead of failing."
    ),
    mapping: list[str] = typer.Option(
        [], "--map", metavar="KEY=VALUE|FILE",
        help="Datasets not recorded by Reflex: which keys/topics are the inputs (state=, action=, camera.NAME=, "
        "task=, joint_names=a,b,..., fps=), or a YAML file with those keys. Repeatable. Default: LeRobot's "
        "usual names.",
    ),
    every: int = typer.Option(1, "--every", min=1, help="Demonstrations: score every N-th frame."),
    episode_every: int = typer.Option(1, "--every-episode", min=1, help="Score every N-th episode."),
    horizon: int | None = typer.Option(
        None, "--horizon", min=1,
        help="Demonstrations: actions compared per frame (default: the policy's chunk length).",
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="REFLEX_API_KEY", help="API key for remote targets.", show_default=False
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show target-level logs."),
) -> None:
    """Replay recorded observations through a target; per-joint errors, determinism, CI thresholds.

    A dataset Reflex did not record (LeRobot v3.0 from any writer; MCAP with Foxglove JointStates
    and image topics) is evaluated open loop: the policy's chunk at each scored frame against the
    demonstrated actions that follow it.

    Exit codes: 0 pass; 1 a --fail-on threshold tripped;
    2 bad input (flags; a missing, corrupt or truncated recording);
    3 the target could not be loaded or reached, or does not fit; 130 Ctrl-C.
    """
    from reflex.errors import EXIT_ABORTED, ReflexError

    _logging(verbose)
    progress = _progress(as_json)
    try:
        from reflex.replay.mapping import parse_map_args
        from reflex.replay.runner import ReplayOptions
        from reflex.replay.runner import replay as run_replay
        from reflex.replay.thresholds import parse_fail_on

        options = ReplayOptions(
            fmt=fmt,
            allow_partial=partial,
            batch=not no_batch,
            batch_size=batch_size,
            seed=seed,
            thresholds=parse_fail_on(fail_on),
            api_key=api_key,
            verbose=verbose,
            on_progress=progress.update if progress is not None else None,
            mapping=parse_map_args(mapping, Path.cwd()),
            every=every,
            episode_every=episode_every,
            horizon=horizon,
        )
        report = run_replay(list(recordings), target, options)
        if plots is not None:
            from reflex.replay.plots import write_plots

            report.plots = write_plots(report, plots, on_progress=progress.update if progress is not None else None)
    except ReflexError as exc:
        _close(progress)
        _fail(str(exc), exc.exit_code, as_json)
    except KeyboardInterrupt:
        _close(progress)
        _fail("interrupted", EXIT_ABORTED, as_json)
    _close(progress)
    if as_json:
        print(json.dumps(report.to_json()))
    else:
        from reflex.replay.report import render_text

        print(render_text(report))
    raise typer.Exit(report.exit_code)


class _Bar:
    """A progress bar on stderr (a terminal only): one task per phase (replaying X, plotting)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True)
        self.tasks: dict[str, Any] = {}
        self.progress.start()

    def update(self, what: str, done: int, total: int) -> None:
        task = self.tasks.get(what)
        if task is None:
            task = self.tasks[what] = self.progress.add_task(what, total=total)
        self.progress.update(task, completed=done, total=total)

    def close(self) -> None:
        self.progress.stop()


def _progress(as_json: bool) -> _Bar | None:
    return _Bar() if not as_json and sys.stderr.isatty() else None


def _close(progress: _Bar | None) -> None:
    if progress is not None:
        progress.close()


def _fail(message: str, code: int, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"ok": False, "exitCode": code, "errors": [message]}))
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
