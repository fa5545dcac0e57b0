"""Entry point of the ``reflex`` command.

Only typer is imported at start-up; every command imports what it needs inside its body, so
``reflex --help`` stays fast. Command groups from other modules are registered in ``GROUPS``.
"""

from __future__ import annotations

import importlib

import typer

from reflex import __version__

app = typer.Typer(
    name="reflex",
    help="Run a trained VLA policy on a robot: safely, fast, and with every session recorded.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# name -> "module:attribute" of a typer.Typer, imported when the CLI starts (modules stay light).
GROUPS: dict[str, str] = {
    "camera": "reflex.cli.camera:app",
    "can": "reflex.cli.can:app",
    "recordings": "reflex.cli.recordings:app",
}
# name -> "module:function" of a single command.
COMMANDS: dict[str, str] = {
    "connect": "reflex.cli.connect:connect",
    "schema": "reflex.cli.schema:schema",
    "serve": "reflex.cli.serve:serve",
    "replay": "reflex.cli.replay:replay",
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reflex {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Reflex: the open runtime between a trained VLA policy and a real robot."""


def _load(ref: str) -> object:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


for _name, _ref in COMMANDS.items():
    app.command(_name)(_load(_ref))  # type: ignore[arg-type, type-var]
for _name, _ref in GROUPS.items():
    app.add_typer(_load(_ref), name=_name)  # type: ignore[arg-type]


def main() -> None:
    app()
