"""Inference off the control thread: one request in flight, polled without blocking."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from reflex.ports import Observation, Target


@dataclass
class InferenceResult:
    obs: Observation
    t_requested: float
    t_received: float
    actions: np.ndarray | None
    timing: dict[str, float]
    error: BaseException | None
    request_id: str | None = None  # the server's id of this answer (remote targets)


class InferenceWorker:
    """A daemon thread running ``target.infer``; the control loop submits and polls."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._request: tuple[Observation, float] | None = None
        self._result: InferenceResult | None = None
        self._busy_since: float | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="reflex-inference", daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy_since is not None

    def busy_for(self, now: float) -> float:
        since = self._busy_since
        return 0.0 if since is None else now - since

    def submit(self, obs: Observation) -> None:
        with self._lock:
            if self._busy_since is not None:
                raise RuntimeError("an inference request is already in flight")
            now = time.monotonic()
            self._request = (obs, now)
            self._busy_since = now
            self._wake.notify()

    def poll(self) -> InferenceResult | None:
        with self._lock:
            result, self._result = self._result, None
            return result

    def wait(self, timeout: float) -> InferenceResult | None:
        """Block until a result is ready (used only for the first chunk, before motors are live)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.poll()
            if result is not None:
                return result
            time.sleep(0.001)
        return None

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking requests and wait (bounded) for one still in flight: a process must not
        exit, nor the target close, while native inference code runs on this thread."""
        with self._lock:
            self._closed = True
            self._wake.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._request is None and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                assert self._request is not None
                obs, t_requested = self._request
                self._request = None
            actions: np.ndarray | None = None
            timing: dict[str, float] = {}
            error: BaseException | None = None
            try:
                actions, timing = self._target.infer(obs)
            except BaseException as exc:  # reported to the control loop, which safe-stops
                error = exc
            # remote targets keep the id of their last answer; read here, by the thread that asked
            request_id = getattr(self._target, "last_request_id", None) if error is None else None
            result = InferenceResult(obs, t_requested, time.monotonic(), actions, timing, error,
                                     request_id if isinstance(request_id, str) else None)
            with self._lock:
                self._result = result
                self._busy_since = None
