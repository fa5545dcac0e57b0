"""Transport benchmark: one observation (3 x 224x224 RGB + 14-D state -> 50x14 chunk) round trip
over each reflex transport, with a zero-time policy, next to two baselines measured in the same run:

- a raw WebSocket echo of the same request bytes (aiohttp and websockets echo servers; the
  faster of the two is the baseline);
- the openpi stack: openpi-client's ``WebsocketClientPolicy`` against an openpi-protocol server
  (websockets asyncio server, openpi_client's msgpack_numpy, ``infer`` on the event loop).

Every server runs in its own process; the stacks are measured round-robin (one call each per
round, in a shuffled order, 1 ms apart) so machine noise hits them alike. Our targets are
timed through ``Target.infer`` (encode, send, wait, decode). WebRTC sends JPEG within
``--jpeg-budget`` bytes per camera; so does the extra "websocket, jpeg images" line (context, no
target: on loopback raw bytes are cheap, on a real link JPEG wins).

Two more lines weigh the WebSocket client (issue #13): the websocket target with its link on
websockets' threaded sync client instead of the library's Sans-I/O protocol read in the caller's
thread ("sync client"), and the bare request over the sync client (no target around it).

Targets (issue #6): websocket p50 <= 1.2x raw echo and <= 0.8x openpi stack; webrtc p50 <= 5 ms,
p99 <= 15 ms.

Usage: python bench/transport_bench.py [--n 300] [--warmup 30] [--jpeg-budget 8000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # this checkout's reflex, as in the server children
CAMERAS = ("cam_high", "cam_left_wrist", "cam_right_wrist")
SIZE = 224
STATE_DIM = 14
CHUNK = 50


# -- the observation -----------------------------------------------------------------------------


def scene(seed: int) -> np.ndarray:
    """A camera-like frame: smooth gradients, objects and sensor noise (JPEG-compressible like
    a real scene, unlike uniform noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = np.stack([xx * 255 / SIZE, yy * 255 / SIZE, (xx + yy) * 127 / SIZE], -1)
    img[60:120, 80:160] = [200, 40, 40]
    img[140:200, 30:90] = [30, 200, 90]
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def observation() -> Any:
    from reflex.ports import Frame, Observation, StateSample

    now = time.monotonic()
    return Observation(
        step=1,
        state=StateSample(position=np.linspace(-0.5, 0.5, STATE_DIM), t_capture=now),
        images={cam: Frame(scene(i), now, 1) for i, cam in enumerate(CAMERAS)},
        task="fold the towel",
    )


# -- server processes ----------------------------------------------------------------------------


class ZeroPolicy:
    def __init__(self) -> None:
        self.chunk = np.zeros((CHUNK, STATE_DIM))

    def predict(self, state: np.ndarray, images: dict[str, np.ndarray], step: int, task: str = "") -> np.ndarray:
        return self.chunk


def serve_reflex() -> None:
    from reflex.serve.app import run_server
    from reflex.serve.host import PolicyHost
    from reflex.serve.model import ModelInfo
    from reflex.serve.options import ServeOptions

    info = ModelInfo(
        name="zero", state_dim=STATE_DIM, action_dim=STATE_DIM, chunk_length=CHUNK, action_dt_s=0.02,
        image_inputs={cam: (SIZE, SIZE) for cam in CAMERAS},
    )
    host = PolicyHost(lambda: (ZeroPolicy(), info), warmup=False)
    run_server(host, ServeOptions(port=0), on_listen=announce)


def serve_aiohttp_echo() -> None:
    from aiohttp import web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0, compress=False)
        await ws.prepare(request)
        async for msg in ws:
            await ws.send_bytes(msg.data)
        return ws

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/", echo)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        announce(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        await asyncio.Future()

    asyncio.run(main())


def serve_websockets_echo() -> None:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for msg in ws:
            await ws.send(msg)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0, compression=None, max_size=None) as server:
            announce(next(iter(server.sockets)).getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


def serve_openpi() -> None:
    """openpi's server pattern: metadata first, infer on the loop, openpi_client's codec."""
    from openpi_client import msgpack_numpy
    from websockets.asyncio.server import serve

    zero = np.zeros((CHUNK, STATE_DIM))

    async def handler(ws: Any) -> None:
        packer = msgpack_numpy.Packer()
        await ws.send(packer.pack({}))
        async for message in ws:
            t0 = time.monotonic()
            msgpack_numpy.unpackb(message)
            result = {"actions": zero, "server_timing": {"infer_ms": (time.monotonic() - t0) * 1e3}}
            await ws.send(packer.pack(result))

    async def main() -> None:
        async with serve(handler, "127.0.0.1", 0, compression=None, max_size=None) as server:
            announce(next(iter(server.sockets)).getsockname()[1])
            await asyncio.Future()

    asyncio.run(main())


ROLES: dict[str, Callable[[], None]] = {
    "reflex": serve_reflex,
    "aiohttp-echo": serve_aiohttp_echo,
    "websockets-echo": serve_websockets_echo,
    "openpi": serve_openpi,
}


def announce(port: int) -> None:
    print(f"PORT {port}", flush=True)


class Child:
    def __init__(self, role: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--role", role], stdout=subprocess.PIPE, text=True, env=env
        )
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline() if ready else ""
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"server '{role}' did not start")
        self.port = int(line.split()[1])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# -- clients -------------------------------------------------------------------------------------


