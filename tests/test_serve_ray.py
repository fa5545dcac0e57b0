"""``reflex serve --backend ray`` on a local Ray instance (loopback only): the same chunks as the
plain server for several concurrent robots, /health, /metrics and openpi's WebSocket.

One Ray instance for the whole module (start-up takes seconds); its finaliser always stops it:
SIGTERM (the server shuts Serve and Ray down), then SIGKILL to the whole process group."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray.serve")
pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")

from serve_testutil import REPO, ServerThread, http_json, subprocess_env

from reflex.serve.host import PolicyHost
from reflex.serve.model import load_onnx_export
from reflex.serve.options import ServeOptions
from reflex.wire.msgpack_numpy import packb, unpackb

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
START_TIMEOUT_S = 240.0  # a cold Ray start is 10-40 s here, more on a loaded machine
ROBOTS = 6
KEY = "fleet-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


class RayServe:
    def __init__(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="rt")  # short: Ray's socket paths must fit 107 bytes
        env = subprocess_env(
            REFLEX_SERVE_API_KEY=KEY, RAY_TMPDIR=self.tmp, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0"
        )
        # stderr to a file: a pipe nobody drains would fill up and block Ray's logging
        self.log = open(os.path.join(self.tmp, "serve.err"), "w+")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reflex", "serve", "builtin:demo", "--backend", "ray", "--port", "0",
             "--replicas", "2", "--max-batch", "4", "--max-wait-ms", "5"],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=REPO, start_new_session=True,
        )
        self.port = self._wait_ready()

    def _wait_ready(self) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:  # printed once the application is deployed (its ready line follows)
                line = self.proc.stdout.readline()
                if "listening on" in line:
                    return int(line.strip().rsplit(":", 1)[1])
        self.log.seek(0)
        err = self.log.read()[-3000:]
        self.stop()
        raise AssertionError(f"the Ray backend did not come up: {err}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(90)
        with contextlib.suppress(ProcessLookupError, PermissionError):  # whatever Ray left in the session
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_server() -> Iterator[RayServe]:
    server = RayServe()
    try:
        yield server
    finally:
        server.stop()


def robot_body(robot: int, call: int) -> bytes:
    rng = np.random.default_rng(1000 * robot + call)
    return packb({
        "state": rng.uniform(-0.5, 0.5, 14),
        "images": {"top": rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)},
        "step": 10 * call + robot,
    })


def act(port: int, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    status, reply, _ = http_json(port, "POST", "/act", raw=body, content_type="application/msgpack", headers=headers)
    return status, reply


def test_ray_backend_answers_health_and_act_like_the_plain_server(ray_server: RayServe) -> None:
    status, health, _ = http_json(ray_server.port, "GET", "/health", headers=AUTH)
    assert status == 200 and health["ready"] and health["model"]["name"] == "reflex-demo-spiral"
    assert http_json(ray_server.port, "GET", "/health")[0] == 401  # the same key as the plain server

    bodies = {(r, c): robot_body(r, c) for r in range(ROBOTS) for c in range(3)}
    with ThreadPoolExecutor(ROBOTS) as pool:  # robots in parallel, each sending its own stream
        futures = {key: pool.submit(act, ray_server.port, body, AUTH) for key, body in bodies.items()}
        on_ray = {key: f.result(120) for key, f in futures.items()}

    policy, info = load_onnx_export("builtin:demo")
    with ServerThread(PolicyHost(lambda: (policy, info)), ServeOptions(port=0, webrtc=False)) as plain:
        for key, body in bodies.items():
            status, reply = act(plain.port, body, {})
            assert status == 200
            ray_status, ray_reply = on_ray[key]
            assert ray_status == 200, ray_reply
            assert np.asarray(ray_reply["actions"]).tobytes() == np.asarray(reply["actions"]).tobytes(), key
            assert ray_reply["request_id"] and ray_reply["step"] == reply["step"]


def test_ray_backend_metrics_and_openpi_websocket(ray_server: RayServe) -> None:
    from prometheus_client.parser import text_string_to_metric_families
    from websockets.sync.client import connect

    with connect(f"ws://127.0.0.1:{ray_server.port}/", additional_headers=AUTH, max_size=None,
                 open_timeout=60) as ws:
        meta = unpackb(ws.recv(60))
        assert meta["model"]["name"] == "reflex-demo-spiral" and meta["action_horizon"] == 50
        ws.send(robot_body(0, 7))
        reply = unpackb(ws.recv(60))
    status, plain = act(ray_server.port, robot_body(0, 7), AUTH)
    assert status == 200 and np.asarray(reply["actions"]).tobytes() == np.asarray(plain["actions"]).tobytes()

    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", ray_server.port, timeout=30)
    conn.request("GET", "/metrics", headers=AUTH)
    resp = conn.getresponse()
    text = resp.read().decode()
    assert resp.status == 200, text
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"reflex_requests", "reflex_inference_seconds", "reflex_batch_size", "reflex_model_state"} <= names


def model_replica_pids(server: RayServe) -> list[int]:
    """The ReflexPolicy replicas' processes of this server (Ray names them in their title)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = open(f"/proc/{entry}/cmdline", "rb").read()  # noqa: SIM115 (read at once)
            if b"ServeReplica:reflex:ReflexPolicy" in title and os.getsid(int(entry)) == server.proc.pid:
                pids.append(int(entry))
        except OSError:  # gone meanwhile, or not ours
            continue
    return pids


