"""What every command prints: JSON when ``--json`` was asked for (errors included), text otherwise."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer


def wants_json(argv: list[str] | None = None) -> bool:
    """``--json`` anywhere on the command line (also used before a command could parse its flags)."""
    return "--json" in (sys.argv[1:] if argv is None else argv)


def fail(message: str, code: int, as_json: bool | None = None, **extra: Any) -> NoReturn:
    """Report an error and exit: one JSON object on stdout with ``--json``; always a line on stderr."""
    if as_json if as_json is not None else wants_json():
        print(json.dumps({"ok": False, "exitCode": code, "errors": [message], **extra}))
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)
