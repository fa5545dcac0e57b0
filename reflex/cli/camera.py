"""``reflex camera``: publish a source into shared memory, list live channels, save a snapshot.

Only typer and the standard library are imported here; everything else loads inside the command.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

import typer

app = typer.Typer(
    help="Camera channels in shared memory: publish a source, list channels, snapshot a frame.",
    no_args_is_help=True,
)

EXIT_USAGE = 2
EXIT_SETUP = 3
HUNG_AFTER_S = 2.0  # a live publisher whose loop has not run for this long is reported as hung


@app.command("publish")
def publish_cmd(
    name: str = typer.Argument(..., help="Channel name; a session reads it with `kind: shm, name: NAME`."),
    source: str = typer.Option(
        ..., "--source", "-s", help="pattern | video:PATH | v4l2:DEVICE (or a bare /dev/videoN / file)."
    ),
    width: int | None = typer.Option(None, help="Frame width (pattern size, else requested/scaled)."),
    height: int | None = typer.Option(None, help="Frame height."),
    fps: float | None = typer.Option(
        None, help="Frames per second (pattern default 30, 0 = as fast as possible; video: override)."
    ),
    pixel_format: str = typer.Option("rgb24", "--pixel-format", help="Channel colour order: rgb24 or bgr24."),
    slots: int = typer.Option(4, min=2, help="Ring slots in the channel."),
    frames: int = typer.Option(0, min=0, help="Stop after this many frames (0 = run until stopped)."),
    duration: float | None = typer.Option(None, min=0, help="Stop after this many seconds."),
    loop: bool = typer.Option(True, "--loop/--no-loop", help="Loop a video file."),
    fourcc: str = typer.Option("MJPG", help="V4L2 pixel format to request."),
    backend: str = typer.Option("auto", help="V4L2 decoder: auto, pyav or opencv."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Publish frames from a source into shared-memory channel NAME until stopped (Ctrl-C, SIGTERM)."""
    from reflex.cameras.publisher import publish
    from reflex.cameras.sources.base import SourceError
    from reflex.cameras.sources.factory import open_source
    from reflex.shm.segments import ChannelError

    if pixel_format not in ("rgb24", "bgr24"):
        _fail(EXIT_USAGE, f"--pixel-format {pixel_format!r}: expected rgb24 or bgr24")
    if backend not in ("auto", "pyav", "opencv"):
        _fail(EXIT_USAGE, f"--backend {backend!r}: expected auto, pyav or opencv")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())

    def ready(writer: Any, info: Any) -> None:
        if writer.replaced is not None:
            _say(quiet, f"took over stale channel: {writer.replaced.describe()}")
        h = writer.header
        _say(
            quiet,
            f"publishing '{name}': {h.width}x{h.height} {h.pixel_format} from {info.description} "
            f"-> {writer.path} (pid {h.pid}); Ctrl-C to stop",
        )

    try:
        src = open_source(
            source, width=width, height=height, fps=fps, loop=loop, fourcc=fourcc,
            backend=backend, stop=stop,  # type: ignore[arg-type]
        )  # fmt: skip
        stats = publish(
            name, src, pixel_format=pixel_format, slots=slots, max_frames=frames,
            duration_s=duration, stop=stop, on_ready=ready,
        )  # fmt: skip
    except ValueError as exc:
        _fail(EXIT_USAGE, f"camera publish {name}: {exc}")
    except (SourceError, ChannelError, OSError) as exc:
        _fail(EXIT_SETUP, f"camera publish {name}: {exc}")
    _say(quiet, f"stopped '{name}' after {stats.frames} frames ({stats.fps:.1f} fps); channel removed")


