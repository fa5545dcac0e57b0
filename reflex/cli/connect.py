"""``reflex connect``: run one robot session described by a YAML file."""

from __future__ import annotations

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
    api_key: str | None = typer.Option(
        None, "--api-key", envvar="REFLEX_API_KEY", help="API key for remote targets.", show_default=False
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show driver-level logs."),
    check: bool = typer.Option(
        False, "--check",
        help="Probe everything that needs no motion (target, hardware, cameras, recording directory), then exit.",
    ),
) -> None:
    """Run a closed-loop session: observe, infer, guard, apply (or only log), record."""
    from reflex.cli.output import fail
    from reflex.config.overrides import parse_formats
    from reflex.errors import EXIT_CONFIG, ConfigError

    if config_arg is not None and config_opt is not None and config_arg != config_opt:
        fail(f"two configs given ({config_arg} and {config_opt}); pass one", EXIT_CONFIG, as_json)
    config = config_arg or config_opt
    if config is None:
        fail("no config: reflex connect robot.yaml (or -c robot.yaml)", EXIT_CONFIG, as_json)
    _logging(verbose)
    no_record = no_record or os.environ.get("REFLEX_NO_RECORD", "") not in ("", "0", "false")
    try:
        format_list = parse_formats(formats, str(config))
        if check:
            from reflex.runtime.check import check_session_file

            report = check_session_file(config, api_key=api_key)
            _emit_check(report, as_json)
            raise typer.Exit(report["exitCode"])
        from reflex.runtime.session import run_session_file

        result = run_session_file(
            config,
            record_dir=record,
            formats=format_list,
            no_record=no_record,
            api_key=api_key,
            verbose=verbose,
        )
    except ConfigError as exc:
        payload = {
            "ok": False,
            "config": str(config),
            "exitCode": exc.exit_code,
            "errors": [str(i) for i in exc.issues],
        }
        if as_json:
            print(json.dumps(payload))
        print(f"error: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    payload = result.to_json()
    if as_json:
        print(json.dumps(payload))
    else:
        from reflex.cli.render import render_result

        render_result(payload)
    raise typer.Exit(result.exit_code)


def _emit_check(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    from reflex.cli.render import render_check

    render_check(report)


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
