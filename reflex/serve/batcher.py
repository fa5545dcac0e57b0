"""Batching across robots: concurrent /act requests grouped into one batched inference call.

Each request waits in a bounded queue; one worker takes the first request, keeps collecting for
at most ``max_wait_ms`` (only when that request found the model idle) or until ``max_batch``
requests are in hand, and runs them as one ``predict_batch`` call on the inference thread. A
row's noise is keyed on its own observation (the export's (seed, step) rule) and the export's
graph treats rows independently, so a robot's chunk is the same whether it was served alone or
in a batch (tests/test_serve_batching.py). The queue is bounded: a full queue is a 429 at once,
never an unbounded wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reflex.serve.request import ActRequest, RequestError

log = logging.getLogger("reflex.serve")

BatchObserver = Callable[[int], None]  # called with each batch's size (metrics)


@dataclass
class _Pending:
    req: ActRequest
    future: asyncio.Future[tuple[np.ndarray, dict[str, float]]]
    t_submit: float = field(default_factory=time.perf_counter)


def predict_rows(policy: Any, reqs: list[ActRequest]) -> np.ndarray:
    """Chunks for ``reqs`` as one call, (B, chunk_length, action_dim) float64.

    A policy without ``predict_batch`` (a plain :class:`PolicyLike`) is called row by row.
    """
    if not hasattr(policy, "predict_batch"):
        return np.stack([
            np.asarray(policy.predict(r.state, r.images, r.step, r.task), dtype=np.float64) for r in reqs
        ])
    states = np.stack([r.state for r in reqs])
    cameras = reqs[0].images.keys()
    images = {cam: np.stack([r.images[cam] for r in reqs]) for cam in cameras}
    return np.asarray(
        policy.predict_batch(states, images, [r.step for r in reqs], [r.task for r in reqs]), dtype=np.float64
    )


class Batcher:
    """The queue and the worker task that drains it in batches (lives on the server's loop)."""

    def __init__(
        self,
        policy: Any,
        executor: Executor,
        max_batch: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: BatchObserver | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait_ms >= 0")
        self.policy = policy
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1e3
        self.max_queue = max_queue
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(maxsize=max_queue)
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    async def submit(self, req: ActRequest) -> tuple[np.ndarray, dict[str, float]]:
        """This request's chunk and its timing (queue_ms, infer_ms, batch_size)."""
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="reflex-batcher")
        pending = _Pending(req, asyncio.get_running_loop().create_future())
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            raise RequestError(
                429, "overloaded", f"{self.max_queue} requests already queued for inference; retry shortly"
            ) from None
        return await pending.future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RequestError(503, "shutting_down", "the server is stopping"))

    async def _collect(self, after_batch: bool) -> list[_Pending]:
        # Waiting for company pays only when the model was idle (robots ticking together arrive
        # within a few ms of each other). Requests already queued when a batch ends arrived
        # during it: they go at once, with whatever else is queued, never waiting more.
        if after_batch and not self._queue.empty():
            batch, wait_s = [self._queue.get_nowait()], 0.0
        else:
            batch, wait_s = [await self._queue.get()], self.max_wait_s
        deadline = time.perf_counter() + wait_s
        while len(batch) < self.max_batch:
            try:  # whatever is already queued joins without waiting
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return [p for p in batch if not p.future.done()]  # a cancelled caller is not computed

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        after_batch = False
        while True:
            batch = await self._collect(after_batch)
            if not batch:
                continue
            after_batch = True
            t_start = time.perf_counter()
            try:
                chunks = await loop.run_in_executor(
                    self.executor, predict_rows, self.policy, [p.req for p in batch]
                )
            except Exception as exc:  # every caller of a failed batch gets the error
                log.exception("batched inference failed")
                err = RequestError(500, "inference_failed", f"{type(exc).__name__}: {exc}")
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)
                continue
            infer_ms = (time.perf_counter() - t_start) * 1e3
            self.batches += 1
            if self.on_batch is not None:
                self.on_batch(len(batch))
            for row, p in enumerate(batch):
                if not p.future.done():
                    timing = {
                        "queue_ms": (t_start - p.t_submit) * 1e3,
                        "infer_ms": infer_ms,
                        "batch_size": float(len(batch)),
                    }
                    p.future.set_result((chunks[row], timing))