def ws_connect(uri: str) -> Any:
    import inspect

    from websockets.sync.client import connect

    kwargs: dict[str, Any] = {"compression": None, "max_size": None, "ping_interval": None}
    if "legacy" in inspect.signature(connect).parameters:
        kwargs["legacy"] = True
    return connect(uri, **kwargs)


class SyncClientLink:
    """The websocket target's link on websockets' threaded sync client instead of the Sans-I/O
    protocol driven in the caller's thread (same interface: send_binary, recv, close)."""

    def __init__(self, uri: str, headers: Any, timeout: float, max_size: int, ssl_context: Any) -> None:
        from websockets.sync.client import connect

        self.ws = connect(uri, additional_headers=headers, open_timeout=timeout, max_size=max_size,
                          compression=None, ping_interval=None, ssl=ssl_context)

    def send_binary(self, parts: Any) -> None:
        self.ws.send(parts if isinstance(parts, (bytes, bytearray, memoryview)) else b"".join(parts))

    def recv(self, timeout: float) -> Any:
        return self.ws.recv(timeout)

    def close(self) -> None:
        self.ws.close()


def build_calls(ports: dict[str, int], obs: Any, jpeg_budget: int) -> tuple[dict[str, Callable[[], Any]], list]:
    from openpi_client.websocket_client_policy import WebsocketClientPolicy

    from reflex.config.base import BuildContext
    from reflex.targets.http.config import HttpTargetSpec
    from reflex.targets.webrtc.config import WebrtcTargetSpec
    from reflex.targets.websocket.config import WebsocketTargetSpec
    from reflex.wire.msgpack_numpy import pack_parts, packb, unpackb
    from reflex.wire.remote_client import reflex_request

    ctx = BuildContext(config_dir=REPO)
    reflex = ports["reflex"]
    targets = [
        WebsocketTargetSpec(url=f"ws://127.0.0.1:{reflex}", api_key_env=None).build(ctx),
        HttpTargetSpec(url=f"http://127.0.0.1:{reflex}", api_key_env=None).build(ctx),
        WebrtcTargetSpec(url=f"http://127.0.0.1:{reflex}", api_key_env=None, jpeg_budget_bytes=jpeg_budget).build(ctx),
        WebsocketTargetSpec(
            url=f"ws://127.0.0.1:{reflex}", api_key_env=None, image_encoding="jpeg", jpeg_budget_bytes=jpeg_budget
        ).build(ctx),
    ]
    threaded = WebsocketTargetSpec(url=f"ws://127.0.0.1:{reflex}", api_key_env=None).build(ctx)
    threaded.transport.link_class = SyncClientLink  # type: ignore[attr-defined]
    targets.append(threaded)
    for target in targets:
        target.connect()
    # The same reflex protocol request over websockets' own sync client (reader thread).
    sync = ws_connect(f"ws://127.0.0.1:{reflex}")
    sync.recv()  # metadata frame
    sync_request = b"".join(pack_parts(reflex_request(obs, {k: f.image for k, f in obs.images.items()}, None)))
    request_bytes = packb(reflex_request(obs, {k: f.image for k, f in obs.images.items()}, None))
    echo_a = ws_connect(f"ws://127.0.0.1:{ports['aiohttp-echo']}")
    echo_w = ws_connect(f"ws://127.0.0.1:{ports['websockets-echo']}")
    openpi = WebsocketClientPolicy("127.0.0.1", ports["openpi"])
    openpi_obs = {
        "state": obs.state.position.astype(np.float32),
        "images": {k: f.image for k, f in obs.images.items()},
        "prompt": obs.task,
    }
    calls: dict[str, Callable[[], Any]] = {
        "echo (aiohttp server)": lambda: (echo_a.send(request_bytes), echo_a.recv()),
        "echo (websockets server)": lambda: (echo_w.send(request_bytes), echo_w.recv()),
        "openpi-client -> openpi server": lambda: openpi.infer(openpi_obs),
        "reflex websocket": lambda: targets[0].infer(obs),
        "reflex http": lambda: targets[1].infer(obs),
        "reflex webrtc": lambda: targets[2].infer(obs),
        "reflex websocket, jpeg images": lambda: targets[3].infer(obs),
        "reflex websocket, sync client": lambda: threaded.infer(obs),
        "reflex protocol, websockets sync": lambda: (sync.send(sync_request), unpackb(sync.recv())),
    }
    return calls, [*targets, echo_a, echo_w, sync]


