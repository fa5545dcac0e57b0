"""What bounding outside input costs, and what refusing hostile input costs, measured in one run.

- per-call connector command: the bounded reader (one selector loop, stdout cap, stderr tail)
  against ``subprocess.communicate`` (unbounded) on the same command — the baseline;
- config loading: a normal session file (baseline) against the refusal of a billion-laughs file,
  a 100 000-deep file and a file with a repeated key;
- image decoding: decoding a 640x480 PNG (baseline) against refusing a 13000x13000 PNG bomb from
  its header, with the peak RSS of this process before and after.

Every figure is printed in absolute numbers and as a ratio against its baseline.

Usage: python bench/input_bounds_bench.py [--calls 40]
"""

from __future__ import annotations

import argparse
import io
import statistics
import struct
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from reflex.config.loader import load_session_config  # noqa: E402
from reflex.errors import ConfigError  # noqa: E402
from reflex.hardware.subprocess.process import CommandSpec, run_once, start  # noqa: E402
from reflex.wire.jpeg import ImageTooLarge, decode_image  # noqa: E402

BASE = "target: {kind: local, export: builtin:demo}\nhardware: {kind: sim}\ncameras: {top: {kind: sim}}\n"


def median_ms(fn: Callable[[], object], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def peak_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def row(name: str, ms: float, base_ms: float) -> None:
    print(f"  {name:<44} {ms:9.3f} ms   x{ms / base_ms:7.2f}")


def bench_per_call(calls: int) -> None:
    code = "import sys; sys.stdin.read(); print('{\"state\": [' + ','.join(['0.1'] * 14) + ']}')"
    spec = CommandSpec("observe_command", "bench", (sys.executable, "-S", "-c", code), Path("."), {})
    request = b'{"v": 1, "op": "observe"}\n'

    def unbounded() -> object:
        proc = start(spec, {})
        return proc.communicate(request, timeout=10)

    base = median_ms(unbounded, calls)
    bounded = median_ms(lambda: run_once(spec, request, 10.0, {}), calls)
    print(f"per-call command (median of {calls}):")
    row("subprocess.communicate (baseline)", base, base)
    row("run_once, bounded", bounded, base)


def bench_config(calls: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="reflex-bench-"))
    files = {
        "normal session (baseline)": BASE,
        "billion laughs (refused)": BASE + 'l0: &l0 ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
            f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]\n" for i in range(1, 9)),
        "100000-deep nesting (refused)": BASE + "task: " + "[" * 100_000 + "\n",
        "repeated key (refused)": "mode: dry_run\n" + BASE + "mode: apply_actions\n",
    }
    timings = {}
    for name, text in files.items():
        path = directory / "session.yaml"
        path.write_text(text)

        def load(p: Path = path) -> object:
            try:
                return load_session_config(p)
            except ConfigError as exc:
                return exc

        timings[name] = median_ms(load, max(5, calls // 4))
    base = timings["normal session (baseline)"]
    print("config loading (median):")
    for name, ms in timings.items():
        row(name, ms, base)


def png_bomb(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    deflate = zlib.compressobj(9)
    line = b"\x00" * (1 + width * 3)
    body = b"".join(deflate.compress(line) for _ in range(height)) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def bench_images(calls: int) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)).save(buf, "PNG")
    normal = buf.getvalue()
    bomb = png_bomb(13000, 13000)
    budget = 3840 * 2160
    base = median_ms(lambda: decode_image(normal, budget), calls)
    rss_before = peak_kib()

    def refuse() -> object:
        try:
            return decode_image(bomb, budget)
        except ImageTooLarge as exc:
            return exc

    refused = median_ms(refuse, calls)
    rss_after = peak_kib()
    print(f"image decode (median of {calls}; bomb: {len(bomb) / 1e6:.2f} MB on the wire, "
          f"{13000 * 13000 * 3 / 1e9:.2f} GB decoded):")
    row("640x480 PNG decoded (baseline)", base, base)
    row("13000x13000 PNG refused from its header", refused, base)
    print(f"  peak RSS of this process: {rss_before / 1024:.0f} MiB before the bombs, "
          f"{rss_after / 1024:.0f} MiB after {calls} of them (+{(rss_after - rss_before) / 1024:.1f} MiB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=40)
    args = parser.parse_args()
    bench_per_call(args.calls)
    bench_config(args.calls)
    bench_images(args.calls)


if __name__ == "__main__":
    main()
