"""``reflex schema``: write the JSON Schemas generated from the config models into ``schemas/``."""

from __future__ import annotations

from pathlib import Path

import typer


def schema(
    out: Path = typer.Option(Path("schemas"), "--out", help="Directory to write schemas into."),
    docs: Path = typer.Option(Path("docs"), "--docs", help="Directory for the generated config reference."),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the files on disk are stale."),
) -> None:
    """Generate the session-config JSON Schema (and every other published schema)."""
    from reflex.config.reference import render_reference
    from reflex.schemas import render_all

    stale = []
    outputs = {out / rel: text for rel, text in render_all().items()}
    outputs[docs / "config-reference.md"] = render_reference()
    for path, text in outputs.items():
        if check:
            if not path.is_file() or path.read_text() != text:
                stale.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        typer.echo(f"wrote {path}")
    if stale:
        typer.echo("stale schema(s): " + ", ".join(stale) + " (run `reflex schema`)", err=True)
        raise typer.Exit(1)
