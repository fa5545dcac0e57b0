"""``reflex connect`` (a real subprocess) against policy servers Reflex did not write:
the openpi stand-in (tests/openpi_standin.py, built from openpi's published behaviour) with an
ALOHA and a DROID checkpoint's layout, and a plain HTTP server reached through a field mapping.

Each session is checked against the server's own log: the recorded chunks are what the server
sent (DROID: after integrating its joint velocities), the server received the recorded state
and the recorded frames, resized as openpi's own client library would (``image_tools``).
"""

from __future__ import annotations

import base64
import io
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

pytest.importorskip("websockets")
pytest.importorskip("openpi_client")

from conftest import REPO
from openpi_client.image_tools import resize_with_pad
from openpi_standin import ALOHA_METADATA, AlohaPolicy, DroidPolicy, OpenpiStandin
from PIL import Image
from test_remote_sessions import recorded, run_connect

pytestmark = pytest.mark.timeout(120)
DROID_CAMERAS = (("exterior", "observation/exterior_image_1_left"), ("wrist", "observation/wrist_image_left"))


def session_from(config: str, tmp_path: Path, url: str, **overrides: Any) -> Path:
    """A shipped config with the server's url, a short run and the recording in ``tmp_path``."""
    data = yaml.safe_load((REPO / "configs" / config).read_text())
    data["target"]["url"] = url
    data["target"]["connect_timeout_s"] = 5.0
    data["max_steps"] = 100  # 2 s at 50 Hz (ALOHA), 6.7 s at 15 Hz (DROID): several chunks
    # lossless, so the recorded frames are the exact pixels the server was sent a resize of
    data["record"] = {"formats": ["jsonl"], "dir": str(tmp_path / "rec"), "image_encoding": "lossless"}
    data.update(overrides)
    path = tmp_path / "session.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def chunks_and_steps(tmp_path: Path) -> tuple[list[dict[str, Any]], dict[int, dict[str, Any]]]:
    records = recorded(tmp_path)
    chunks = [r for r in records if r["type"] == "chunk"]
    steps = {r["step"]: r for r in records if r["type"] == "step"}
    assert chunks and steps
    return chunks, steps


def frame_at(tmp_path: Path, steps: dict[int, dict[str, Any]], step: int, camera: str) -> np.ndarray:
    """The recorded frame of ``camera`` in the observation of ``step`` (the newest up to it)."""
    for k in range(step, -1, -1):
        entry = steps.get(k, {}).get("frames", {}).get(camera)
        if entry is not None:
            return np.asarray(Image.open(tmp_path / "rec" / "jsonl" / entry["path"]).convert("RGB"))
    raise AssertionError(f"no recorded frame of {camera} up to step {step}")


@pytest.fixture
def aloha() -> Iterator[OpenpiStandin]:
    with OpenpiStandin(AlohaPolicy(), ALOHA_METADATA) as server:
        yield server


def test_aloha_layout_session_against_the_openpi_standin(aloha: OpenpiStandin, tmp_path: Path) -> None:
    code, result, stderr = run_connect(session_from("openpi_aloha.yaml", tmp_path, aloha.url), None)
    assert code == 0 and result["ok"] is True, (result, stderr)
    assert result["safeStops"] == 0 and result["errors"] == []
    assert result["target"]["server_metadata"] == ALOHA_METADATA and result["target"]["chunkLength"] is None
    chunks, steps = chunks_and_steps(tmp_path)
    assert len(aloha.received) >= len(chunks) >= 2
    cameras = {"top": "cam_high", "left_wrist": "cam_left_wrist", "right_wrist": "cam_right_wrist"}
    for chunk, sent, obs in zip(chunks, aloha.sent, aloha.received, strict=False):
        np.testing.assert_array_equal(np.array(chunk["actions"]), sent)  # what the server sent, bit for bit
        step = steps[chunk["obs_step"]]
        assert obs["state"].dtype == np.float64 and obs["state"].shape == (14,)
        np.testing.assert_array_equal(obs["state"], step["state"])
        assert set(obs) == {"state", "images", "prompt"} and obs["prompt"] == "take the toast out of the toaster"
        assert set(obs["images"]) == set(cameras.values())
        for camera, key in cameras.items():
            image = obs["images"][key]
            assert image.dtype == np.uint8 and image.shape == (3, 224, 224)  # CHW, as ALOHA's policy takes
            expected = resize_with_pad(frame_at(tmp_path, steps, chunk["obs_step"], camera), 224, 224)
            np.testing.assert_array_equal(image.transpose(1, 2, 0), expected)
            assert not image[:, :20].any() and image[:, 100].any()  # letterboxed: 640x480 -> bars top and bottom


