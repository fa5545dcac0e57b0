"""Camera frames are encoded once for every format that stores images, and the encodings count
in the recorder queues' byte budget while the frame is still queued."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from conftest import base_session, write_session
from test_record_hub import StuckJsonl
from test_record_support import make_meta, make_step, read_lines

from reflex.ports import Frame
from reflex.recording.hub import ITEM_OVERHEAD_BYTES, RecordingHub
from reflex.recording.jpeg import encoded_images, encoded_nbytes, encodes_so_far
from reflex.recording.jsonl import JsonlRecorder


def _frames(n: int, seed: int = 0) -> dict[str, Frame]:
    rng = np.random.default_rng(seed)
    return {f"cam{i}": Frame(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), t_capture=1.0, seq=i)
            for i in range(n)}


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(img.convert("RGB"))


def test_formats_asking_at_the_same_moment_share_one_encode_per_frame() -> None:
    frames = _frames(6)
    threads = 4
    start = threading.Barrier(threads)
    results: list[dict[str, tuple[bytes, str]]] = [{} for _ in range(threads)]

    def writer(i: int) -> None:
        start.wait()  # all "formats" ask for the same step's frames together, as the hub's writers do
        results[i] = encoded_images(frames, "lossy")

    before = encodes_so_far()
    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60.0)
    assert encodes_so_far() - before == len(frames)
    for name, frame in frames.items():
        first, fmt = results[0][name]
        assert fmt == "jpeg" and first[:3] == b"\xff\xd8\xff"
        assert all(r[name][0] is first for r in results)  # the same bytes object: shared, not re-encoded
        assert _decode(first).shape == frame.image.shape
        assert encoded_nbytes(frame) == len(first)
    assert [list(r) for r in results] == [list(frames)] * threads  # each in the mapping's order


def test_lossless_is_exact_and_cached_beside_the_jpeg() -> None:
    frames = _frames(2, seed=1)
    before = encodes_so_far()
    jpeg = encoded_images(frames, "lossy")
    png = encoded_images(frames, "lossless")
    assert encoded_images(frames, "lossless") == png and encoded_images(frames, "lossy") == jpeg
    assert encodes_so_far() - before == 2 * len(frames)  # one JPEG and one PNG per frame, no more
    for name, frame in frames.items():
        data, fmt = png[name]
        assert fmt == "png" and np.array_equal(_decode(data), frame.image)
        assert encoded_nbytes(frame) == len(data) + len(jpeg[name][0])


def test_a_session_encodes_each_frame_once_for_jsonl_mcap_and_rerun(tmp_path: Path) -> None:
    from reflex.runtime.session import run_session_file

    cameras = {"top": {"kind": "sim"}, "side": {"kind": "sim", "width": 320, "height": 240}}
    session = base_session(max_steps=60, control_rate_hz=30, cameras=cameras,
                           record={"formats": ["jsonl", "mcap", "rerun"]})
    before = encodes_so_far()
    result = run_session_file(write_session(tmp_path, session), record_dir=str(tmp_path / "rec"))
    assert result.ok, result.errors
    encodes = encodes_so_far() - before
    steps = [x for x in read_lines(tmp_path / "rec" / "jsonl" / "steps.jsonl") if x["type"] == "step"]
    images = sum(len(x["frames"]) for x in steps)
    assert images >= 60  # every step has at least one new frame here (two cameras at 30 fps)
    report = result.to_json()["recording"]
    assert sum(report["droppedFrames"].values()) == 0
    assert encodes == images  # three formats wrote every frame; each was encoded once


class StuckAtFirstStep(StuckJsonl):
    """Hangs in its first write (the disk stopped) and says when it got there."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.entered = threading.Event()

    def write_step(self, rec: Any) -> None:
        self.entered.set()
        super().write_step(rec)


def test_the_byte_budget_counts_encodings_while_the_frame_is_still_queued(tmp_path: Path) -> None:
    fast, stuck = JsonlRecorder(tmp_path / "fast"), StuckAtFirstStep(tmp_path / "stuck")
    hub = RecordingHub([fast, stuck], make_meta(), 64, tmp_path, budget_bytes=64 * 2**20)
    assert hub.start() == []
    items = [make_step(i, {"top": (0, i + 1)}) for i in range(3)]
    for item in items:
        hub.submit(item)
    writers = {w.stats.name: w for w in hub._writers}
    assert stuck.entered.wait(60.0)  # it took step 0 off its queue and hangs writing it
    deadline = time.monotonic() + 60.0
    while writers["jsonl"].stats.written_steps < len(items) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writers["jsonl"].stats.written_steps == len(items)
    # the fast format encoded every frame; the stuck one still holds steps 1 and 2 in its queue,
    # so their JPEGs are memory the budget counts
    held = items[1:]
    frames = [f for item in held for f in item.frames.values()]
    assert all(encoded_nbytes(f) > 0 for f in frames)
    with hub.budget.lock:
        used = hub.budget.used
    assert used == len(held) * ITEM_OVERHEAD_BYTES + sum(f.image.nbytes + encoded_nbytes(f) for f in frames)
    assert hub.budget.max_used >= used
    stuck.release.set()
    assert hub.close(60.0) == []
    assert hub.budget.used == 0  # every frame given back with its encodings
