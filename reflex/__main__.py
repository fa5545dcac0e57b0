"""``python -m reflex`` and the ``reflex`` command.

Signals are caught from the first line, before the CLI (typer, pydantic) is imported: a Ctrl-C
while the process starts is then handled like one during connect, never a traceback.
"""

from reflex.runtime.signals import catch_early_signals


def run() -> None:
    catch_early_signals()
    from reflex.cli.app import main

    main()


if __name__ == "__main__":
    run()