def act_slow(port: int, body: bytes) -> tuple[int, Any]:
    """One /act that may wait for a stalled model: a long socket timeout, unlike http_json's."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/act", body=body, headers={"Content-Type": "application/msgpack", **AUTH})
        resp = conn.getresponse()
        return resp.status, unpackb(resp.read())
    finally:
        conn.close()


def test_ray_backend_overload_is_429_with_retry_after_and_recovers(ray_server: RayServe) -> None:
    """A stalled model (its replica processes stopped, as a hung GPU would leave them): requests
    pile up to --max-concurrent, the next one is refused at once with 429 + Retry-After, and the
    server answers again once the model moves."""
    def health() -> Any:
        status, body, _ = http_json(ray_server.port, "GET", "/health", headers=AUTH)
        assert status == 200, body
        return body

    if not os.path.isdir("/proc"):
        pytest.skip("finds the model replicas' processes through /proc")
    limit = health()["max_concurrent"]
    refused_before = health()["refused"]
    pids = model_replica_pids(ray_server)
    assert len(pids) == 2, pids  # --replicas 2
    deadline = time.monotonic() + 60
    with ThreadPoolExecutor(limit) as pool:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            held = [pool.submit(act_slow, ray_server.port, robot_body(r, 20)) for r in range(limit)]
            while health()["in_flight"] < limit:
                assert time.monotonic() < deadline, "the held requests never reached the model"
                time.sleep(0.05)
            status, body, headers = http_json(ray_server.port, "POST", "/act", raw=robot_body(limit, 20),
                                              content_type="application/msgpack", headers=AUTH)
            assert (status, body["error"]["code"]) == (429, "overloaded"), body
            assert int({k.lower(): v for k, v in headers.items()}["retry-after"]) >= 1  # Ray lower-cases names
            assert health()["refused"] == refused_before + 1 and health()["in_flight"] == limit
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        assert [f.result(120)[0] for f in held] == [200] * limit  # the queued ones are served, none lost
    status, reply = act(ray_server.port, robot_body(limit, 20), AUTH)  # recovered: the refused request now works
    assert status == 200 and np.asarray(reply["actions"]).shape == (50, 14)
    assert health()["in_flight"] == 0
    assert refusals(ray_server.port) == refused_before + 1  # and /metrics counted it


def refusals(port: int) -> float:
    """reflex_request_errors{endpoint="/act", code="429", error="overloaded"} from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text, _ = http_json(port, "GET", "/metrics", headers=AUTH)
    assert status == 200, text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "reflex_request_errors_total"
               and s.labels == {"endpoint": "/act", "code": "429", "error": "overloaded"})
