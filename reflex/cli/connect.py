"""``reflex connect``: run one robot session described by a YAML file."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import typer


def connect(
    config_arg: Path | None = typer.Argument(
        None, metavar="CONFIG", help="YAML file describing the session (or give it with -c/--config).",
        show_default=False,
    ),
    config_opt: Path | None = typer.Option(
        None, "--config", "-c", metavar="FILE", help="YAML file describing the session.", show_default=False
    ),
    record: str | None = typer.Option(
        None, "--record", metavar="DIR",
        help="Recording directory (default ~/.reflex/recordings/<user>/<session>/).",
    ),
    formats: str | None = typer.Option(
        None, "--format", metavar="LIST", help="Comma-separated recording formats (overrides record.formats)."
    ),
    no_record: bool = typer.Option(
        False, "--no-record", help="Disable recording (same as REFLEX_NO_RECORD=1)."
    ),
    resume: bool = typer.Option(
        False, "--resume",
        help="Append episodes to the LeRobot recording in --record DIR: a finished one gets episodes.count more, "
        "an interrupted one continues where it stopped (docs/episodes.md).",
    ),
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="REFLEX_API_KEY", help="API key for remote targets.", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show driver-level logs."),
    check: bool = typer.Option(
        False, "--check",
        help="Probe everything that needs no motion (target, hardware, cameras, recording directory), then exit.",
    ),
    view: str | None = typer.Option(
        None, "--view", metavar="[WHERE]",
        help="Stream the session live to a Rerun viewer: spawn one, serve[:PORT] for a remote viewer, or a "
        "rerun+http://HOST:PORT/proxy URL; alone: spawn with a display, else serve.",
        show_default=False,
    ),
) -> None:
    """Run a closed-loop session: observe, infer, guard, apply (or only log), record."""
    from reflex.cli.output import fail
    from reflex.errors import EXIT_CONFIG, ConfigError, SessionAborted
    from reflex.runtime.signals import SignalGate

    if config_arg is not None and config_opt is not None and config_arg != config_opt:
        fail(f"two configs given ({config_arg} and {config_opt}); pass one", EXIT_CONFIG, as_json)
    config = config_arg or config_opt
    if config is None:
        fail("no config: reflex connect robot.yaml (or -c robot.yaml)", EXIT_CONFIG, as_json)
    _logging(verbose)
    no_record = no_record or os.environ.get("REFLEX_NO_RECORD", "") not in ("", "0", "false")
    # SIGINT, SIGTERM and SIGHUP take one path from here to the exit (docs/safety.md): a signal
    # while the file loads aborts with nothing built; the exit status is the printed exitCode.
    gate = SignalGate()
    gate.install()
    try:
        try:
            gate.act_on_early_signals()
            payload = _run(config, record, formats, no_record, api_key, verbose, check, gate, as_json, view, resume)
        except ConfigError as exc:
            payload = {
                "ok": False,
                "config": str(config),
                "exitCode": exc.exit_code,
                "errors": [str(i) for i in exc.issues],
            }
            _write(sys.stderr, f"error: {exc}")
        except SessionAborted as exc:
            payload = {"ok": False, "config": str(config), "exitCode": exc.exit_code, "stopReason": "aborted",
                       "safeStops": 0, "errors": [str(exc)]}
            _write(sys.stderr, f"aborted: {exc}")
        gate.phase = "done"  # decided: later signals are only counted
        _emit(payload, as_json, check)
    finally:
        gate.release()  # a no-op in the ``reflex`` process itself: handlers stay until it exits
    raise typer.Exit(int(payload["exitCode"]))


def _run(
    config: Path, record: str | None, formats: str | None, no_record: bool, api_key: str | None,
    verbose: bool, check: bool, gate: Any, as_json: bool, view: str | None = None, resume: bool = False,
) -> dict[str, Any]:
    from reflex.config.overrides import parse_formats

    format_list = parse_formats(formats, str(config))
    if check:
        from reflex.runtime.check import check_session_file

        return check_session_file(config, api_key=api_key, record_dir=record, no_record=no_record)
    from reflex.cli.live import LiveStatus, wanted
    from reflex.runtime.session import run_session_file

    watchers = [LiveStatus(sys.stdout)] if wanted(sys.stdout, as_json) else []
    sinks = [_live_view(view, config)] if view is not None else []
    result = run_session_file(
        config, record_dir=record, formats=format_list, no_record=no_record, api_key=api_key,
        verbose=verbose, gate=gate, watchers=watchers, sinks=sinks, resume=resume,  # type: ignore[arg-type]
    )
    return result.to_json()


def _live_view(value: str, config: Path) -> Any:
    """Open the live Rerun view before the session starts (a bad value or URL is bad input)."""
    from reflex.errors import ConfigError, ConfigIssue

    try:
        from reflex.view.stream import ViewError, view_sink
    except ImportError as exc:
        raise ConfigError(str(config), [ConfigIssue("--view", f"needs pip install 'reflex-runtime[rerun]' ({exc})")]) \
            from None
    try:
        sink = view_sink(value)
    except ViewError as exc:
        raise ConfigError(str(config), [ConfigIssue("--view", str(exc))]) from None
    except Exception as exc:  # the viewer could not be spawned or reached
        raise ConfigError(str(config), [ConfigIssue("--view", f"{type(exc).__name__}: {exc}")]) from None
    _write(sys.stderr, f"reflex: {sink.where}")
    return sink


def _emit(payload: dict[str, Any], as_json: bool, check: bool) -> None:
    if as_json:
        _write(sys.stdout, json.dumps(payload))
        return
    if "steps" not in payload and not (check and "checks" in payload):
        return  # an error before a session: already on stderr
    from reflex.cli.render import render_check, render_result

    try:
        (render_check if check else render_result)(payload)
    except OSError:
        _detach_output()


def _write(stream: Any, text: str) -> None:
    """Print, surviving a terminal that is gone (SIGHUP): the exit status must still be the code."""
    try:
        print(text, file=stream, flush=True)
    except OSError:
        _detach_output()


def _detach_output() -> None:
    """stdout/stderr point at a closed terminal or pipe: send them to /dev/null so Python's final
    flush cannot fail and change the exit status."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd)
    os.close(devnull)


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
