"""``GET /metrics``: Prometheus text for one server (behind the same API key as every endpoint).

Each app has its own registry (two servers in one process, as in the tests, never share series).
Endpoint labels are the route's path (unknown paths count as ``other``), so a scanner cannot
grow the label set without bound. Request ids: every response carries one (``X-Request-Id``
and ``request_id`` in the body); a client's own id is kept, otherwise the server makes one.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reflex.serve.request import new_request_id

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
MODEL_STATES = ("loading", "warming", "ready", "failed")
HTTP_ACTIVE_S = 10.0  # an HTTP robot counts as connected for this long after its last request
REQUEST_ID_HEADER = "X-Request-Id"
ERROR_CODE_KEY = web.RequestKey("reflex_error_code", str)  # a refusal's code, set by the guard middleware
REQUEST_ID_KEY = web.RequestKey("reflex_request_id", str)  # this answer's id
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def metrics_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


class ServeMetrics:
    """The series of one server; the host reports inference timing and batch sizes into it."""

    def __init__(self, state: Callable[[], str], robots: Callable[[], dict[str, int]],
                 queue_depth: Callable[[], int]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("reflex_requests", "Requests answered, by endpoint and HTTP status.",
                                ["endpoint", "code"], registry=r)
        self.errors = Counter("reflex_request_errors", "Refused or failed requests, by endpoint, status, error.",
                              ["endpoint", "code", "error"], registry=r)
        self.queue = Histogram("reflex_queue_seconds", "Time a request waited for the model (batch queue).",
                               buckets=LATENCY_BUCKETS, registry=r)
        self.inference = Histogram("reflex_inference_seconds", "Model call time of the batch a request ran in.",
                                   buckets=LATENCY_BUCKETS, registry=r)
        self.total = Histogram("reflex_request_seconds", "Time from receiving a request to its answer, by endpoint.",
                               ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch = Histogram("reflex_batch_size", "Requests per inference call.", buckets=BATCH_BUCKETS, registry=r)
        depth = Gauge("reflex_queue_depth", "Requests waiting for the model.", registry=r)
        depth.set_function(lambda: float(queue_depth()))
        connected = Gauge("reflex_connected_robots", "Robots connected, by transport (http: active in the last "
                          f"{HTTP_ACTIVE_S:g} s).", ["transport"], registry=r)
        self._connected = connected
        self._robots = robots
        model = Gauge("reflex_model_state", "1 for the model's current load state.", ["state"], registry=r)
        for name in MODEL_STATES:
            model.labels(state=name).set_function(functools.partial(_is_state, state, name))
        self._http_seen: dict[str, float] = {}

    # -- reported by the host ---------------------------------------------------------------
    def on_batch(self, size: int) -> None:
        self.batch.observe(size)

    def on_request(self, queue_ms: float, infer_ms: float) -> None:
        self.queue.observe(max(0.0, queue_ms) / 1e3)
        self.inference.observe(max(0.0, infer_ms) / 1e3)

    # -- reported by the middleware ---------------------------------------------------------
    def on_answer(self, endpoint: str, status: int, seconds: float, error: str | None, client: str | None) -> None:
        self.requests.labels(endpoint=endpoint, code=str(status)).inc()
        if status >= 400:
            self.errors.labels(endpoint=endpoint, code=str(status), error=error or "http").inc()
        self.total.labels(endpoint=endpoint).observe(seconds)
        if endpoint == "/act" and client is not None and status < 500:
            self._http_seen[client] = time.monotonic()

    def http_robots(self) -> int:
        cutoff = time.monotonic() - HTTP_ACTIVE_S
        for client in [c for c, t in self._http_seen.items() if t < cutoff]:
            del self._http_seen[client]
        return len(self._http_seen)

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        counts = {"http": self.http_robots(), **self._robots()}
        for transport, count in counts.items():
            self._connected.labels(transport=transport).set(count)
        return bytes(generate_latest(self.registry))


def _is_state(state: Callable[[], str], name: str) -> float:
    return float(state() == name)


def endpoint_of(request: web.Request) -> str:
    """The route's path template; ``other`` for anything unrouted (bounded label values)."""
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    canonical = getattr(resource, "canonical", None)
    if isinstance(canonical, str) and getattr(info, "http_exception", None) is None:
        return canonical
    return "other"


METRICS_KEY: web.AppKey[Any] = web.AppKey("metrics", object)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every answer (refusals included) and stamp it with the request id."""
    t0 = time.perf_counter()
    request[REQUEST_ID_KEY] = request.headers.get(REQUEST_ID_HEADER, "")[:128] or new_request_id()
    response: web.StreamResponse | None = None
    try:
        response = await handler(request)
        if not response.prepared:  # a WebSocket has sent its headers already
            response.headers.setdefault(REQUEST_ID_HEADER, request[REQUEST_ID_KEY])
        return response
    except web.HTTPException as exc:
        response = exc
        raise
    finally:
        metrics: ServeMetrics | None = request.app.get(METRICS_KEY)
        if metrics is not None and request.path != "/metrics":
            status = response.status if response is not None else 500
            error = request.get(ERROR_CODE_KEY) if response is not None else "internal_error"
            metrics.on_answer(endpoint_of(request), status, time.perf_counter() - t0, error, request.remote)


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics: ServeMetrics | None = request.app.get(METRICS_KEY)
    if metrics is None:
        from reflex.serve.request import RequestError

        raise RequestError(501, "metrics_unavailable", "install prometheus_client (the 'serve' extra) for /metrics")
    return web.Response(body=metrics.render(), headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