def measure(calls: dict[str, Callable[[], Any]], n: int, warmup: int) -> dict[str, np.ndarray]:
    samples: dict[str, list[float]] = {name: [] for name in calls}
    extras: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    rng = np.random.default_rng(0)
    names = list(calls)
    for i in range(warmup + n):
        # A fresh order each round and a short pause between calls: a client that keeps a
        # reader thread (websockets' sync client, openpi-client) would otherwise still hold the
        # GIL when the next stack starts, always penalising the same neighbour. A control loop
        # spaces its requests too.
        for name in rng.permutation(names):
            call = calls[name]
            time.sleep(0.001)
            t0 = time.perf_counter()
            out = call()
            dt = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                samples[name].append(dt)
                if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict) and "server_ms" in out[1]:
                    extras[name].append((out[1]["server_ms"], out[1]["network_ms"]))
    measure.extras = extras  # type: ignore[attr-defined]
    return {name: np.asarray(v) for name, v in samples.items()}


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=sorted(ROLES), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=300, help="Timed round trips per stack.")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--jpeg-budget", type=int, default=6000, help="WebRTC JPEG bytes per camera.")
    parser.add_argument("--json", action="store_true", help="Also print one JSON summary line.")
    args = parser.parse_args()
    if args.role:
        ROLES[args.role]()
        return 0

    children = {role: Child(role) for role in ROLES}
    closers: list[Any] = []
    try:
        obs = observation()
        calls, closers = build_calls({r: c.port for r, c in children.items()}, obs, args.jpeg_budget)
        results = measure(calls, args.n, args.warmup)
    finally:
        for item in closers:
            item.close()
        for child in children.values():
            child.stop()

    from reflex.wire.msgpack_numpy import packb
    from reflex.wire.remote_client import reflex_request

    size = len(packb(reflex_request(obs, {k: f.image for k, f in obs.images.items()}, None)))
    print(f"observation: {len(CAMERAS)} x {SIZE}x{SIZE} RGB + {STATE_DIM}-D state -> {CHUNK}x{STATE_DIM} chunk, "
          f"{size} request bytes raw; zero-time policy; n={args.n} round-robin, loopback, {os.cpu_count()} cores")
    print(f"{'stack':34s} {'p50 ms':>8s} {'p99 ms':>8s} {'server p50':>11s} {'network p50':>12s}")
    extras = measure.extras  # type: ignore[attr-defined]
    summary: dict[str, Any] = {}
    for name, values in results.items():
        ex = np.asarray(extras[name]) if extras[name] else None
        server = f"{np.median(ex[:, 0]):11.3f}" if ex is not None else f"{'-':>11s}"
        network = f"{np.median(ex[:, 1]):12.3f}" if ex is not None else f"{'-':>12s}"
        print(f"{name:34s} {pct(values, 50):8.3f} {pct(values, 99):8.3f} {server} {network}")
        summary[name] = {"p50_ms": round(pct(values, 50), 3), "p99_ms": round(pct(values, 99), 3)}

    echo = min(pct(results["echo (aiohttp server)"], 50), pct(results["echo (websockets server)"], 50))
    openpi = pct(results["openpi-client -> openpi server"], 50)
    ws = pct(results["reflex websocket"], 50)
    rtc50, rtc99 = pct(results["reflex webrtc"], 50), pct(results["reflex webrtc"], 99)
    checks = [
        ("websocket p50 / raw echo p50", ws / echo, 1.2),
        ("websocket p50 / openpi stack p50", ws / openpi, 0.8),
        ("http p50 / openpi stack p50", pct(results["reflex http"], 50) / openpi, None),
        ("sync client target adds, ms p50", pct(results["reflex websocket, sync client"], 50) - ws, None),
        ("websockets sync client adds, ms p50", pct(results["reflex protocol, websockets sync"], 50) - ws, None),
        ("webrtc p50 ms", rtc50, 5.0),
        ("webrtc p99 ms", rtc99, 15.0),
    ]
    print()
    for label, value, limit in checks:
        verdict = "" if limit is None else ("  ok" if value <= limit else "  MISSED") + f" (target <= {limit})"
        print(f"{label:36s} {value:7.3f}{verdict}")
        summary[label] = round(value, 3)
    if args.json:
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
