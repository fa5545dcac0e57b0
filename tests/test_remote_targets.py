"""The http, websocket and webrtc targets against a real server on loopback."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("websockets")
pytest.importorskip("aiortc")

from serve_testutil import (
    IMAGE_HW,
    STATE_DIM,
    ScriptedPolicy,
    ServerThread,
    expected_actions,
    free_port,
    policy_host,
)

from reflex.config.base import BuildContext
from reflex.errors import SetupError
from reflex.ports import Frame, Observation, StateSample, Target
from reflex.serve.options import ServeOptions
from reflex.targets.http.config import HttpTargetSpec
from reflex.targets.webrtc.config import WebrtcTargetSpec
from reflex.targets.websocket.config import WebsocketTargetSpec
from reflex.wire.remote_client import RemoteError, TransportGaveUp

pytestmark = pytest.mark.timeout(60)
KEY = "target-key"
KINDS = ["http", "websocket", "webrtc"]
CTX = BuildContext(config_dir=Path("."))


def spec_for(kind: str, port: int, **fields: Any) -> Any:
    fields.setdefault("api_key_env", None)
    if kind == "http":
        return HttpTargetSpec(url=f"http://127.0.0.1:{port}", **fields)
    if kind == "websocket":
        return WebsocketTargetSpec(url=f"ws://127.0.0.1:{port}", **fields)
    return WebrtcTargetSpec(url=f"http://127.0.0.1:{port}", **fields)


def observation(step: int = 3, value: int = 90, cameras: tuple[str, ...] = ("top",)) -> Observation:
    now = time.monotonic()
    img = np.full((*IMAGE_HW, 3), value, dtype=np.uint8)
    return Observation(
        step=step,
        state=StateSample(position=np.linspace(-0.5, 0.5, STATE_DIM), t_capture=now),
        images={name: Frame(img, now, 1) for name in cameras},
        task="wave",
    )


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(policy_host(), ServeOptions(port=0, api_key=KEY)) as srv:
        yield srv


def connected(spec: Any) -> Target:
    target: Target = spec.build(CTX)
    target.connect()
    return target


@pytest.mark.parametrize("kind", KINDS)
def test_each_target_gets_the_policy_chunk_with_timing(server: ServerThread, kind: str) -> None:
    target: Target = spec_for(kind, server.port, api_key=KEY).build(CTX)
    info = target.connect()
    try:
        assert (info.kind, info.chunk_length, info.action_dim, info.action_dt) == (kind, 50, STATE_DIM, 0.02)
        assert info.image_keys == ("top",) and info.providers == ("TestProvider",)
        for step in (3, 4):
            actions, timing = target.infer(observation(step))
            want = expected_actions(np.linspace(-0.5, 0.5, STATE_DIM), 90.0, step)
            # webrtc sends JPEG images and float32 actions: close, not bit-equal.
            np.testing.assert_allclose(actions, want, atol=0.01 if kind == "webrtc" else 1e-12)
            assert actions.dtype == np.float64
        assert timing["server_ms"] > 0 and timing["network_ms"] >= 0 and timing["retries"] == 0
        assert timing["rtt_ms"] == pytest.approx(timing["server_ms"] + timing["network_ms"], abs=0.01)
    finally:
        target.close()


@pytest.mark.parametrize("kind", KINDS)
def test_wrong_or_missing_key_fails_connect_clearly(server: ServerThread, kind: str) -> None:
    with pytest.raises(SetupError, match="API key rejected"):
        connected(spec_for(kind, server.port, api_key="wrong"))
    with pytest.raises(SetupError, match="401"):
        connected(spec_for(kind, server.port))


def test_key_comes_from_the_environment(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_POLICY_KEY", KEY)
    target = connected(HttpTargetSpec(url=server.url, api_key_env="MY_POLICY_KEY"))
    target.close()
    ctx_target: Target = HttpTargetSpec(url=server.url, api_key_env=None).build(BuildContext(Path("."), api_key=KEY))
    ctx_target.connect()
    ctx_target.close()


@pytest.mark.parametrize("kind", KINDS)
def test_unreachable_server_fails_connect(kind: str) -> None:
    port = free_port()
    with pytest.raises(SetupError, match="not ready within connect_timeout_s"):
        connected(spec_for(kind, port, connect_timeout_s=0.3))


def test_model_routing_mismatch_fails_connect(server: ServerThread) -> None:
    with pytest.raises(SetupError, match=r"target\.model is 'other'"):
        connected(spec_for("http", server.port, api_key=KEY, model="other"))
    target = connected(spec_for("websocket", server.port, api_key=KEY, model="test-policy"))
    assert target.infer(observation())[0].shape == (50, STATE_DIM)
    target.close()


@pytest.mark.parametrize("kind", KINDS)
def test_refusals_are_not_retried_and_name_the_field(server: ServerThread, kind: str) -> None:
    target = connected(spec_for(kind, server.port, api_key=KEY, retry_for_ms=5000))
    try:
        with pytest.raises(RemoteError, match=r"images\.top") as info:
            target.infer(observation(cameras=("side",)))  # the model's camera is missing
        assert info.value.status == 422
        assert target.infer(observation())[0].shape == (50, STATE_DIM)  # still usable
    finally:
        target.close()


@pytest.mark.parametrize("kind", KINDS)
def test_server_gone_mid_session_retries_then_gives_up(kind: str) -> None:
    srv = ServerThread(policy_host(), ServeOptions(port=0))
    srv.__enter__()
    target = connected(spec_for(kind, srv.port, retry_for_ms=300, retry_backoff_ms=20, timeout_s=2))
    try:
        target.infer(observation())
        srv.__exit__(None, None, None)
        with pytest.raises(TransportGaveUp, match=r"retry_for_ms=300 \(\d+ retries\)") as info:
            target.infer(observation())
        assert "0 retries" not in str(info.value)
    finally:
        target.close()


@pytest.mark.parametrize("kind", KINDS)
def test_server_back_within_the_retry_window_recovers(kind: str) -> None:
    port = free_port()
    first = ServerThread(policy_host(), ServeOptions(port=port))
    first.__enter__()
    target = connected(spec_for(kind, port, retry_for_ms=8000, retry_backoff_ms=20, timeout_s=2))
    second: ServerThread | None = None
    try:
        target.infer(observation())
        first.__exit__(None, None, None)
        second = ServerThread(policy_host(), ServeOptions(port=port))
        restart = threading.Timer(0.3, second.__enter__)
        restart.start()
        actions, timing = target.infer(observation(step=9))
        restart.join()
        assert timing["retries"] >= 1
        np.testing.assert_allclose(
            actions, expected_actions(np.linspace(-0.5, 0.5, STATE_DIM), 90.0, 9), atol=0.01
        )
    finally:
        target.close()
        if second is not None:
            second.__exit__(None, None, None)


# -- other servers -------------------------------------------------------------------------------


class AppThread:
    """Any aiohttp app on a loopback port (here: a FastCrest-style /act server)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0

    def __enter__(self) -> AppThread:
        from aiohttp import web

        async def start() -> Any:
            runner = web.AppRunner(self.app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        self.thread.start()
        self.runner, self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def test_http_mapping_reaches_another_policy_server() -> None:
    from aiohttp import web

    seen: list[dict[str, Any]] = []

    async def act(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append({**body, "auth": request.headers.get("Authorization")})
        return web.json_response({"result": {"actions": [[0.1] * 7] * 5}, "latency_ms": 1.25})

    app = web.Application()
    app.router.add_post("/act", act)
    mapping = {
        "images": {"top": "image"},
        "task_field": "instruction",
        "actions_path": "result.actions",
        "server_ms_path": "latency_ms",
        "extra": {"episode_id": "ep"},
        "action_dim": 7,
        "chunk_length": 5,
        "action_dt_s": 0.05,
    }
    with AppThread(app) as srv:
        spec = HttpTargetSpec(url=f"http://127.0.0.1:{srv.port}", api_key="k", api_key_env=None,
                              health_path=None, mapping=mapping)  # type: ignore[arg-type]
        target: Target = spec.build(CTX)
        info = target.connect()
        assert (info.chunk_length, info.action_dim, info.action_dt) == (5, 7, 0.05)
        actions, timing = target.infer(observation())
        target.close()
    assert actions.shape == (5, 7) and timing["server_ms"] == 1.25
    sent = seen[0]
    assert set(sent) == {"state", "image", "instruction", "episode_id", "auth"}
    assert sent["auth"] == "Bearer k" and sent["instruction"] == "wave" and len(sent["state"]) == STATE_DIM
    assert base64.b64decode(sent["image"])[:3] == b"\xff\xd8\xff"


def test_http_json_encoding_to_reflex_serve(server: ServerThread) -> None:
    target = connected(spec_for("http", server.port, api_key=KEY, encoding="json"))
    actions, _ = target.infer(observation(step=2, value=40))
    target.close()
    np.testing.assert_allclose(actions, expected_actions(np.linspace(-0.5, 0.5, STATE_DIM), 40.0, 2), atol=1e-9)


@pytest.mark.parametrize(("kind", "encoding"), [("websocket", "msgpack"), ("http", "msgpack"), ("http", "json")])
def test_jpeg_image_encoding_to_reflex_serve(server: ServerThread, kind: str, encoding: str) -> None:
    fields: dict[str, Any] = {"image_encoding": "jpeg", "jpeg_budget_bytes": 4000}
    if kind == "http":
        fields["encoding"] = encoding
    raw = connected(spec_for(kind, server.port, api_key=KEY))
    jpeg = connected(spec_for(kind, server.port, api_key=KEY, **fields))
    try:
        obs = observation(step=5, value=120)
        obs.images["top"].image[::2, ::2] = 0  # some texture to compress
        mean = float(obs.images["top"].image.mean())
        want = expected_actions(obs.state.position, mean, 5)
        raw_actions, raw_timing = raw.infer(obs)
        actions, timing = jpeg.infer(obs)
        np.testing.assert_allclose(raw_actions, want, atol=1e-9)  # raw is lossless
        np.testing.assert_allclose(actions, want, atol=0.02)  # JPEG is close
        assert raw_timing["image_bytes"] == obs.images["top"].image.nbytes
        assert 0 < timing["image_bytes"] <= 4000 < raw_timing["image_bytes"]
    finally:
        raw.close()
        jpeg.close()


def test_jpeg_image_encoding_is_refused_where_the_server_wants_raw_arrays() -> None:
    with pytest.raises(ValueError, match="openpi servers take raw arrays"):
        WebsocketTargetSpec(
            url="ws://127.0.0.1:1", image_encoding="jpeg", openpi={"action_dim": 14, "action_dt_s": 0.02}
        )
    mapping = {"action_dim": 14, "chunk_length": 50, "action_dt_s": 0.02}
    with pytest.raises(ValueError, match=r"use mapping\.image_encoding"):
        HttpTargetSpec(url="http://127.0.0.1:1", image_encoding="jpeg", mapping=mapping)


def test_webrtc_splits_large_requests_and_respects_the_budget() -> None:
    # A 480x640 camera at 60 KB per frame is two parts at part_bytes=32 KiB.
    from reflex.serve.model import ModelInfo

    info = ModelInfo(name="big", state_dim=STATE_DIM, action_dim=STATE_DIM, chunk_length=50, action_dt_s=0.02,
                     image_inputs={"top": (480, 640)})
    policy = ScriptedPolicy()
    with ServerThread(policy_host(policy, info), ServeOptions(port=0)) as srv:
        rng = np.random.default_rng(0)
        noisy = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
        spec = spec_for("webrtc", srv.port, jpeg_budget_bytes=60_000, jpeg_min_quality=5, part_bytes=32 * 1024)
        target = connected(spec)
        try:
            obs = observation()
            obs.images["top"] = Frame(noisy, time.monotonic(), 2)
            actions, timing = target.infer(obs)
            assert 32 * 1024 < timing["image_bytes"] <= 60_000
            np.testing.assert_allclose(actions[:, 0], expected_actions(obs.state.position, noisy.mean(), 3)[:, 0],
                                       atol=0.02)
        finally:
            target.close()