def test_droid_layout_session_against_the_openpi_standin(tmp_path: Path) -> None:
    with OpenpiStandin(DroidPolicy(), {}) as droid:  # DROID checkpoints send empty metadata (one byte, 0x80)
        code, result, stderr = run_connect(session_from("openpi_droid.yaml", tmp_path, droid.url), None)
    assert code == 0 and result["ok"] is True, (result, stderr)
    assert result["target"]["server_metadata"] == {}
    chunks, steps = chunks_and_steps(tmp_path)
    dt = 0.0667
    for chunk, sent, obs in zip(chunks, droid.sent, droid.received, strict=False):
        assert sent.shape == (15, 8)
        state = np.array(steps[chunk["obs_step"]]["state"])
        assert set(obs) == {"observation/joint_position", "observation/gripper_position",
                            "observation/exterior_image_1_left", "observation/wrist_image_left", "prompt"}
        np.testing.assert_array_equal(obs["observation/joint_position"], state[:7])
        np.testing.assert_array_equal(obs["observation/gripper_position"], state[7:])
        # 7 joint velocities become targets from the observed joints; the gripper column is as sent
        velocity = sent[:, :7]
        targets = state[:7] + (np.cumsum(velocity, axis=0) - velocity) * dt
        np.testing.assert_allclose(np.array(chunk["actions"])[:, :7], targets, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(np.array(chunk["actions"])[:, 7], sent[:, 7])
        for camera, key in DROID_CAMERAS:
            image = obs[key]
            assert image.dtype == np.uint8 and image.shape == (224, 224, 3)  # HWC
            expected = resize_with_pad(frame_at(tmp_path, steps, chunk["obs_step"], camera), 224, 224)
            np.testing.assert_array_equal(image, expected)


def test_openpi_server_exception_mid_session_is_one_safe_stop_with_its_message(tmp_path: Path) -> None:
    def explode(n: int) -> None:
        if n == 3:
            raise RuntimeError("checkpoint ran out of GPU memory (request 3)")

    with OpenpiStandin(AlohaPolicy(), {}, on_request=explode) as server:
        config = session_from("openpi_aloha.yaml", tmp_path, server.url, max_steps=0, duration_s=60)
        code, result, stderr = run_connect(config, None)
        assert server.failures == 1
    assert code == 1 and result["ok"] is False, (result, stderr)
    assert result["safeStops"] == 1
    assert any("checkpoint ran out of GPU memory (request 3)" in e for e in result["errors"]), result["errors"]
    records = recorded(tmp_path)
    assert records[-1]["type"] == "end" and len([r for r in records if r["type"] == "chunk"]) == 2


# -- a plain HTTP policy server behind a field mapping --------------------------------------------


class PlainPolicyServer:
    """A small HTTP policy server as docs/remote-targets.md describes (stdlib only): POST /act
    with ``{state, image (base64 PNG), instruction}`` -> ``{"result": {"actions": ...}, "latency_ms"}``.

    ``flood_bytes``: from the ``flood_after``-th request on, answer with that many bytes instead
    (with a Content-Length, or chunked without one); ``flood_sent`` counts what got out."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None, flood_bytes: int = 0,
                 flood_chunked: bool = False, flood_after: int = 1) -> None:
        self.received: list[dict[str, Any]] = []
        self.sent: list[np.ndarray] = []
        self.flood_sent = 0
        self.scheme = "https" if ssl_context else "http"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._reply(200, {"status": "ok"})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.received.append(body)
                if flood_bytes and len(owner.received) >= flood_after:
                    self._flood()
                    return
                state = np.array(body["state"])
                image = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("RGB"))
                rows = np.arange(20)[:, None] * 1e-3
                actions = state[None, :] + rows + float(image.mean()) * 1e-5
                owner.sent.append(actions)
                self._reply(200, {"result": {"actions": actions.tolist()}, "latency_ms": 0.5})

            def _reply(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _flood(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if flood_chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(flood_bytes))
                self.end_headers()
                piece = b"[" + b"0," * 32767 + b"0"
                try:
                    while owner.flood_sent < flood_bytes:
                        data = piece[: flood_bytes - owner.flood_sent]
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if flood_chunked else data)
                        owner.flood_sent += len(data)
                except OSError:
                    self.close_connection = True  # the client stopped reading: expected

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if ssl_context is not None:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> PlainPolicyServer:
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_mapped_http_session_against_a_plain_http_server(tmp_path: Path) -> None:
    target = {
        "kind": "http", "connect_timeout_s": 5.0, "health_path": "/",
        "mapping": {
            "images": {"top": "image"}, "image_encoding": "png", "image_inputs": {"top": [224, 224]},
            "task_field": "instruction", "actions_path": "result.actions", "server_ms_path": "latency_ms",
            "chunk_length": 20, "action_dt_s": 0.02,  # no action_dim: left unknown, the first chunk is checked
        },
    }
    with PlainPolicyServer() as server:
        target["url"] = server.url
        config = tmp_path / "session.yaml"
        config.write_text(yaml.safe_dump({
            "mode": "dry_run", "control_rate_hz": 50, "max_steps": 30, "task": "wave",
            "target": target, "hardware": {"kind": "sim"},
            "cameras": {"top": {"kind": "sim", "width": 320, "height": 240}},
            "record": {"formats": ["jsonl"], "dir": str(tmp_path / "rec"), "image_encoding": "lossless"},
        }))
        code, result, stderr = run_connect(config, None)
    assert code == 0 and result["ok"] is True, (result, stderr)
    chunks, steps = chunks_and_steps(tmp_path)
    for chunk, sent, body in zip(chunks, server.sent, server.received, strict=False):
        np.testing.assert_array_equal(np.array(chunk["actions"]), sent)
        assert body["state"] == steps[chunk["obs_step"]]["state"] and body["instruction"] == "wave"
        frame = frame_at(tmp_path, steps, chunk["obs_step"], "top")
        expected = np.asarray(Image.fromarray(frame).resize((224, 224), Image.Resampling.BILINEAR))
        got = np.asarray(Image.open(io.BytesIO(base64.b64decode(body["image"]))).convert("RGB"))
        np.testing.assert_array_equal(got, expected)
        assert chunk["timing_ms"]["server_ms"] == 0.5
