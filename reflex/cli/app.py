"""Entry point of the ``reflex`` command.

Only typer is imported at start-up; every command imports what it needs inside its body, so
``reflex --help`` stays fast. Command groups from other modules are registered in ``GROUPS``.

Conventions applied to every command here, in one place: ``-h`` works like ``--help``; help shows
readable metavars (``FILE``, ``TEXT``, ``N``; none for flags); with ``--json`` a usage error is
printed as a JSON object too.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from reflex import __version__

CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="reflex",
    help="Run a trained VLA policy on a robot: safely, fast, and with every session recorded.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT,
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
    "doctor": "reflex.cli.doctor:doctor",
    "schema": "reflex.cli.schema:schema",
    "serve": "reflex.cli.serve:serve",
    "replay": "reflex.cli.replay:replay",
    "export": "reflex.cli.export:export",
    "validate": "reflex.cli.export:validate",
}

# the type label typer would show as "<label>" -> what a person reads in the help
METAVARS = {"path": "PATH", "file": "FILE", "directory": "DIR", "str": "TEXT", "int": "N", "float": "NUMBER"}


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
    app.command(_name, context_settings=CONTEXT)(_load(_ref))  # type: ignore[arg-type, type-var]
for _name, _ref in GROUPS.items():
    _group: Any = _load(_ref)
    _group.info.context_settings = {**CONTEXT, **(_group.info.context_settings or {})}
    app.add_typer(_group, name=_name)


def _type_label(param: Any) -> str:
    """The bare type label of a parameter (typer's own ``<label>`` without the brackets, or click's name)."""
    display = getattr(param, "display_type", None)
    if callable(display):
        try:
            return str(display(None)).strip("<>")
        except Exception:
            pass
    ptype = getattr(param, "type", None)
    return str(getattr(ptype, "name", "text"))


def readable_metavar(param: Any) -> str:
    """What the help shows after an option: nothing for a flag, ``FILE`` for a path, ``a|b`` for a choice."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    label = _type_label(param)
    many = label.startswith("list[") or param.nargs != 1 or getattr(param, "multiple", False)
    if label.startswith("list[") and label.endswith("]"):
        label = label[5:-1]
    if "|" not in label:
        label = METAVARS.get(label.lower(), label.upper())
    return label + ("..." if many else "")


def apply_conventions(command: Any) -> None:
    """Readable metavars on every parameter whose author did not name one, recursively."""
    for param in command.params:
        if getattr(param, "param_type_name", "") == "argument":
            # the name column already reads RECORDINGS...; typer would add a "<list[Path]>" type column
            if hasattr(param, "display_type_rich"):
                param.display_type_rich = lambda ctx: None
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()
        elif param.metavar is None:
            param.metavar = readable_metavar(param)
    make_help = getattr(command, "get_help_option", None)
    if callable(make_help):  # the help option is made per invocation: a flag, so no metavar
        def help_option(ctx: Any, _make: Any = make_help) -> Any:
            option = _make(ctx)
            if option is not None:
                option.metavar = ""
            return option

        command.get_help_option = help_option
    for sub in (getattr(command, "commands", None) or {}).values():
        apply_conventions(sub)


def build() -> Any:
    command = typer.main.get_command(app)
    apply_conventions(command)
    return command


# options whose value may be left out: (command, option) -> the value meant then
OPTIONAL_VALUES = {("connect", "--view"): "auto"}


def fill_optional_values(args: list[str]) -> list[str]:
    """``reflex connect robot.yaml --view`` means ``--view auto``: typer options always take a
    value, so the missing one is filled in when the next word is not one (another option, the
    end, or the session file)."""
    out = list(args)
    for (command, option), default in OPTIONAL_VALUES.items():
        if not out or out[0] != command or option not in out:
            continue
        i = out.index(option)
        following = out[i + 1] if i + 1 < len(out) else None
        if following is None or following.startswith("-") or following.endswith((".yaml", ".yml")):
            out.insert(i + 1, default)
    return out


def main(argv: list[str] | None = None) -> None:
    from reflex.cli.output import wants_json
    from reflex.runtime.signals import hold_until_exit, release_early_signals

    if argv is None:  # the ``reflex`` process itself: signal handlers stay until it exits
        hold_until_exit()
    args = fill_optional_values(sys.argv[1:] if argv is None else argv)
    command: Any = build()
    if args[:1] != ["connect"]:
        release_early_signals()  # only connect takes the signals over (reflex.runtime.signals)
    try:
        code = command.main(args=args, prog_name="reflex", standalone_mode=False)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if not hasattr(exc, "exit_code") or not hasattr(exc, "format_message"):  # not a usage error
            raise
        if wants_json(args):
            import json

            print(json.dumps({"ok": False, "exitCode": exc.exit_code, "errors": [exc.format_message()]}))
        _show_usage_error(exc)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _show_usage_error(exc: Any) -> None:
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)
    except Exception:
        exc.show()