@app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    clean: bool = typer.Option(False, "--clean", help="Remove channels whose publisher is gone."),
) -> None:
    """Show the channels in shared memory: size, rate, age of the newest frame, publisher state."""
    from reflex.shm.segments import channel_names, remove_all_stale, shm_dir

    removed = remove_all_stale() if clean else []
    rows = [_describe(name) for name in channel_names()]
    if as_json:
        typer.echo(json.dumps({"channels": rows, "removed": [r.path for r in removed]}, indent=2))
        return
    for info in removed:
        typer.echo(f"removed stale channel {info.describe()}")
    if not rows:
        typer.echo(f"no camera channels in {shm_dir()}")
        return
    typer.echo(
        f"{'NAME':<16} {'SIZE':>9} {'FORMAT':<6} {'FPS':>7} {'AGE ms':>9} {'FRAMES':>8} {'PID':>7}  "
        "STATE  SOURCE"
    )
    for r in rows:
        size = f"{r['width']}x{r['height']}" if "width" in r else "?"
        age = "-" if r.get("ageMs") is None else f"{r['ageMs']:.1f}"
        fps = "-" if r.get("fps") is None else f"{r['fps']:.1f}"
        typer.echo(
            f"{r['name']:<16} {size:>9} {r.get('pixelFormat', '?'):<6} {fps:>7} {age:>9} "
            f"{r.get('frames', 0):>8} {r.get('pid', 0):>7}  {r['state']:<6} "
            f"{r.get('source', r.get('error', ''))}"
        )


@app.command("snapshot")
def snapshot_cmd(
    name: str = typer.Argument(..., help="Channel name."),
    output: str | None = typer.Option(None, "--output", "-o", help="PNG file to write (default NAME.png)."),
    wait: float = typer.Option(2.0, min=0, help="Seconds to wait for the channel and a first frame."),
) -> None:
    """Save the newest frame of a channel as an RGB PNG."""
    from PIL import Image

    from reflex.shm.layout import LayoutError
    from reflex.shm.reader import ShmReader
    from reflex.shm.segments import ChannelError

    try:
        reader = ShmReader.attach(name, wait_s=wait)
    except (ChannelError, LayoutError, ValueError) as exc:
        _fail(EXIT_SETUP, f"camera snapshot {name}: {exc}")
    try:
        reader.wait_new(0, wait, poll_s=0.01)
        data = reader.read_rgb()
        if data is None:
            _fail(EXIT_SETUP, f"camera snapshot {name}: no frame within {wait:g} s")
        path = Path(output or f"{name}.png")
        Image.fromarray(data.image).save(path)
        age_ms = (time.monotonic() - data.t_capture) * 1e3
        typer.echo(
            f"{path}: frame {data.frame_number} of '{name}', {reader.header.width}x{reader.header.height}, "
            f"{age_ms:.1f} ms old"
        )
    finally:
        reader.close()


def _describe(name: str) -> dict[str, Any]:
    """One row of `reflex camera list`."""
    from reflex.shm.layout import LayoutError
    from reflex.shm.reader import ShmReader

    try:
        reader = ShmReader.attach(name)
    except (LayoutError, OSError, RuntimeError) as exc:
        return {"name": name, "state": "invalid", "error": str(exc)}
    try:
        h = reader.header
        view = reader.view()
        t_last = view.t_capture if view is not None else None
        del view  # a view pins the mapping; drop it before close()
        now = time.monotonic()
        alive = reader.publisher_alive()
        state = reader.state()
        if not alive:
            state = "stale"
        elif state == "live" and reader.heartbeat_age(now) > HUNG_AFTER_S:
            state = "hung"
        return {
            "name": name,
            "path": str(reader.path),
            "width": h.width,
            "height": h.height,
            "pixelFormat": h.pixel_format,
            "fps": round(reader.fps_measured(), 2) if t_last is not None else None,
            "fpsNominal": h.fps_nominal,
            "ageMs": round((now - t_last) * 1e3, 2) if t_last is not None else None,
            "frames": reader.latest_number(),
            "pid": h.pid,
            "state": state,
            "source": h.source,
        }
    finally:
        reader.close()


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        typer.echo(message, err=True)


def _fail(code: int, message: str) -> NoReturn:
    from reflex.cli.output import fail

    fail(message, code)
