"""Start-time checks every camera kind shares: a wrong size or colour order stops the session
before motors are enabled, with a message that names the config field to change."""

from __future__ import annotations

from reflex.errors import SetupError


def check_size(
    camera: str, source: str, expected: tuple[int | None, int | None], got: tuple[int, int]
) -> None:
    """``expected``/``got`` are (width, height); a None in ``expected`` accepts anything."""
    (ew, eh), (w, h) = expected, got
    if (ew is not None and ew != w) or (eh is not None and eh != h):
        want = f"{ew if ew is not None else '*'}x{eh if eh is not None else '*'}"
        raise SetupError(
            f"cameras.{camera}",
            f"{source} delivers {w}x{h} frames, the config expects {want} "
            f"(cameras.{camera}.width/height): change the config or the source",
        )
