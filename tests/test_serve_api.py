"""reflex serve's endpoints on a real loopback port: strict /act, health states, auth, limits."""

from __future__ import annotations

import base64
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiohttp")

from serve_testutil import (
    IMAGE_HW,
    STATE_DIM,
    ScriptedPolicy,
    ServerThread,
    expected_actions,
    http_json,
    make_info,
    policy_host,
)

from reflex.serve.options import ServeOptions
from reflex.wire.jpeg import encode_jpeg
from reflex.wire.msgpack_numpy import packb

pytestmark = pytest.mark.timeout(60)
KEY = "s3cret-key"


def image(value: int = 100) -> np.ndarray:
    return np.full((*IMAGE_HW, 3), value, dtype=np.uint8)


def msgpack_request(**overrides: Any) -> bytes:
    req: dict[str, Any] = {"state": np.arange(STATE_DIM, dtype=np.float64) * 0.1, "images": {"top": image()}, "step": 4}
    req.update(overrides)
    return packb({k: v for k, v in req.items() if v is not None})


def post_msgpack(port: int, body: bytes, **headers: str) -> tuple[int, Any, dict[str, str]]:
    return http_json(port, "POST", "/act", raw=body, content_type="application/msgpack", headers=headers)


@pytest.fixture(scope="module")
def server() -> Any:
    with ServerThread(policy_host(), ServeOptions(port=0, webrtc=False)) as srv:
        yield srv


def test_act_msgpack_returns_the_policy_chunk_and_server_timing(server: ServerThread) -> None:
    status, body, headers = post_msgpack(server.port, msgpack_request(request_id="r-1"))
    assert status == 200, body
    state = np.arange(STATE_DIM) * 0.1
    np.testing.assert_allclose(body["actions"], expected_actions(state, 100.0, 4))
    assert body["chunk_length"] == 50 and body["action_dim"] == STATE_DIM and body["request_id"] == "r-1"
    timing = body["server_timing"]
    assert set(timing) == {"decode_ms", "queue_ms", "infer_ms", "total_ms"}
    assert timing["total_ms"] >= timing["infer_ms"] >= 0
    assert body["policy_timing"]["infer_ms"] == timing["infer_ms"]
    assert "infer;dur=" in headers["Server-Timing"]


def test_act_json_with_base64_images(server: ServerThread) -> None:
    img = image(60)
    req = {
        "state": [0.5] * STATE_DIM,
        "images": {"top": base64.b64encode(encode_jpeg(img, 95)).decode()},
        "prompt": "pick",
        "step": 2,
    }
    status, body, _ = http_json(server.port, "POST", "/act", req)
    assert status == 200, body
    assert isinstance(body["actions"], list) and len(body["actions"]) == 50
    # JPEG is lossy, so compare with the mean the server could have seen, loosely.
    np.testing.assert_allclose(body["actions"], expected_actions(np.full(STATE_DIM, 0.5), 60.0, 2), atol=0.01)


def test_chw_arrays_are_accepted_like_openpi_sends_them(server: ServerThread) -> None:
    chw = np.ascontiguousarray(image(30).transpose(2, 0, 1))
    status, body, _ = post_msgpack(server.port, msgpack_request(images={"top": chw}, step=0))
    assert status == 200, body
    np.testing.assert_allclose(body["actions"], expected_actions(np.arange(STATE_DIM) * 0.1, 30.0, 0))


@pytest.mark.parametrize(
    ("overrides", "status", "code", "field"),
    [
        ({"wrist_image": np.zeros(3)}, 422, "unknown_field", "wrist_image"),
        ({"images": {}}, 422, "missing_field", "images.top"),
        ({"images": {"top": image(), "wrist": image()}}, 422, "unknown_field", "images.wrist"),
        ({"images": {"top": np.zeros((48, 64, 3), np.uint8)}}, 422, "invalid_field", "images.top"),
        ({"images": {"top": b"not an image"}}, 422, "invalid_field", "images.top"),
        ({"images": {"top": np.zeros((96, 128, 3), np.float32)}}, 422, "invalid_field", "images.top"),
        ({"state": np.zeros(7)}, 422, "invalid_field", "state"),
        ({"state": np.full(STATE_DIM, np.nan)}, 422, "invalid_field", "state"),
        ({"step": -1}, 422, "invalid_field", "step"),
        ({"task": "a", "prompt": "b"}, 422, "conflicting_fields", "prompt"),
        ({"model": "another-model"}, 404, "unknown_model", "model"),
    ],
)
def test_act_refuses_bad_requests_naming_the_field(
    server: ServerThread, overrides: dict[str, Any], status: int, code: str, field: str
) -> None:
    calls_before = server.host.served
    got, body, _ = post_msgpack(server.port, msgpack_request(**overrides))
    assert got == status, body
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert field.split(".")[-1] in body["error"]["message"]
    assert server.host.served == calls_before  # nothing was inferred with a blank stand-in


def test_missing_state_and_missing_images_field(server: ServerThread) -> None:
    status, body, _ = http_json(server.port, "POST", "/act", {"images": {}})
    assert (status, body["error"]["field"]) == (422, "state")
    status, body, _ = http_json(server.port, "POST", "/act", {"state": [0.0] * STATE_DIM})
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "missing_field", "images.top")


