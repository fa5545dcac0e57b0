"""The aiohttp application and the blocking ``run_server`` behind ``reflex serve``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from reflex.serve import http_api, metrics, openpi_ws, webrtc_api
from reflex.serve.host import PolicyHost
from reflex.serve.http_api import HOST_KEY, OPTIONS_KEY
from reflex.serve.options import ServeOptions

log = logging.getLogger("reflex.serve")


def create_app(host: PolicyHost, options: ServeOptions) -> web.Application:
    app = web.Application(
        middlewares=[metrics.metrics_middleware, http_api.guard_middleware], client_max_size=options.max_request_bytes
    )
    app[HOST_KEY] = host
    app[OPTIONS_KEY] = options
    app[webrtc_api.PEERS_KEY] = webrtc_api.Peers()
    app[openpi_ws.SOCKETS_KEY] = openpi_ws.OpenSockets()
    app.on_shutdown.append(openpi_ws.close_sockets)
    app.router.add_post("/act", http_api.act)
    app.router.add_get("/health", http_api.health)
    app.router.add_get("/healthz", http_api.healthz)
    app.router.add_get("/", openpi_ws.root)
    app.router.add_get("/ws", openpi_ws.websocket)
    app.router.add_get("/metrics", metrics.metrics_endpoint)
    if metrics.metrics_available():
        sockets, peers = app[openpi_ws.SOCKETS_KEY], app[webrtc_api.PEERS_KEY]
        app[metrics.METRICS_KEY] = host.observer = metrics.ServeMetrics(
            state=lambda: host.state,
            robots=lambda: {"websocket": len(sockets.open), "webrtc": len(peers.open)},
            queue_depth=lambda: host.queue_depth,
        )
    if options.webrtc:
        if webrtc_api.webrtc_available():
            from reflex.wire.ice import default_ice_addresses, pin_host_addresses

            addresses = options.ice_addresses
            pin_host_addresses(addresses if addresses is not None else default_ice_addresses(options.host))
        app.router.add_post("/webrtc/offer", webrtc_api.offer)
        app.on_shutdown.append(webrtc_api.close_peers)
    return app


async def start_site(app: web.Application, options: ServeOptions) -> tuple[web.AppRunner, int]:
    """Bind and start serving; returns the runner and the bound port (useful with port 0)."""
    runner = web.AppRunner(app, access_log=log if options.access_log else None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port, reuse_address=True)
    await site.start()
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else options.port
    return runner, int(port)


def run_server(
    host: PolicyHost,
    options: ServeOptions,
    on_listen: Callable[[int], None] | None = None,
    on_ready: Callable[[int], None] | None = None,
) -> str:
    """Bind first, then load the model in the background; serve until SIGINT/SIGTERM.

    A model that fails to load ends the server at once (clients would only ever get 503).
    Returns the host's final state: ``ready`` after a normal stop, ``failed`` after a failed load.
    """
    from reflex.memory import keep_freed_memory

    keep_freed_memory()  # every request allocates observation-sized buffers: reuse them

    async def main() -> None:
        app = create_app(host, options)
        runner, port = await start_site(app, options)
        if on_listen is not None:
            on_listen(port)
        host.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # not main thread / POSIX
                loop.add_signal_handler(sig, stop.set)

        async def watch_load() -> None:
            await loop.run_in_executor(None, host.wait_ready)
            if host.state == "failed":
                stop.set()
            elif on_ready is not None:
                on_ready(port)

        watcher = asyncio.create_task(watch_load())
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            await runner.cleanup()
            await host.aclose()
            host.close()

    asyncio.run(main())
    return host.state


def endpoints(options: ServeOptions) -> list[str]:
    out = ["POST /act", "GET /health", "GET /healthz", "GET /metrics", "WebSocket / (openpi protocol)"]
    if options.webrtc:
        out.append("POST /webrtc/offer")
    return out


def print_ready(options: ServeOptions, host: PolicyHost, port: int) -> None:
    """The one line that says the model is loaded (and warm) and where to reach it."""
    info = host.info
    name = info.name if info is not None else "?"
    providers = ", ".join(info.providers) if info is not None else ""
    print(
        f"reflex serve: ready on http://{options.host}:{port} (ws://{options.host}:{port}/): model {name} "
        f"[{providers}]; endpoints: {'; '.join(endpoints(options))}",
        flush=True,
    )


def print_listening(host: str, port: int) -> None:
    # Tests and scripts read this exact line to find the port chosen by --port 0.
    print(f"reflex serve: listening on http://{host}:{port}", flush=True)
    sys.stdout.flush()
