"""The loop's garbage collection: off inside ticks, done between them, and never skipped for good."""

from __future__ import annotations

import gc
import weakref

from reflex.runtime.collector import FORCE_FACTOR, LoopCollector


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def _cycles(n: int) -> list[weakref.ref[Node]]:
    return [weakref.ref(Node()) for _ in range(n)]


def test_the_loop_freezes_set_up_and_hands_collection_back_afterwards() -> None:
    assert gc.isenabled()
    collector = LoopCollector()
    collector.prepare()
    assert gc.isenabled() and gc.get_freeze_count() > 0  # priming the first chunk: still automatic
    collector.start()
    try:
        assert not gc.isenabled() and gc.get_freeze_count() > 0
    finally:
        collector.stop()
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_garbage_made_during_the_loop_is_collected_in_idle_time() -> None:
    collector = LoopCollector()
    collector.start()
    try:
        refs = _cycles(3 * gc.get_threshold()[0])
        collector.idle(0.0)  # no idle time: not enough garbage yet to force a collection
        assert any(r() is not None for r in refs) and collector.collections == [0, 0, 0]
        for _ in range(50):
            collector.idle(0.005)  # a tick with 5 ms to spare
        assert all(r() is None for r in refs)
        assert collector.collections[0] >= 1 and collector.forced == 0
    finally:
        collector.stop()
    summary = collector.summary()
    assert summary["collections"] == collector.collections and summary["objectsPerTick"] != 0


def test_without_idle_time_garbage_is_still_bounded() -> None:
    collector = LoopCollector()
    collector.start()
    try:
        refs = _cycles((FORCE_FACTOR + 1) * gc.get_threshold()[0])
        collector.idle(0.0)
        assert all(r() is None for r in refs) and collector.forced == 1
    finally:
        collector.stop()
