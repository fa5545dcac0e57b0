"""The hosted policy: loading and warm-up state, one inference thread, a concurrency limit.

States: ``loading`` -> ``warming`` -> ``ready``; a load or warm-up failure ends in ``failed``
(the server keeps answering /health with the error, and every /act with 503). The port is bound
before loading starts, so clients see 503 instead of a refused connection while a model warms.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from reflex.serve.batcher import Batcher
from reflex.serve.model import ModelInfo, PolicyLike
from reflex.serve.request import ActRequest, RequestError

log = logging.getLogger("reflex.serve")

Loader = Callable[[], tuple[PolicyLike, ModelInfo]]


class InferenceObserver(Protocol):
    def on_batch(self, size: int) -> None: ...

    def on_request(self, queue_ms: float, infer_ms: float) -> None: ...

# A policy whose calls average under this runs on the event loop itself: handing it to the
# inference thread and back would cost more than the call (two thread switches under the GIL).
INLINE_BELOW_MS = 1.0


class PolicyHost:
    def __init__(
        self,
        loader: Loader,
        max_concurrent: int = 4,
        warmup: bool = True,
        max_batch: int = 1,
        max_wait_ms: float = 2.0,
    ) -> None:
        if max_concurrent < 1 or max_batch < 1 or max_wait_ms < 0:
            raise ValueError("max_concurrent and max_batch must be >= 1, max_wait_ms >= 0")
        self._loader = loader
        self.max_concurrent = max_concurrent  # admitted requests (queued + computing); more get 429
        self.max_batch = max_batch  # 1: every request is its own inference call
        self.max_wait_ms = max_wait_ms
        self.batcher: Batcher | None = None
        self.observer: InferenceObserver | None = None  # metrics
        self.warmup = warmup
        self.state = "loading"
        self.error: str | None = None
        self.info: ModelInfo | None = None
        self.policy: PolicyLike | None = None
        self.in_flight = 0
        self.served = 0
        self.refused = 0  # 429s: requests turned away because the queue was full
        self.infer_ms_avg: float | None = None  # moving average, decides inline vs thread
        self.t_start = time.monotonic()
        # ONNX sessions run one call at a time; a single worker keeps calls ordered and the
        # event loop free (pings and /health stay answered during a long inference).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reflex-infer")
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Load and warm up in a background thread."""
        self._thread = threading.Thread(target=self._load, name="reflex-load", daemon=True)
        self._thread.start()

    def load_now(self) -> None:
        self._load()

    def wait_ready(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state == "ready"

    def _load(self) -> None:
        try:
            policy, info = self._loader()
            self.policy, self.info = policy, info
            if self.warmup:
                self.state = "warming"
                t0 = time.perf_counter()
                policy.predict(np.zeros(info.state_dim), _blank_inputs(info), 0)
                log.info("warm-up inference took %.1f ms", (time.perf_counter() - t0) * 1e3)
            self.state = "ready"
        except Exception as exc:  # any load failure is reported through /health
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = "failed"
            log.error("model failed to load: %s", self.error)
            log.debug("%s", traceback.format_exc())

    async def aclose(self) -> None:
        """Stop the batch worker (queued requests get 503); call on the server's loop."""
        if self.batcher is not None:
            await self.batcher.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- serving ---------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state == "ready"

    @property
    def queue_depth(self) -> int:
        """Requests admitted but not yet computing (without batching: all but the one running)."""
        return self.batcher.depth if self.batcher is not None else max(0, self.in_flight - 1)

    def require_ready(self) -> ModelInfo:
        if self.state != "ready" or self.info is None:
            detail = f": {self.error}" if self.error else ""
            raise RequestError(503, "not_ready", f"model is {self.state}{detail}")
        return self.info

    async def infer(self, req: ActRequest) -> tuple[np.ndarray, dict[str, float]]:
        """Run one request; raises RequestError 429 when ``max_concurrent`` are in flight."""
        self.require_ready()
        if self.in_flight >= self.max_concurrent:
            self.refused += 1
            raise RequestError(
                429, "overloaded", f"{self.in_flight} requests in flight (max_concurrent {self.max_concurrent})"
            )
        if self.max_batch > 1:
            return await self._infer_batched(req)
        inline = self.in_flight == 0 and self.infer_ms_avg is not None and self.infer_ms_avg < INLINE_BELOW_MS
        self.in_flight += 1
        t_submit = time.perf_counter()
        try:
            if inline:
                actions, t_start, t_end = self._predict(req)
            else:
                loop = asyncio.get_running_loop()
                actions, t_start, t_end = await loop.run_in_executor(self._pool, self._predict, req)
        except RequestError:
            raise
        except Exception as exc:
            log.error("inference failed:\n%s", traceback.format_exc())
            raise RequestError(500, "inference_failed", f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.in_flight -= 1
        self.served += 1
        infer_ms = (t_end - t_start) * 1e3
        avg = self.infer_ms_avg
        self.infer_ms_avg = infer_ms if avg is None else 0.8 * avg + 0.2 * infer_ms
        timing = {"queue_ms": (t_start - t_submit) * 1e3, "infer_ms": infer_ms, "batch_size": 1.0}
        self._on_batch(1)
        self._observe(timing)
        return actions, timing

    async def _infer_batched(self, req: ActRequest) -> tuple[np.ndarray, dict[str, float]]:
        if self.batcher is None:
            self.batcher = Batcher(
                self.policy, self._pool, self.max_batch, self.max_wait_ms, self.max_concurrent, self._on_batch
            )
        self.in_flight += 1
        try:
            actions, timing = await self.batcher.submit(req)
        finally:
            self.in_flight -= 1
        self.served += 1
        self._observe(timing)
        return actions, timing

    def _on_batch(self, size: int) -> None:
        if self.observer is not None:
            self.observer.on_batch(size)

    def _observe(self, timing: dict[str, float]) -> None:
        if self.observer is not None:
            self.observer.on_request(timing["queue_ms"], timing["infer_ms"])

    def _predict(self, req: ActRequest) -> tuple[np.ndarray, float, float]:
        assert self.policy is not None
        t_start = time.perf_counter()
        actions = np.asarray(self.policy.predict(req.state, req.images, req.step, req.task), dtype=np.float64)
        return actions, t_start, time.perf_counter()

    def health(self) -> dict[str, Any]:
        return {
            "status": self.state,
            "ready": self.ready,
            "error": self.error,
            "model": self.info.to_dict() if self.info else None,
            "providers": list(self.info.providers) if self.info else [],
            "in_flight": self.in_flight,
            "max_concurrent": self.max_concurrent,
            "max_batch": self.max_batch,
            "queue_depth": self.queue_depth,
            "served": self.served,
            "refused": self.refused,
            "uptime_s": round(time.monotonic() - self.t_start, 3),
        }


def _blank_inputs(info: ModelInfo) -> dict[str, np.ndarray]:
    # Warm-up only: the server never substitutes these for a client's missing image.
    return {cam: np.zeros((h, w, 3), dtype=np.uint8) for cam, (h, w) in info.image_inputs.items()}
