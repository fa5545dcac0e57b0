"""Batching across robots in ``reflex serve``: same chunks as unbatched, bounded queue, 429."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("onnxruntime")

from serve_testutil import ServerThread, http_json

from reflex.serve.host import PolicyHost
from reflex.serve.model import load_onnx_export
from reflex.serve.options import ServeOptions
from reflex.wire.msgpack_numpy import packb

pytestmark = pytest.mark.timeout(120)
ROBOTS = 8


class GatedPolicy:
    """The real demo export; its first call waits on ``gate`` so the requests behind it queue up."""

    def __init__(self, policy: Any, gate: threading.Event) -> None:
        self.policy = policy
        self.gate = gate
        self.batch_sizes: list[int] = []

    def predict(self, state: np.ndarray, images: dict[str, np.ndarray], step: int, task: str = "") -> np.ndarray:
        return self.predict_batch(state[None], {k: v[None] for k, v in images.items()}, [step], [task])[0]

    def predict_batch(self, states: np.ndarray, images: dict[str, np.ndarray], steps: list[int],
                      tasks: list[str] | None = None) -> np.ndarray:
        assert self.gate.wait(30), "the test never opened the gate"
        self.batch_sizes.append(len(steps))
        return self.policy.predict_batch(states, images, steps, tasks)


def robot_request(robot: int) -> bytes:
    """A different observation per robot: its own state, camera image and step."""
    rng = np.random.default_rng(100 + robot)
    return packb({
        "state": rng.uniform(-0.5, 0.5, 14),
        "images": {"top": rng.integers(0, 256, (96, 128, 3), dtype=np.uint8)},
        "step": 3 * robot + 1,
        "request_id": f"robot-{robot}",
    })


def post(port: int, body: bytes) -> tuple[int, Any, dict[str, str]]:
    return http_json(port, "POST", "/act", raw=body, content_type="application/msgpack")


def wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def gated_host(gate: threading.Event, **kwargs: Any) -> tuple[PolicyHost, GatedPolicy]:
    policy, info = load_onnx_export("builtin:demo")
    gated = GatedPolicy(policy, gate)
    return PolicyHost(lambda: (gated, info), warmup=False, **kwargs), gated


def test_batched_chunks_are_bit_identical_to_unbatched_per_robot() -> None:
    open_gate = threading.Event()
    open_gate.set()
    host, plain = gated_host(open_gate, max_batch=1)
    with ServerThread(host, ServeOptions(port=0, webrtc=False)) as srv:
        alone = {r: post(srv.port, robot_request(r)) for r in range(ROBOTS)}
    assert plain.batch_sizes == [1] * ROBOTS

    gate = threading.Event()
    host, batched = gated_host(gate, max_batch=ROBOTS, max_wait_ms=1000.0, max_concurrent=2 * ROBOTS)
    with ServerThread(host, ServeOptions(port=0, webrtc=False)) as srv, ThreadPoolExecutor(ROBOTS) as pool:
        futures = {r: pool.submit(post, srv.port, robot_request(r)) for r in range(ROBOTS)}
        # robot 0's batch is held in the model; the other seven queue behind it, then run as one
        wait_for(lambda: host.in_flight == ROBOTS, "every robot's request to be admitted")
        gate.set()
        together = {r: f.result(30) for r, f in futures.items()}
    assert sum(batched.batch_sizes) == ROBOTS and max(batched.batch_sizes) >= ROBOTS - 1, batched.batch_sizes
    for r in range(ROBOTS):
        (s1, b1, _), (s2, b2, _) = alone[r], together[r]
        assert s1 == s2 == 200, (b1, b2)
        assert b2["request_id"] == f"robot-{r}" and b2["step"] == 3 * r + 1
        a1, a2 = np.asarray(b1["actions"]), np.asarray(b2["actions"])
        assert a1.dtype == a2.dtype and a1.tobytes() == a2.tobytes(), f"robot {r}: batching changed its chunk"
    chunks = [np.asarray(together[r][1]["actions"]) for r in range(ROBOTS)]
    assert not np.array_equal(chunks[0], chunks[1])  # rows really are each robot's own


def test_full_queue_is_429_with_retry_after_and_the_server_recovers() -> None:
    gate = threading.Event()
    host, policy = gated_host(gate, max_batch=2, max_wait_ms=0.0, max_concurrent=3)
    with ServerThread(host, ServeOptions(port=0, webrtc=False)) as srv, ThreadPoolExecutor(3) as pool:
        admitted = [pool.submit(post, srv.port, robot_request(r)) for r in range(3)]
        wait_for(lambda: host.in_flight == 3, "three requests to be admitted")
        status, body, headers = post(srv.port, robot_request(3))
        assert (status, body["error"]["code"]) == (429, "overloaded") and int(headers["Retry-After"]) >= 1
        assert host.in_flight == 3  # the refused request took no slot
        assert host.queue_depth >= 1  # a batch holds at most 2: the third waits in the queue
        gate.set()
        assert [f.result(30)[0] for f in admitted] == [200, 200, 200]
        wait_for(lambda: host.in_flight == 0, "the queue to drain")
        status, body, _ = post(srv.port, robot_request(3))  # recovered: the same request now succeeds
        assert status == 200 and body["request_id"] == "robot-3"
    assert sorted(policy.batch_sizes) == [1, 1, 2]  # one alone (held), then the two queued together, then one


def test_a_request_waits_for_company_only_when_the_model_is_idle() -> None:
    """--max-wait-ms holds a batch open only when its first request found the model idle; one
    that queued while a batch ran goes as soon as that batch ends (here: instead of 60 s later)."""
    gate = threading.Event()
    host, policy = gated_host(gate, max_batch=2, max_wait_ms=60_000.0, max_concurrent=4)
    with ServerThread(host, ServeOptions(port=0, webrtc=False)) as srv, ThreadPoolExecutor(3) as pool:
        first = pool.submit(post, srv.port, robot_request(0))
        wait_for(lambda: host.in_flight == 1, "the first request to be admitted")
        second = pool.submit(post, srv.port, robot_request(1))  # the first waited for it: one batch of 2
        wait_for(lambda: host.in_flight == 2 and host.queue_depth == 0, "both to be taken into one batch")
        third = pool.submit(post, srv.port, robot_request(2))  # arrives while that batch computes
        wait_for(lambda: host.in_flight == 3 and host.queue_depth == 1, "the third request to queue")
        gate.set()
        assert [f.result(30)[0] for f in (first, second, third)] == [200, 200, 200]
    assert policy.batch_sizes == [2, 1]


def test_robot_side_http_target_retries_a_429_within_its_window() -> None:
    from pathlib import Path

    from reflex.config.base import BuildContext
    from reflex.ports import Frame, Observation, StateSample
    from reflex.targets.http.config import HttpTargetSpec

    gate = threading.Event()
    host, _ = gated_host(gate, max_batch=2, max_wait_ms=0.0, max_concurrent=1)
    with ServerThread(host, ServeOptions(port=0, webrtc=False)) as srv, ThreadPoolExecutor(2) as pool:
        spec = HttpTargetSpec(url=srv.url, api_key_env=None, retry_for_ms=20000, retry_backoff_ms=10, timeout_s=20)
        target = spec.build(BuildContext(config_dir=Path(".")))
        try:
            gate.set()
            target.connect()
            gate.clear()
            blocker = pool.submit(post, srv.port, robot_request(0))  # takes the only slot
            wait_for(lambda: host.in_flight == 1, "the blocking request to be admitted")
            now = time.monotonic()
            obs = Observation(
                step=5,
                state=StateSample(position=np.linspace(-0.4, 0.4, 14), t_capture=now),
                images={"top": Frame(np.full((96, 128, 3), 50, dtype=np.uint8), now, 1)},
                task="",
            )
            robot = pool.submit(target.infer, obs)
            wait_for(lambda: host.refused >= 1, "the robot's request to be refused with 429")
            gate.set()
            actions, timing = robot.result(30)
            assert blocker.result(30)[0] == 200
        finally:
            gate.set()
            target.close()
    assert timing["retries"] >= 1 and actions.shape == (50, 14) and np.all(np.isfinite(actions))
