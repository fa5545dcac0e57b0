"""``reflex serve EXPORT --backend ray``: the same /act, /health, /metrics and openpi WebSocket
served as a Ray Serve application, for a fleet on more than one machine (docs/fleet.md).

Two deployments: ``ReflexIngress`` (FastAPI behind Ray's HTTP proxy: decoding, validation, auth,
metrics; a WebSocket stays on the ingress replica it opened on) and ``ReflexPolicy`` (the model;
``@serve.batch`` groups requests from every ingress replica into one ``predict_batch`` call). The
request checks, the response and the batching rule are the plain server's own modules, so a
robot's chunk is the same from either backend. Without ``--ray-address`` a local Ray instance is
started, bound to loopback, small, and shut down on exit.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures at definition time.
import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from reflex.serve.options import ServeOptions

# A local Ray kept small and on loopback (docs/fleet.md; measured in the research notes).
LOCAL_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node IP 127.0.0.1: core listeners on loopback
}
OBJECT_STORE_BYTES = 128 * 1024 * 1024


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local Ray on loopback
    replicas: int = 1  # model replicas (ignored when autoscaling is given)
    ingress_replicas: int = 1
    autoscaling: dict[str, Any] | None = None  # Ray Serve AutoscalingConfig fields, for the model
    num_gpus: float = 0.0  # per model replica
    num_cpus: float = 0.5  # per replica (logical: admission only)
    max_batch: int = 8
    max_wait_ms: float = 2.0
    local_cpus: int = 2  # logical CPUs of a local Ray instance
    providers: list[str] | None = None
    strict_providers: bool = False
    seed: int | None = None
    threads: int = 1
    warmup: bool = True


def parse_autoscaling(text: str | None) -> dict[str, Any] | None:
    """``--autoscaling '{"min_replicas": 1, "max_replicas": 4}'`` as a dict (checked by Ray)."""
    if not text:
        return None
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("--autoscaling takes a JSON object of Ray Serve AutoscalingConfig fields")
    return value


def build_app(export: str, options: ServeOptions, ray_options: RayOptions, base_dir: str) -> Any:
    """The bound Ray Serve application (``serve.run`` deploys it)."""
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import JSONResponse, Response
    from ray import serve
    from ray.serve.config import BackpressureConfig
    from ray.serve.exceptions import BackPressureError

    from reflex.serve.auth import check_key
    from reflex.serve.batcher import predict_rows
    from reflex.serve.request import RequestError, decode_json_body, new_request_id, parse_act_request
    from reflex.serve.response import build_response, error_body, server_timing_header, to_json_ready
    from reflex.wire.msgpack_numpy import WireFormatError, packb, unpackb

    ro = ray_options
    model_opts: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": ro.num_cpus, "num_gpus": ro.num_gpus},
        "max_ongoing_requests": 2 * ro.max_batch,
        "max_queued_requests": options.max_concurrent,
    }
    if ro.autoscaling is not None:
        model_opts["autoscaling_config"] = ro.autoscaling
    else:
        model_opts["num_replicas"] = ro.replicas

    @serve.deployment(name="ReflexPolicy", **model_opts)
    class ReflexPolicy:
        def __init__(self) -> None:
            from pathlib import Path

            from reflex.serve.model import load_onnx_export

            self.policy, self.info = load_onnx_export(
                export, ro.providers, ro.strict_providers, ro.seed, ro.threads, base=Path(base_dir)
            )
            self.act.set_max_batch_size(ro.max_batch)  # type: ignore[attr-defined]
            self.act.set_batch_wait_timeout_s(ro.max_wait_ms / 1e3)  # type: ignore[attr-defined]
            if ro.warmup:
                import numpy as np

                from reflex.serve.host import _blank_inputs
                from reflex.serve.request import ActRequest

                blank = ActRequest(state=np.zeros(self.info.state_dim), images=_blank_inputs(self.info),
                                   task="", step=0, request_id=None)
                predict_rows(self.policy, [blank])

        def describe(self) -> Any:
            return self.info

        @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
        async def act(self, reqs: list[Any]) -> list[Any]:
            t0 = time.perf_counter()
            chunks = await asyncio.to_thread(predict_rows, self.policy, reqs)
            infer_ms = (time.perf_counter() - t0) * 1e3
            return [(chunks[i], {"queue_ms": 0.0, "infer_ms": infer_ms, "batch_size": float(len(reqs))})
                    for i in range(len(reqs))]

    app = FastAPI(title="reflex serve (ray)", docs_url=None, redoc_url=None, openapi_url=None)

    def error_response(err: RequestError) -> JSONResponse:
        headers = {"Retry-After": "1"} if err.status in (429, 503) else {}
        if err.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="reflex"'
        return JSONResponse(error_body(err), status_code=err.status, headers=headers)

    @serve.deployment(
        name="ReflexIngress",
        num_replicas=ro.ingress_replicas,
        ray_actor_options={"num_cpus": ro.num_cpus},
        max_ongoing_requests=max(8, 2 * options.max_concurrent),
        max_queued_requests=options.max_concurrent,
        backpressure_config=BackpressureConfig(status_code=429, retry_after_s=1),
    )
    @serve.ingress(app)
    class ReflexIngress:
        def __init__(self, model: Any) -> None:
            from reflex.serve.metrics import ServeMetrics, metrics_available

            self.model = model
            self.info: Any = None
            self.error: str | None = None
            self.t_start = time.monotonic()
            self.served = 0
            self.refused = 0
            self.in_flight = 0
            self.sockets = 0
            self.prom = ServeMetrics(
                state=lambda: "ready" if self.info is not None else ("failed" if self.error else "loading"),
                robots=lambda: {"websocket": self.sockets},
                queue_depth=lambda: 0,
            ) if metrics_available() else None

        async def _info(self) -> Any:
            if self.info is None:
                self.info = await self.model.describe.remote()
            return self.info

        async def _answer(self, endpoint: str, request: Request, work: Any) -> Response:
            t0 = time.perf_counter()
            request_id = request.headers.get("x-request-id", "")[:128] or new_request_id()
            error: str | None = None
            try:
                check_key(options.api_key, request.headers)
                response: Response = await work(request_id)
            except RequestError as err:
                response, error = error_response(err), err.code
            except Exception as exc:  # a bug: still a JSON body, never a plain-text 500 page
                failure = RequestError(500, "internal_error", f"{type(exc).__name__} while handling the request")
                response, error = error_response(failure), failure.code
            if self.prom is not None:
                client = request.client.host if request.client else None
                self.prom.on_answer(endpoint, response.status_code, time.perf_counter() - t0, error, client)
            return response

        @app.post("/act")
        async def act(self, request: Request) -> Response:
            async def work(request_id: str) -> Response:
                info = await self._info()
                ctype = request.headers.get("content-type", "").split(";")[0].strip()
                if ctype not in ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack",
                                 "application/json"):
                    raise RequestError(415, "unsupported_media_type",
                                       f"send application/json or application/msgpack, not '{ctype}'")
                body = await request.body()
                if len(body) > options.max_request_bytes:
                    raise RequestError(413, "too_large", f"request body over {options.max_request_bytes} bytes")
                t_received = time.perf_counter()
                if ctype == "application/json":
                    payload = decode_json_body(body)
                else:
                    try:
                        payload = unpackb(body)
                    except WireFormatError as exc:
                        raise RequestError(400, "invalid_body", str(exc)) from None
                req = parse_act_request(payload, info, options.resize_images, options.max_image_pixels)
                req.request_id = req.request_id or request_id
                decode_ms = (time.perf_counter() - t_received) * 1e3
                actions, timing = await self._infer(req)
                out = build_response(info, req, actions, timing, t_received, decode_ms)
                headers = {"Server-Timing": server_timing_header(out)}  # Ray's proxy adds X-Request-Id
                accept = request.headers.get("accept", "")
                if "msgpack" in accept or ("json" not in accept and ctype != "application/json"):
                    return Response(packb(out), media_type="application/msgpack", headers=headers)
                return JSONResponse(to_json_ready(out), headers=headers)

            return await self._answer("/act", request, work)

        async def _infer(self, req: Any) -> Any:
            # The plain server's admission rule, per ingress replica: at most max_concurrent
            # requests at the model, one more is a 429 at once (JSON body, Retry-After), before
            # Ray's own queues (the model handle's max_queued_requests, the proxy's) fill up.
            if self.in_flight >= options.max_concurrent:
                self.refused += 1
                raise RequestError(429, "overloaded", f"{self.in_flight} requests in flight "
                                   f"(max_concurrent {options.max_concurrent})")
            t_submit = time.perf_counter()
            self.in_flight += 1
            try:
                actions, timing = await self.model.act.remote(req)
            except BackPressureError:
                raise RequestError(429, "overloaded", "the model replicas' queues are full; retry shortly") from None
            except Exception as exc:
                raise RequestError(500, "inference_failed", f"{type(exc).__name__}: {exc}") from None
            finally:
                self.in_flight -= 1
            total_ms = (time.perf_counter() - t_submit) * 1e3
            timing["queue_ms"] = max(0.0, total_ms - timing["infer_ms"])  # handle, batch wait, transfer
            self.served += 1
            if self.prom is not None:
                self.prom.on_request(timing["queue_ms"], timing["infer_ms"])
                self.prom.on_batch(int(timing["batch_size"]))  # per request here: sizes as seen by callers
            return actions, timing

        @app.get("/health")
        async def health(self, request: Request) -> Response:
            async def work(request_id: str) -> Response:
                from reflex import __version__

                try:
                    info = await self._info()
                except Exception as exc:
                    self.error = f"{type(exc).__name__}: {exc}"
                    info = None
                body = {
                    "status": "ready" if info is not None else "failed",
                    "ready": info is not None,
                    "error": self.error if info is None else None,
                    "model": info.to_dict() if info is not None else None,
                    "providers": list(info.providers) if info is not None else [],
                    "in_flight": self.in_flight,
                    "max_concurrent": options.max_concurrent,
                    "max_batch": ro.max_batch,
                    "queue_depth": 0,
                    "served": self.served,
                    "refused": self.refused,
                    "uptime_s": round(time.monotonic() - self.t_start, 3),
                    "version": __version__,
                    "transports": {"http": "/act", "websocket": "/ (openpi protocol)", "backend": "ray"},
                }
                return JSONResponse(body, status_code=200 if info is not None else 503)

            return await self._answer("/health", request, work)

        @app.get("/healthz")
        async def healthz(self, request: Request) -> Response:
            async def work(request_id: str) -> Response:
                await self._info()
                return Response("OK\n", media_type="text/plain")

            return await self._answer("/healthz", request, work)

        @app.get("/metrics")
        async def metrics(self, request: Request) -> Response:
            try:
                check_key(options.api_key, request.headers)
            except RequestError as err:
                return error_response(err)
            if self.prom is None:
                return error_response(RequestError(501, "metrics_unavailable", "install prometheus_client"))
            return Response(self.prom.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

        @app.websocket("/")
        async def openpi(self, ws: WebSocket) -> None:
            """openpi's protocol: metadata frame first, then msgpack observation -> msgpack chunk."""
            from reflex.serve.openpi_ws import metadata

            try:
                check_key(options.api_key, ws.headers)
                info = await self._info()
            except RequestError as err:
                await ws.close(code=1008, reason=err.message[:120])
                return
            await ws.accept()
            self.sockets += 1
            try:
                await ws.send_bytes(packb(metadata(info)))
                while True:
                    data = await ws.receive_bytes()
                    t_received = time.perf_counter()
                    try:
                        if len(data) > options.max_request_bytes:
                            raise RequestError(413, "too_large", "message over the size limit")
                        req = parse_act_request(unpackb(data), info, options.resize_images, options.max_image_pixels)
                        decode_ms = (time.perf_counter() - t_received) * 1e3
                        actions, timing = await self._infer(req)
                        await ws.send_bytes(packb(build_response(info, req, actions, timing, t_received, decode_ms)))
                    except (RequestError, WireFormatError) as exc:
                        message = exc.message if isinstance(exc, RequestError) else str(exc)
                        await ws.send_text(message)
                        await ws.close(code=1011, reason=message[:120])
                        return
            except WebSocketDisconnect:
                pass
            finally:
                self.sockets -= 1

    return ReflexIngress.bind(ReflexPolicy.bind())  # type: ignore[attr-defined]


