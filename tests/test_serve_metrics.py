"""``GET /metrics``: Prometheus text that prometheus_client's own parser reads, counters that move."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families
from serve_testutil import IMAGE_HW, STATE_DIM, ServerThread, http_json, policy_host

from reflex.serve.options import ServeOptions
from reflex.wire.msgpack_numpy import packb

pytestmark = pytest.mark.timeout(60)
KEY = "metrics-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample as (name, sorted labels) -> value, read with prometheus_client's parser."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics", headers=AUTH)
    resp = conn.getresponse()
    text = resp.read().decode()
    assert resp.status == 200 and resp.getheader("Content-Type", "").startswith("text/plain"), text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def act(port: int, **overrides: Any) -> tuple[int, Any, dict[str, str]]:
    req: dict[str, Any] = {"state": np.zeros(STATE_DIM), "images": {"top": np.zeros((*IMAGE_HW, 3), np.uint8)}}
    req.update(overrides)
    return http_json(port, "POST", "/act", raw=packb(req), content_type="application/msgpack", headers=AUTH)


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_parse_and_move_with_requests_errors_and_batches() -> None:
    host = policy_host(max_batch=4, max_wait_ms=0.0)
    with ServerThread(host, ServeOptions(port=0, api_key=KEY, webrtc=False)) as srv:
        status, _, _ = http_json(srv.port, "GET", "/metrics")
        assert status == 401  # behind the same key as everything else
        before = scrape(srv.port)
        assert value(before, "reflex_model_state", state="ready") == 1.0
        assert value(before, "reflex_model_state", state="loading") == 0.0
        assert value(before, "reflex_queue_depth") == 0.0

        ok = [act(srv.port, step=i) for i in range(3)]
        assert all(s == 200 for s, _, _ in ok)
        ids = {body["request_id"] for _, body, _ in ok}
        assert len(ids) == 3 and all(ids)  # the server made one per request...
        assert all(headers["X-Request-Id"] == body["request_id"] for _, body, headers in ok)  # ...in both places
        status, body, headers = act(srv.port, request_id="robot-7-step-3")
        assert status == 200 and body["request_id"] == headers["X-Request-Id"] == "robot-7-step-3"
        bad = act(srv.port, state=[1.0])
        assert bad[0] == 422
        assert http_json(srv.port, "GET", "/health", headers=AUTH)[0] == 200

        after = scrape(srv.port)
    assert value(after, "reflex_requests_total", endpoint="/act", code="200") - value(
        before, "reflex_requests_total", endpoint="/act", code="200") == 4
    assert value(after, "reflex_requests_total", endpoint="/act", code="422") == 1
    assert value(after, "reflex_request_errors_total", endpoint="/act", code="422", error="invalid_field") == 1
    assert value(after, "reflex_request_errors_total", endpoint="/metrics", code="401", error="unauthorized") == 0
    assert value(after, "reflex_requests_total", endpoint="other", code="401") == 0
    assert value(after, "reflex_requests_total", endpoint="/health", code="200") >= 1
    assert value(after, "reflex_request_seconds_count", endpoint="/act") == 5
    assert value(after, "reflex_inference_seconds_count") == 4 and value(after, "reflex_queue_seconds_count") == 4
    assert value(after, "reflex_batch_size_count") == 4 and value(after, "reflex_batch_size_sum") == 4
    assert value(after, "reflex_inference_seconds_bucket", le="+Inf") == 4
    assert value(after, "reflex_connected_robots", transport="http") == 1  # one client address
    assert value(after, "reflex_connected_robots", transport="websocket") == 0
