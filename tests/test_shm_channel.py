"""The shared-memory frame channel: layout, seqlock, ownership, crash cleanup — with real shared
memory and real publisher processes."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from conftest import REPO, run_cli, subprocess_env
from shm_testutil import Publisher, crash_publisher_without_watchdog, shm_isolation, wait_until

from reflex.cameras.sources.pattern import PatternError, render_pattern, verify_pattern
from reflex.shm import layout
from reflex.shm.layout import ChannelHeader, LayoutError
from reflex.shm.reader import ShmReader
from reflex.shm.segments import ChannelBusy, ChannelNotFound, channel_path, remove_if_stale
from reflex.shm.writer import ShmWriter


@pytest.fixture(autouse=True)
def _channels(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from shm_isolation(monkeypatch)


def _header(**kw: object) -> ChannelHeader:
    fields: dict[str, object] = dict(
        width=64, height=48, channels=3, pixel_format="bgr24", slot_count=3, pid=123,
        t_created=1.5, fps_nominal=30.0, name="cam", source="pattern",
    )  # fmt: skip
    fields.update(kw)
    return ChannelHeader(**fields)  # type: ignore[arg-type]


# -- layout -------------------------------------------------------------------------------------


def test_header_round_trips_and_documented_offsets_hold() -> None:
    header = _header()
    raw = header.pack()
    assert len(raw) == layout.HEADER_SIZE
    assert ChannelHeader.unpack(raw, "x") == header
    assert raw[:8] == b"RFLXCAM\x00"
    assert struct.unpack_from("<IIII", raw, 16) == (64, 48, 3, 2)  # width height channels bgr24
    assert struct.unpack_from("<I", raw, 32)[0] == 3
    assert header.slot_stride % 4096 == 0 and header.slot_stride >= 64 + 64 * 48 * 3
    assert raw[128:131] == b"cam"


@pytest.mark.parametrize(
    ("offset", "value", "message"),
    [(0, b"NOTACAM\x00", "not a reflex camera channel"), (8, struct.pack("<I", 9), "version 9"),
     (28, struct.pack("<I", 7), "pixel format code 7"), (40, struct.pack("<Q", 5), "inconsistent")],
)  # fmt: skip
def test_corrupt_headers_are_refused_with_the_path(offset: int, value: bytes, message: str) -> None:
    raw = bytearray(_header().pack())
    raw[offset : offset + len(value)] = value
    with pytest.raises(LayoutError, match=message) as info:
        ChannelHeader.unpack(bytes(raw), "/dev/shm/reflex_cam_x")
    assert "/dev/shm/reflex_cam_x" in str(info.value)


def test_reader_refuses_a_foreign_file_at_the_channel_path() -> None:
    path = channel_path("foreign")
    path.write_bytes(b"\x00" * 4096)
    try:
        with pytest.raises(LayoutError, match="not a reflex camera channel"):
            ShmReader.attach("foreign")
    finally:
        path.unlink()


# -- writer / reader in one process -------------------------------------------------------------


def test_frames_round_trip_with_capture_times() -> None:
    with ShmWriter.create("rt", 32, 24, slots=3, watchdog=False) as writer, ShmReader.attach("rt") as reader:
        assert reader.read() is None and reader.view() is None and reader.state() == "starting"
        assert reader.publisher_alive()
        for n in range(1, 8):
            writer.write(render_pattern(n, 32, 24), t_capture=100.0 + n)
            frame = reader.read()
            assert frame is not None
            assert (frame.frame_number, frame.t_capture) == (n, 100.0 + n)
            assert verify_pattern(frame.image) == n
        assert reader.state() == "live" and reader.latest_number() == 7
    # the writer removed its channel; nothing to attach to any more
    with pytest.raises(ChannelNotFound, match="reflex camera publish rt"):
        ShmReader.attach("rt")


def test_a_frame_being_written_is_never_returned() -> None:
    with ShmWriter.create("mid", 32, 24, watchdog=False) as writer, ShmReader.attach("mid") as reader:
        writer.write(render_pattern(1, 32, 24))
        with writer.frame() as buf:  # frame 2 half written: its slot's seqlock is odd
            buf[:12] = 255
            got = reader.read()
            assert got is not None and got.frame_number == 1 and verify_pattern(got.image) == 1
        got = reader.read()
        assert got is not None and got.frame_number == 2


def test_a_failed_in_place_write_publishes_nothing() -> None:
    with ShmWriter.create("fail", 32, 24, watchdog=False) as writer, ShmReader.attach("fail") as reader:
        writer.write(render_pattern(1, 32, 24))
        with pytest.raises(RuntimeError), writer.frame() as buf:
            buf[:] = 0
            raise RuntimeError("source died mid-frame")
        got = reader.read()
        assert got is not None and got.frame_number == 1 and verify_pattern(got.image) == 1


def test_zero_copy_view_is_invalidated_when_its_slot_is_reused() -> None:
    with ShmWriter.create("view", 32, 24, slots=3, watchdog=False) as writer, ShmReader.attach("view") as reader:
        writer.write(render_pattern(1, 32, 24))
        view = reader.view()
        assert view is not None and not view.image.flags.writeable
        assert verify_pattern(view.image) == 1 and view.valid()
        writer.write(render_pattern(2, 32, 24))
        writer.write(render_pattern(3, 32, 24))
        assert view.valid()  # slots 2 and 3 were used, frame 1's slot untouched
        writer.write(render_pattern(4, 32, 24))  # reuses frame 1's slot
        assert not view.valid()
        del view


def test_wrong_frame_shape_is_refused() -> None:
    with ShmWriter.create("shape", 32, 24, watchdog=False) as writer, pytest.raises(ValueError, match="24, 32, 3"):
        writer.write(np.zeros((24, 31, 3), np.uint8))


# -- the pattern is a working tear detector (negative controls) ---------------------------------


def test_pattern_detects_torn_and_channel_swapped_frames() -> None:
    a, b = render_pattern(10, 64, 48), render_pattern(11, 64, 48)
    assert verify_pattern(a) == 10 and verify_pattern(b) == 11
    torn = a.copy()
    torn[30:] = b[30:]  # upper part of frame 10, lower part of frame 11
    with pytest.raises(PatternError, match="torn"):
        verify_pattern(torn)
    torn_row = a.copy()
    torn_row[20, :5] = b[20, :5]  # even a few pixels of one row
    with pytest.raises(PatternError):
        verify_pattern(torn_row)
    with pytest.raises(PatternError, match="colour order"):
        verify_pattern(np.ascontiguousarray(a[..., ::-1]))


# -- names, ownership, busy ---------------------------------------------------------------------


def test_names_are_validated_and_namespaced() -> None:
    with pytest.raises(ValueError, match="channel name"):
        channel_path("../etc/passwd")
    assert channel_path("top").name == f"reflex_cam_{os.environ['REFLEX_SHM_NAMESPACE']}.top"


def test_second_publisher_of_a_live_channel_is_refused() -> None:
    with ShmWriter.create("busy", 16, 16, watchdog=False) as first:
        with pytest.raises(ChannelBusy, match=f"already published by pid {os.getpid()}"):
            ShmWriter.create("busy", 16, 16, watchdog=False)
        assert first.path.exists()
        assert remove_if_stale(first.path) is None  # a live channel is never removed
        assert first.path.exists()
    leftovers = [p for p in os.listdir(first.path.parent) if "busy" in p]
    assert leftovers == []  # no temp file of the refused publisher either


def test_cli_refuses_to_publish_over_a_live_publisher() -> None:
    first = Publisher("dup", "--width", "32", "--height", "24")
    first.wait_ready()
    second = run_cli(["camera", "publish", "dup", "--source", "pattern", "--frames", "5"], timeout=60)
    assert second.returncode == 3, second.stderr
    assert f"already published by pid {first.pid}" in second.stderr


# -- concurrency: a real publisher at full rate ------------------------------------------------


def test_ten_thousand_frames_read_during_full_rate_writes_are_never_torn() -> None:
    """A publisher process writes the pattern as fast as it can; every frame read is verified."""
    pub = Publisher("stress", "--width", "320", "--height", "240", "--fps", "0", "--slots", "3")
    pub.wait_ready()
    wanted = 10_000
    verified, copies, views_ok, views_lapped, last = 0, 0, 0, 0, 0
    out = np.empty((240, 320, 3), np.uint8)
    with ShmReader.attach("stress") as reader:
        first_published = reader.latest_number()
        while verified < wanted:
            n = reader.wait_new(last, timeout_s=10.0, poll_s=0)
            assert n != last, "publisher stopped"
            if verified % 2 == 0:
                frame = reader.read(out)  # copy path
                if frame is None:
                    continue
                copies += 1
                number, frame_number = verify_pattern(frame.image), frame.frame_number
            else:
                view = reader.view()  # zero-copy path: verify in place, then trust only if still valid
                if view is None:
                    continue
                try:
                    number = verify_pattern(view.image)
                except PatternError:
                    number = -1
                valid = view.valid()
                frame_number = view.frame_number
                del view
                if not valid:
                    views_lapped += 1
                    continue
                assert number != -1, "a view that stayed valid was torn"
                views_ok += 1
            assert number == frame_number > last  # the pixels are the frame the header says
            last = frame_number
            verified += 1
        published = reader.latest_number() - first_published
    assert verified == wanted and copies > 0 and views_ok > 0
    assert published + 1 >= wanted  # the reads overlapped a stream of writes
    print(f"verified {verified} frames ({copies} copies, {views_ok} views, {views_lapped} lapped views) "
          f"while {published} were published")  # fmt: skip


# -- crash of either side ------------------------------------------------------------------------


def test_sigkilled_publisher_is_detected_and_its_channel_removed_by_the_watchdog() -> None:
    pub = Publisher("crash", "--width", "32", "--height", "24", "--fps", "100")
    pub.wait_ready()
    reader = ShmReader.attach("crash")
    try:
        assert reader.publisher_alive() and not reader.replaced()
        last = reader.read()
        assert last is not None
        assert pub.kill(signal.SIGKILL) == -signal.SIGKILL
        assert not reader.publisher_alive()  # the kernel dropped the lock with the process
        wait_until(lambda: not channel_path("crash").exists(), what="watchdog removing the channel")
        assert reader.replaced()
        frozen = reader.read()  # the mapping stays readable: the last frame, with its old timestamp
        assert frozen is not None and verify_pattern(frozen.image) == frozen.frame_number
        assert frozen.t_capture >= last.t_capture and frozen.frame_number == reader.latest_number()
    finally:
        reader.close()


def test_stale_channel_is_reported_listed_taken_over_and_cleaned() -> None:
    dead_pid = crash_publisher_without_watchdog("stale")
    path = channel_path("stale")
    assert path.exists()  # no watchdog: the segment outlived its publisher
    with ShmReader.attach("stale") as reader:
        assert not reader.publisher_alive() and reader.header.pid == dead_pid
    listed = run_cli(["camera", "list", "--json"])
    rows = {r["name"]: r for r in json.loads(listed.stdout)["channels"]}
    assert rows["stale"]["state"] == "stale" and rows["stale"]["pid"] == dead_pid
    # a new publisher of the same name takes the stale channel over and says so
    with ShmWriter.create("stale", 32, 24, watchdog=False) as writer:
        assert writer.replaced is not None and writer.replaced.pid == dead_pid
        assert f"pid {dead_pid} is gone" in writer.replaced.describe()
    # and `list --clean` removes a stale channel without touching live ones
    crash_publisher_without_watchdog("stale")
    live = ShmWriter.create("live", 16, 16, watchdog=False)
    try:
        cleaned = run_cli(["camera", "list", "--clean"])
        assert cleaned.returncode == 0, cleaned.stderr
        assert f"removed stale channel {path}" in cleaned.stdout
        assert not path.exists() and live.path.exists()
        assert "live" in cleaned.stdout
    finally:
        live.close()


def test_sigterm_stops_a_publisher_cleanly() -> None:
    pub = Publisher("term", "--width", "32", "--height", "24")
    pub.wait_ready()
    assert pub.kill(signal.SIGTERM) == 0
    assert not channel_path("term").exists()


def test_reader_crash_leaves_nothing_and_does_not_disturb_the_publisher() -> None:
    with ShmWriter.create("rc", 32, 24, watchdog=False) as writer:
        writer.write(render_pattern(1, 32, 24))
        code = (
            "import os; from reflex.shm.reader import ShmReader\n"
            "r = ShmReader.attach('rc'); assert r.read() is not None; os.kill(os.getpid(), 9)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=subprocess_env())
        assert proc.returncode == -signal.SIGKILL
        writer.write(render_pattern(2, 32, 24))
        with ShmReader.attach("rc") as reader:
            got = reader.read()
            assert got is not None and verify_pattern(got.image) == 2 and reader.publisher_alive()


def test_restarted_publisher_replaces_the_channel_and_readers_can_reattach() -> None:
    first = Publisher("re", "--width", "32", "--height", "24", "--fps", "100")
    first.wait_ready()
    old = ShmReader.attach("re")
    try:
        first.kill()
        second = Publisher("re", "--width", "32", "--height", "24", "--fps", "100")
        second.wait_ready()
        assert old.replaced() and not old.publisher_alive()
        with ShmReader.attach("re") as new:
            assert new.header.pid == second.pid and new.publisher_alive()
            got = new.read()
            assert got is not None and verify_pattern(got.image) == got.frame_number
    finally:
        old.close()


def test_attach_waits_for_a_publisher_that_starts_late() -> None:
    pub = Publisher("late", "--width", "32", "--height", "24")
    reader = ShmReader.attach("late", wait_s=60.0)
    try:
        assert reader.header.width == 32
    finally:
        reader.close()
    pub.wait_ready()
