"""Run blocking bus operations on the thread that owns the bus.

Before the owner thread runs (bring-up), a call executes directly on the caller's thread under
the bus lock; once it runs, calls are queued and executed by the owner between cycles, so a
one-shot operation never interleaves with a cycle's frames.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class OwnerCalls:
    def __init__(self, name: str) -> None:
        self.name = name
        self.lock = threading.RLock()  # held for every bus access
        self._queue: queue.Queue[tuple[Callable[[], Any], Future[Any]]] = queue.Queue()
        self.owner: threading.Thread | None = None

    def call(self, fn: Callable[[], T], timeout: float = 5.0) -> T:
        """Run ``fn`` with the bus: directly if the owner is not running, else on the owner."""
        owner = self.owner
        if owner is None or threading.current_thread() is owner or not owner.is_alive():
            with self.lock:
                return fn()
        fut: Future[T] = Future()
        self._queue.put((fn, fut))
        return fut.result(timeout=timeout)

    def run_pending(self, cancel: bool = False) -> None:
        """On the owner thread: execute (or, when it stops, cancel) every queued call."""
        while True:
            try:
                fn, fut = self._queue.get_nowait()
            except queue.Empty:
                return
            if cancel:
                fut.set_exception(RuntimeError(f"{self.name}: chain thread stopped"))
                continue
            try:
                with self.lock:
                    fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
