"""Helpers for the serve/remote tests: a test policy, an in-process server on a real loopback
port, ``reflex serve`` as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from reflex.serve.host import PolicyHost
from reflex.serve.model import ModelInfo
from reflex.serve.options import ServeOptions

REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
STATE_DIM = 14
CHUNK = 50
IMAGE_HW = (96, 128)


def make_info(**overrides: Any) -> ModelInfo:
    fields: dict[str, Any] = {
        "name": "test-policy",
        "state_dim": STATE_DIM,
        "action_dim": STATE_DIM,
        "chunk_length": CHUNK,
        "action_dt_s": 0.02,
        "image_inputs": {"top": IMAGE_HW},
        "action_names": tuple(f"j{i}" for i in range(STATE_DIM)),
        "providers": ("TestProvider",),
        "model_hash": "0" * 64,
        "seed": 1,
    }
    fields.update(overrides)
    return ModelInfo(**fields)


def expected_actions(state: np.ndarray, image_mean: float, step: int) -> np.ndarray:
    rows = np.arange(CHUNK, dtype=np.float64)[:, None] * 0.01
    return np.asarray(state, dtype=np.float64)[None, :] + rows + step * 0.001 + image_mean / 255.0


class ScriptedPolicy:
    """Deterministic actions that depend on every input, so a wrong field shows in the result.

    ``gate``: when set, ``predict`` waits on it (to hold requests in flight); ``fail``: raise.
    """

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.gate = gate
        self.fail = fail
        self.calls = 0

    def predict(self, state: np.ndarray, images: dict[str, np.ndarray], step: int, task: str = "") -> np.ndarray:
        self.calls += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail:
            raise RuntimeError("policy exploded on purpose")
        mean = float(np.mean(images["top"])) if "top" in images else 0.0
        return expected_actions(state, mean, step)


class ServerThread:
    """The real aiohttp app on 127.0.0.1:<free port>, on its own event-loop thread."""

    def __init__(self, host: PolicyHost, options: ServeOptions | None = None, load: bool = True) -> None:
        self.host = host
        self.options = options or ServeOptions(port=0)
        self.port = 0
        self._load = load
        self._loop = asyncio.new_event_loop()
        self._runner: Any = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        from reflex.serve.app import create_app, start_site

        self._thread.start()
        app = create_app(self.host, self.options)
        fut = asyncio.run_coroutine_threadsafe(start_site(app, self.options), self._loop)
        self._runner, self.port = fut.result(10)
        if self._load:
            self.host.start()
            assert self.host.wait_ready(10), self.host.error
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        asyncio.run_coroutine_threadsafe(self.host.aclose(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self.host.close()


def policy_host(policy: Any = None, info: ModelInfo | None = None, **kwargs: Any) -> PolicyHost:
    chosen = policy if policy is not None else ScriptedPolicy()
    model = info or make_info()
    return PolicyHost(lambda: (chosen, model), **kwargs)


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(REPO), env.get("PYTHONPATH", "")])
    for key in ("REFLEX_API_KEY", "REFLEX_SERVE_API_KEY", "REFLEX_NO_RECORD"):
        env.pop(key, None)
    env.update(extra)
    return env


class ServeProcess:
    """``reflex serve EXPORT --port 0`` as a real subprocess; waits for /health 200."""

    def __init__(self, export: str = "builtin:demo", api_key: str | None = None, args: list[str] | None = None):
        extra = {"REFLEX_SERVE_API_KEY": api_key} if api_key else {}
        self.api_key = api_key
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reflex", "serve", export, "--port", "0", *(args or [])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=subprocess_env(**extra),
            cwd=REPO,
        )
        self.port = self._read_port(timeout=30)
        self.wait_healthy(timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _read_port(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                if "listening on" in line:
                    return int(line.strip().rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                break
        self.stop()
        raise AssertionError(f"reflex serve did not start: {self.proc.stderr.read() if self.proc.stderr else ''}")

    def wait_healthy(self, timeout: float) -> None:
        import http.client

        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/health", headers=headers)
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("reflex serve never became healthy")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
              raw: bytes | None = None, content_type: str = "application/json") -> tuple[int, Any, dict[str, str]]:
    """One HTTP request on a fresh connection: (status, decoded body, headers)."""
    import http.client

    from reflex.wire.msgpack_numpy import unpackb

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    all_headers = {"Content-Type": content_type, **(headers or {})} if data is not None else dict(headers or {})
    conn.request(method, path, body=data, headers=all_headers)
    resp = conn.getresponse()
    payload = resp.read()
    ctype = resp.getheader("Content-Type", "")
    conn.close()
    if "msgpack" in ctype:
        decoded: Any = unpackb(payload)
    else:
        try:
            decoded = json.loads(payload)
        except ValueError:
            decoded = payload.decode(errors="replace")
    return resp.status, decoded, dict(resp.getheaders())
