"""``reflex connect``: run one robot session described by a YAML file."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer


def connect(
    config: Path = typer.Option(..., "--config", help="YAML file describing the session."),
    record: str | None = typer.Option(
        None, "--record", help="Recording directory (default ~/.reflex/recordings/<user>/<session>/)."
    ),
    formats: str | None = typer.Option(
        None, "--format", help="Comma-separated recording formats (overrides record.formats)."
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
        False, "--check", help="Validate and resolve everything that needs no motion, then exit."
    ),
) -> None:
    """Run a closed-loop session: observe, infer, guard, apply (or only log), record."""
    from reflex.config.overrides import parse_formats
    from reflex.errors import ConfigError

    _logging(verbose)
    no_record = no_record or os.environ.get("REFLEX_NO_RECORD", "") not in ("", "0", "false")
    try:
        format_list = parse_formats(formats, str(config))
        if check:
            from reflex.runtime.check import check_session_file

            report = check_session_file(config, api_key=api_key)
            _emit(report, as_json)
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
    _emit(result.to_json(), as_json)
    raise typer.Exit(result.exit_code)


def _emit(payload: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(payload))
        return
    from reflex.cli.render import render_result

    render_result(payload)


def _logging(verbose: bool) -> None:
    import logging

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