def start_ray(address: str | None, local_cpus: int) -> None:
    """Connect to ``address``, or start a small local Ray on loopback."""
    import ray

    if address is None:
        for key, value in LOCAL_RAY_ENV.items():
            os.environ.setdefault(key, value)
        ray.init(num_cpus=local_cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                 logging_level=logging.WARNING, log_to_driver=False, configure_logging=False)
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False, configure_logging=False)


def run_ray_server(export: str, options: ServeOptions, ray_options: RayOptions,
                   on_ready: Callable[[int], None] | None = None) -> None:
    """Deploy, print the ready line, serve until SIGINT/SIGTERM; always shuts Serve and Ray down."""
    import signal
    import threading
    from pathlib import Path

    import ray
    from ray import serve

    stop = threading.Event()
    replicas = ray_options.replicas
    if ray_options.autoscaling is not None:
        replicas = int(ray_options.autoscaling.get("max_replicas", 1))
    # logical CPUs only admit replicas: a local instance gets enough for every replica asked for
    needed = math.ceil((replicas + ray_options.ingress_replicas) * ray_options.num_cpus)
    start_ray(ray_options.address, max(ray_options.local_cpus, needed))
    for sig in (signal.SIGINT, signal.SIGTERM):  # after ray.init, which installs its own
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": options.host, "port": options.port})
        app = build_app(export, options, ray_options, str(Path.cwd()))
        serve.run(app, name="reflex", route_prefix="/", blocking=False)
        if on_ready is not None:
            on_ready(options.port)
        stop.wait()
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()

