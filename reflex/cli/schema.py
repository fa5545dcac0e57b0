"""``reflex schema``: write the JSON Schemas generated from the config models into ``schemas/``."""

from __future__ import annotations

from pathlib import Path

import typer


def schema(
    out: Path | None = typer.Option(
        None, "--out", metavar="DIR", help="Write the JSON Schemas here only (default: schemas/ and docs/).",
        show_default=False,
    ),
    docs: Path | None = typer.Option(
        None, "--docs", metavar="DIR", help="Write the config reference (config-reference.md) here.",
        show_default=False,
    ),
    check: bool = typer.Option(False, "--check", help="Exit 1 if the files on disk are stale."),
    where: bool = typer.Option(
        False, "--where", help="Print where the installed package keeps its schemas (for your editor), then exit."
    ),
) -> None:
    """Generate the session-config JSON Schema (and every other published schema).

    With no --out/--docs it regenerates the repository's schemas/ and docs/config-reference.md;
    otherwise it writes only where told.
    """
    from reflex.config.reference import render_reference
    from reflex.schemas import bundled_dir, render_all

    if where:
        typer.echo(str(bundled_dir() / "session.schema.json"))
        return
    if out is None and docs is None:
        out, docs = Path("schemas"), Path("docs")
    stale = []
    outputs: dict[Path, str] = {}
    if out is not None:
        outputs.update({out / rel: text for rel, text in render_all().items()})
    if docs is not None:
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
