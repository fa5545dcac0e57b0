"""Flat memory in long sessions: a recorder fed thousands of steps keeps no per-step Python state.

Counted, not timed: the Python heap's allocated blocks (``sys.getallocatedblocks``, every live
object of every thread, floats and ints included) after a warm-up and again after many more steps,
each time flushed and collected. A recorder that kept one object per step (a list of timestamps, a
stats accumulator, an index entry per row) would grow by at least one block per step; what the
formats legitimately keep (MCAP's chunk index, an entry per chunk, i.e. per flush) grows per flush.
RSS is left to ``bench/scale_bench.py`` (native memory, allocator high-water and the machine).
"""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import numpy as np
import pytest
from test_record_support import make_meta, make_step

from reflex.ports import ActionChunk, Recorder
from reflex.recording.factory import build_recorders
from reflex.recording.formats import FORMATS
from reflex.recording.rerun_recorder import RerunRecorder

WARM_STEPS = 600
STEPS = 3000
FLUSH_EVERY = 100  # steps between flushes: 30 flushes (chunks, journal batches) in the measured part
BLOCKS_PER_STEP = 0.25  # a leak of one object per step is 1.0 or more
BLOCKS_PER_FLUSH = 40  # MCAP's ChunkIndex (a dataclass, its offsets dict, the ints in it) per chunk


def _feed(recorder: Recorder, first: int, last: int) -> None:
    for i in range(first, last):
        recorder.write_step(make_step(i, {"top": (0, i + 1)}))
        if i % 4 == 0:  # a new chunk every 4 steps, as the demo policy's
            recorder.write_chunk(ActionChunk(chunk_id=i // 4, actions=np.full((4, 3), 0.01 * i),
                                             t_origin=1000.0 + i / 30, dt=1 / 30, obs_step=i,
                                             t_requested=1000.0 + i / 30, t_received=1000.0 + i / 30))
        if (i + 1) % FLUSH_EVERY == 0:
            recorder.flush()


def _blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


def _blocks_grown(recorder: Recorder) -> int:
    """Heap blocks the recorder added over STEPS steps after WARM_STEPS of warm-up."""
    recorder.open(make_meta())
    try:
        _feed(recorder, 0, WARM_STEPS)
        before = _blocks()
        _feed(recorder, WARM_STEPS, WARM_STEPS + STEPS)
        return _blocks() - before
    finally:
        recorder.close()


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_recorder_fed_many_steps_keeps_no_per_step_state(fmt: str, tmp_path: Path) -> None:
    recorder = build_recorders([fmt], tmp_path, images=True)[0]
    if isinstance(recorder, RerunRecorder):
        # every flush() cuts the batch: Rerun holds the rows of up to FLUSH_EVERY_S otherwise (a few
        # seconds of a session, but thousands of this test's steps) and drops them at the next cut
        recorder.flush_every_s = 0.0
    grown = _blocks_grown(recorder)
    allowed = BLOCKS_PER_STEP * STEPS + BLOCKS_PER_FLUSH * (STEPS // FLUSH_EVERY)
    assert grown <= allowed, (
        f"{fmt}: {grown} Python heap blocks more after {STEPS} more steps ({grown / STEPS:.2f} per step, "
        f"allowed {allowed:.0f}): something keeps per-step state"
    )


def test_the_check_sees_a_recorder_that_keeps_a_value_per_step(tmp_path: Path) -> None:
    """The same measurement on a recorder that keeps each step's tick time: it must fail."""
    from reflex.recording.jsonl import JsonlRecorder

    class Hoarding(JsonlRecorder):
        def __init__(self, directory: Path) -> None:
            super().__init__(directory)
            self.ticks: list[float] = []

        def write_step(self, rec: object) -> None:
            super().write_step(rec)  # type: ignore[arg-type]
            self.ticks.append(float(rec.t_tick) + 0.5)  # type: ignore[attr-defined]

    recorder = Hoarding(tmp_path)
    grown = _blocks_grown(recorder)
    assert grown > BLOCKS_PER_STEP * STEPS + BLOCKS_PER_FLUSH * (STEPS // FLUSH_EVERY)
