"""The openpi stand-in behaves as openpi's published server does, checked with openpi's own
client library (openpi-client 0.1.2) and raw WebSocket/HTTP, so sessions against it mean
something. Then Reflex's websocket target meets it without and with ``target.openpi``."""

from __future__ import annotations

import http.client
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("websockets")
pytest.importorskip("openpi_client")

from openpi_client.websocket_client_policy import WebsocketClientPolicy
from openpi_standin import ALOHA_METADATA, CLOSE_REASON, AlohaPolicy, DroidPolicy, OpenpiStandin
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from reflex.config.base import BuildContext
from reflex.errors import SetupError
from reflex.targets.websocket.config import WebsocketTargetSpec

pytestmark = [pytest.mark.timeout(60), pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def aloha_observation(prompt: str = "do something") -> dict[str, object]:
    rng = np.random.default_rng(0)
    images = {k: rng.integers(0, 256, (3, 224, 224), dtype=np.uint8)
              for k in ("cam_high", "cam_left_wrist", "cam_right_wrist")}
    return {"state": np.linspace(-1, 1, 14), "images": images, "prompt": prompt}


def test_openpi_client_reads_metadata_and_timing_from_the_standin() -> None:
    with OpenpiStandin(AlohaPolicy(), ALOHA_METADATA) as server:
        client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
        assert client.get_server_metadata() == ALOHA_METADATA
        first = client.infer(aloha_observation())
        second = client.infer(aloha_observation())
    assert first["actions"].shape == (50, 14) and not first["actions"].flags.writeable  # read-only views
    assert set(first["server_timing"]) == {"infer_ms"} and "infer_ms" in first["policy_timing"]
    assert set(second["server_timing"]) == {"infer_ms", "prev_total_ms"}


def test_a_policy_exception_is_a_traceback_frame_then_close_1011_and_the_server_lives_on() -> None:
    with OpenpiStandin(AlohaPolicy(fail_on_prompt="explode"), {}) as server:
        for _ in range(3):  # openpi keeps listening after each failure
            client = WebsocketClientPolicy(host="127.0.0.1", port=server.port)
            with pytest.raises(RuntimeError, match="Error in inference server:\nTraceback") as failed:
                client.infer(aloha_observation("explode"))
            assert "ValueError: policy cannot do 'explode'" in str(failed.value)
            with pytest.raises(ConnectionClosedError) as closed:
                client._ws.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1011, CLOSE_REASON)
        assert server.failures == 3


def test_empty_metadata_is_one_byte_and_plain_http_gets_healthz_or_426() -> None:
    with OpenpiStandin(DroidPolicy(), {}) as server:
        with connect(server.url, compression=None, max_size=None) as ws:
            assert ws.recv() == b"\x80"
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"OK\n")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 426


def test_without_target_openpi_reflex_names_what_is_missing(tmp_path: Path) -> None:
    with OpenpiStandin(AlohaPolicy(), {}) as server, pytest.raises(SetupError, match=r"target\.openpi"):
        WebsocketTargetSpec(url=server.url, api_key_env=None, connect_timeout_s=2).build(
            BuildContext(config_dir=tmp_path)).connect()
