"""openpi-client (from PyPI, unmodified) against ``reflex serve builtin:demo`` as a subprocess."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

try:
    from openpi_client.websocket_client_policy import WebsocketClientPolicy
except ImportError:  # pragma: no cover - the dev install provides it
    pytest.fail(
        "openpi-client is not installed: `make install-dev` runs pip install --no-deps openpi-client==0.1.2",
        pytrace=False,
    )

from serve_testutil import ServeProcess

from reflex.policy.onnx_policy import OnnxPolicy
from reflex.targets.export_manifest import resolve_export_dir

# openpi-client 0.1.2 calls websockets.connect() the pre-17.1 way; not ours to fix.
pytestmark = [pytest.mark.timeout(90), pytest.mark.filterwarnings("ignore::DeprecationWarning")]
KEY = "openpi-test-key"


@pytest.fixture(scope="module")
def served() -> Iterator[ServeProcess]:
    proc = ServeProcess("builtin:demo", api_key=KEY)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def local_policy() -> OnnxPolicy:
    return OnnxPolicy(resolve_export_dir("builtin:demo", Path.cwd()))


def observation(step: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {
        "state": rng.uniform(-0.5, 0.5, 14).astype(np.float32),
        "images": {"top": rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)},
        "prompt": "wave",
        "step": step,
    }


def test_openpi_client_gets_the_same_actions_as_the_local_policy(
    served: ServeProcess, local_policy: OnnxPolicy
) -> None:
    client = WebsocketClientPolicy("127.0.0.1", served.port, api_key=KEY)
    meta = client.get_server_metadata()
    assert meta["action_horizon"] == 50 and meta["model"]["name"] == "reflex-demo-spiral"
    for step, seed in [(0, 1), (7, 2), (123, 3)]:
        obs = observation(step, seed)
        result = client.infer(obs)
        expected = local_policy.predict(
            np.asarray(obs["state"], dtype=np.float64), {"top": obs["images"]["top"]}, step  # type: ignore[index]
        )
        assert result["actions"].shape == (50, 14)
        np.testing.assert_allclose(result["actions"], expected, rtol=0, atol=1e-9)
        assert result["server_timing"]["infer_ms"] > 0 and "total_ms" in result["server_timing"]


def test_chw_images_as_aloha_clients_send_them(served: ServeProcess, local_policy: OnnxPolicy) -> None:
    client = WebsocketClientPolicy("127.0.0.1", served.port, api_key=KEY)
    obs = observation(5, 9)
    hwc = obs["images"]["top"]  # type: ignore[index]
    obs["images"] = {"top": np.ascontiguousarray(hwc.transpose(2, 0, 1))}
    result = client.infer(obs)
    expected = local_policy.predict(np.asarray(obs["state"], dtype=np.float64), {"top": hwc}, 5)
    np.testing.assert_allclose(result["actions"], expected, atol=1e-9)


def test_errors_arrive_as_text_frames_and_the_connection_survives(served: ServeProcess) -> None:
    client = WebsocketClientPolicy("127.0.0.1", served.port, api_key=KEY)
    bad = observation(0, 1)
    bad["wrist_cam"] = np.zeros(3)
    with pytest.raises(RuntimeError, match=r"unknown_field.*wrist_cam"):
        client.infer(bad)
    missing = observation(0, 1)
    missing["images"] = {}
    with pytest.raises(RuntimeError, match=r"images\.top"):
        client.infer(missing)
    assert client.infer(observation(1, 1))["actions"].shape == (50, 14)  # same connection, still fine


def test_wrong_key_is_refused_at_the_upgrade(served: ServeProcess) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as info:
        WebsocketClientPolicy("127.0.0.1", served.port, api_key="wrong")
    assert info.value.response.status_code == 401
    with pytest.raises(InvalidStatus):
        WebsocketClientPolicy("127.0.0.1", served.port)  # no key at all