def test_undecodable_bodies(server: ServerThread) -> None:
    status, body, _ = http_json(server.port, "POST", "/act", raw=b"{not json")
    assert (status, body["error"]["code"]) == (400, "invalid_body")
    status, body, _ = post_msgpack(server.port, b"\xc1\xc1")
    assert (status, body["error"]["code"]) == (400, "invalid_body")
    status, body, _ = http_json(server.port, "POST", "/act", raw=b"x", content_type="text/plain")
    assert status == 415
    status, body, _ = http_json(server.port, "POST", "/act", [1, 2])
    assert (status, body["error"]["code"]) == (400, "invalid_body")


def test_health_reports_model_and_providers(server: ServerThread) -> None:
    status, body, _ = http_json(server.port, "GET", "/health")
    assert status == 200 and body["status"] == "ready" and body["ready"] is True
    assert body["model"]["name"] == "test-policy" and body["model"]["image_inputs"] == {"top": [96, 128]}
    assert body["providers"] == ["TestProvider"]
    status, text, _ = http_json(server.port, "GET", "/healthz")
    assert status == 200 and text == "OK\n"


def test_health_is_503_until_the_model_is_loaded_and_warm() -> None:
    release = threading.Event()
    policy = ScriptedPolicy()

    def slow_loader() -> Any:
        release.wait(20)
        return policy, make_info()

    from reflex.serve.host import PolicyHost

    host = PolicyHost(slow_loader)
    with ServerThread(host, ServeOptions(port=0, webrtc=False), load=False) as srv:
        host.start()
        status, body, _ = http_json(srv.port, "GET", "/health")
        assert status == 503 and body["status"] == "loading" and body["ready"] is False
        assert http_json(srv.port, "GET", "/healthz")[0] == 503
        status, body, headers = post_msgpack(srv.port, msgpack_request())
        assert (status, body["error"]["code"]) == (503, "not_ready") and headers["Retry-After"] == "1"
        release.set()
        assert host.wait_ready(10)
        assert policy.calls == 1  # the warm-up inference ran before ready
        assert http_json(srv.port, "GET", "/health")[0] == 200
        assert post_msgpack(srv.port, msgpack_request())[0] == 200


def test_failed_load_is_reported_by_health() -> None:
    from reflex.serve.host import PolicyHost

    def broken() -> Any:
        raise FileNotFoundError("model.onnx not found")

    with ServerThread(PolicyHost(broken), ServeOptions(port=0, webrtc=False), load=False) as srv:
        srv.host.start()
        srv.host.wait_ready(10)
        status, body, _ = http_json(srv.port, "GET", "/health")
        assert status == 503 and body["status"] == "failed" and "model.onnx not found" in body["error"]


def test_api_key_on_every_endpoint() -> None:
    with ServerThread(policy_host(), ServeOptions(port=0, api_key=KEY)) as srv:
        for method, path in [("GET", "/health"), ("GET", "/healthz"), ("GET", "/"), ("POST", "/webrtc/offer")]:
            status, body, headers = http_json(srv.port, method, path, {} if method == "POST" else None)
            assert status == 401, path
            assert "API key" in body["error"]["message"] and "Bearer" in headers["WWW-Authenticate"]
        status, body, _ = post_msgpack(srv.port, msgpack_request(), Authorization="Bearer wrong")
        assert status == 401 and body["error"]["message"] == "API key rejected"
        for header in ({"Authorization": f"Bearer {KEY}"}, {"Authorization": f"Api-Key {KEY}"}, {"X-Reflex-Key": KEY}):
            assert post_msgpack(srv.port, msgpack_request(), **header)[0] == 200


def test_request_size_limit_is_413() -> None:
    with ServerThread(policy_host(), ServeOptions(port=0, max_request_bytes=20_000, webrtc=False)) as srv:
        status, body, _ = post_msgpack(srv.port, msgpack_request())  # ~37 KB of raw image
        assert status == 413 and body["error"]["code"] == "too_large"


def test_concurrency_limit_is_429_and_inference_errors_are_500() -> None:
    gate = threading.Event()
    policy = ScriptedPolicy(gate=gate)
    with ServerThread(policy_host(policy, max_concurrent=1, warmup=False), ServeOptions(port=0, webrtc=False)) as srv:
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(post_msgpack, srv.port, msgpack_request())
            for _ in range(200):  # wait until the first request is inside the policy
                if policy.calls:
                    break
                threading.Event().wait(0.01)
            status, body, headers = post_msgpack(srv.port, msgpack_request())
            assert (status, body["error"]["code"]) == (429, "overloaded") and headers["Retry-After"] == "1"
            gate.set()
            assert first.result(10)[0] == 200
        policy.fail = True
        status, body, _ = post_msgpack(srv.port, msgpack_request())
        assert (status, body["error"]["code"]) == (500, "inference_failed")
        assert "exploded on purpose" in body["error"]["message"]
        assert http_json(srv.port, "GET", "/health")[0] == 200  # the server itself is fine


def test_resize_images_option_resizes_instead_of_refusing() -> None:
    with ServerThread(policy_host(), ServeOptions(port=0, resize_images=True, webrtc=False)) as srv:
        status, body, _ = post_msgpack(srv.port, msgpack_request(images={"top": np.full((48, 64, 3), 100, np.uint8)}))
        assert status == 200, body
        np.testing.assert_allclose(body["actions"], expected_actions(np.arange(STATE_DIM) * 0.1, 100.0, 4))
