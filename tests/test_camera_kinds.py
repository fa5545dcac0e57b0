"""Camera kinds ``shm``, ``video`` and ``v4l2``, the sources, and the ``reflex camera`` CLI."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import base_session, run_cli
from PIL import Image
from pydantic import ValidationError
from shm_testutil import Publisher, crash_publisher_without_watchdog, shm_isolation, wait_until

from reflex.cameras.shm import ShmCamera, ShmCameraSpec
from reflex.cameras.sources.pattern import PatternSource, render_pattern, verify_pattern
from reflex.cameras.v4l2 import V4L2CameraSpec
from reflex.cameras.video import VideoCameraSpec
from reflex.config.base import BuildContext
from reflex.config.session import SessionConfig
from reflex.errors import SetupError
from reflex.ports import Camera, Frame
from reflex.shm.segments import channel_path
from reflex.shm.writer import ShmWriter


@pytest.fixture(autouse=True)
def _channels(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    yield from shm_isolation(monkeypatch)


def shm_camera(camera_name: str = "top", **fields: Any) -> ShmCamera:
    camera = ShmCameraSpec(kind="shm", **fields).build(camera_name, BuildContext(config_dir=Path(".")))
    assert isinstance(camera, ShmCamera) and isinstance(camera, Camera)
    return camera


def next_frame(camera: Camera, after: int, timeout: float = 20.0) -> Frame:
    """The camera's first frame with a seq above ``after`` (polled like the control loop does)."""
    box: list[Frame] = []

    def fresh() -> bool:
        frame = camera.latest()
        if frame is not None and frame.seq > after:
            box.append(frame)
            return True
        return False

    wait_until(fresh, timeout, what=f"a new frame from camera '{getattr(camera, 'name', '?')}'")
    return box[0]


# -- config -------------------------------------------------------------------------------------


def test_camera_kinds_validate_in_a_session_config() -> None:
    cameras = {
        "top": {"kind": "shm", "width": 128, "height": 96},
        "wrist": {"kind": "shm", "name": "wrist_cam", "color_order": "bgr", "max_age_ms": 50},
        "clip": {"kind": "video", "path": "clip.mov"},
        "usb": {"kind": "v4l2", "device": "2"},
    }
    config = SessionConfig.model_validate(base_session(cameras=cameras))
    assert [type(c).__name__ for c in config.cameras.values()] == [
        "ShmCameraSpec", "ShmCameraSpec", "VideoCameraSpec", "V4L2CameraSpec",
    ]  # fmt: skip
    assert config.cameras["wrist"].max_age_ms == 50
    assert shm_camera("top").channel == "top"  # the channel defaults to the camera's name
    assert shm_camera("top", name="cam0").channel == "cam0"


@pytest.mark.parametrize(
    ("block", "needle"),
    [({"kind": "shm", "name": "a/b"}, "pattern"), ({"kind": "shm", "fps": 3}, "fps"),
     ({"kind": "video", "path": "x.mp4", "color_order": "bgr"}, "decoded straight to RGB"),
     ({"kind": "video", "path": "x.mp4", "resize": True}, "resize: true needs width and height"),
     ({"kind": "v4l2", "color_order": "bgr"}, "decoded straight to RGB")],
)  # fmt: skip
def test_bad_camera_blocks_are_config_errors(block: dict[str, Any], needle: str) -> None:
    with pytest.raises(ValidationError, match=needle):
        SessionConfig.model_validate(base_session(cameras={"top": block}))


# -- shm camera ---------------------------------------------------------------------------------


def test_shm_camera_without_publisher_fails_setup_naming_channel_and_fix() -> None:
    camera = shm_camera("top", wait_s=0.1)
    with pytest.raises(SetupError) as info:
        camera.start()
    message = str(info.value)
    assert message.startswith("cameras.top:") and "reflex camera publish top" in message
    assert str(channel_path("top")) in message


def test_shm_camera_resolution_mismatch_fails_at_start() -> None:
    with ShmWriter.create("top", 160, 120, watchdog=False):
        camera = shm_camera("top", width=128, height=96)
        with pytest.raises(SetupError, match=r"delivers 160x120 frames, the config expects 128x96 "
                           r"\(cameras.top.width/height\)"):  # fmt: skip
            camera.start()


def test_shm_camera_colour_order_is_checked_and_converted_once() -> None:
    with ShmWriter.create("cam", 64, 48, pixel_format="bgr24", watchdog=False) as writer:
        with pytest.raises(SetupError, match=r"carries bgr24 frames, the config says color_order rgb"):
            shm_camera("cam").start()
        camera = shm_camera("cam", color_order="bgr", width=64, height=48)
        camera.start()
        try:
            writer.write(np.ascontiguousarray(render_pattern(7, 64, 48)[..., ::-1]), t_capture=42.0)
            frame = next_frame(camera, 0)
            assert verify_pattern(frame.image) == 7 and frame.image.flags.c_contiguous  # RGB again
            assert frame.t_capture == 42.0
        finally:
            camera.stop()


def test_shm_camera_reports_publisher_timestamps_and_copies_only_new_frames() -> None:
    with ShmWriter.create("top", 32, 24, watchdog=False) as writer:
        camera = shm_camera("top")
        camera.start()
        try:
            assert camera.latest() is None  # channel up, no frame yet
            writer.write(render_pattern(1, 32, 24), t_capture=10.0)
            first = next_frame(camera, 0)
            assert (first.seq, first.t_capture, verify_pattern(first.image)) == (1, 10.0, 1)
            assert camera.latest() is first  # nothing new: the same frame object, no copy
            writer.write(render_pattern(2, 32, 24), t_capture=11.0)
            second = next_frame(camera, first.seq)
            assert (second.seq, second.t_capture, verify_pattern(second.image)) == (2, 11.0, 2)
            first.image[:] = 0  # the frame is the caller's copy, shared memory is untouched
            assert verify_pattern(second.image) == 2
        finally:
            camera.stop()


def test_shm_camera_detects_a_killed_publisher_and_recovers_when_it_restarts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="reflex.cameras.shm")
    first = Publisher("top", "--width", "32", "--height", "24", "--fps", "100")
    first.wait_ready()
    camera = shm_camera("top", width=32, height=24)
    camera.start()
    try:
        before = next_frame(camera, 0)
        first.kill()

        def noticed() -> bool:
            camera.latest()  # the camera looks at its publisher while it polls for frames
            return "is gone" in caplog.text

        wait_until(noticed, what="the camera reporting the dead publisher")
        assert camera.health()["publisherAlive"] is False
        frozen = camera.latest()
        assert frozen is not None and frozen.seq >= before.seq
        assert camera.latest() is frozen  # no new frames: the same capture time keeps ageing
        second = Publisher("top", "--width", "32", "--height", "24", "--fps", "100")
        second.wait_ready()
        fresh = next_frame(camera, frozen.seq)
        assert fresh.t_capture > frozen.t_capture and verify_pattern(fresh.image) > 0
        health = camera.health()
        assert health["restarts"] == 1 and health["publisherPid"] == second.pid
        assert "took over channel 'top'" in caplog.text
    finally:
        camera.stop()


def test_restarted_publisher_with_a_new_size_is_not_adopted(caplog: pytest.LogCaptureFixture) -> None:
    first = Publisher("top", "--width", "32", "--height", "24", "--fps", "100")
    first.wait_ready()
    camera = shm_camera("top", width=32, height=24)
    camera.start()
    try:
        frame = next_frame(camera, 0)
        first.kill()
        second = Publisher("top", "--width", "64", "--height", "48", "--fps", "100")
        second.wait_ready()

        def rejected() -> bool:
            camera.latest()
            return "restarted publisher rejected" in caplog.text

        wait_until(rejected, what="the rejection")
        assert "delivers 64x48 frames" in caplog.text
        latest = camera.latest()
        assert latest is not None and latest.image.shape == (24, 32, 3) and latest.seq >= frame.seq
        assert camera.health()["restarts"] == 0
    finally:
        camera.stop()


def test_shm_camera_refuses_a_stale_channel_and_a_new_publisher_takes_it_over() -> None:
    dead = crash_publisher_without_watchdog("top")
    camera = shm_camera("top", wait_s=0.2)
    with pytest.raises(SetupError, match=f"channel 'top' is stale: publisher pid {dead}"):
        camera.start()
    assert channel_path("top").exists()  # start never removes anything
    with ShmWriter.create("top", 32, 24, watchdog=False) as takeover:
        assert takeover.replaced is not None and takeover.replaced.pid == dead
    assert not channel_path("top").exists()


def test_shm_camera_stop_removes_the_channel_of_a_publisher_that_died_mid_session() -> None:
    import signal
    import subprocess
    import sys

    from conftest import REPO, subprocess_env

    code = (
        "import sys, time\nfrom reflex.shm.writer import ShmWriter\n"
        "from reflex.cameras.sources.pattern import render_pattern\n"
        "w = ShmWriter.create('top', 32, 24, watchdog=False)\n"
        "w.write(render_pattern(1, 32, 24)); print('ready', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=subprocess_env(),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    camera = shm_camera("top")
    camera.start()
    assert next_frame(camera, 0).seq == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert channel_path("top").exists()  # no watchdog in this publisher
    camera.stop()
    assert not channel_path("top").exists()


# -- video and v4l2 -----------------------------------------------------------------------------


def write_pattern_video(path: Path, frames: int, width: int = 64, height: int = 48, fps: int = 50) -> Path:
    """A lossless (PNG-in-MOV) video of the test pattern, so decoded frames still verify."""
    av = pytest.importorskip("av")
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        for n in range(1, frames + 1):
            frame = av.VideoFrame.from_ndarray(render_pattern(n, width, height), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_camera(tmp_path: Path, **fields: Any) -> Camera:
    return VideoCameraSpec(kind="video", **fields).build("clip", BuildContext(config_dir=tmp_path))


def test_video_camera_plays_exact_frames_in_order_and_loops(tmp_path: Path) -> None:
    write_pattern_video(tmp_path / "clip.mov", frames=5)
    camera = video_camera(tmp_path, path="clip.mov", width=64, height=48, fps=200)
    camera.start()
    try:
        numbers: list[int] = []
        seq = 0
        while len(numbers) < 12:
            frame = next_frame(camera, seq)
            seq = frame.seq
            numbers.append(verify_pattern(frame.image))
        # frames may be skipped between two polls, never reordered except at the loop point
        wraps = sum(1 for a, b in itertools.pairwise(numbers) if b <= a)
        assert wraps >= 1 and all(1 <= n <= 5 for n in numbers)
    finally:
        camera.stop()


def test_video_camera_size_is_checked_or_resized_explicitly(tmp_path: Path) -> None:
    write_pattern_video(tmp_path / "clip.mov", frames=3)
    with pytest.raises(SetupError, match=r"video clip.mov delivers 64x48 frames, the config expects 128x96"):
        video_camera(tmp_path, path="clip.mov", width=128, height=96).start()
    camera = video_camera(tmp_path, path="clip.mov", width=32, height=24, resize=True)
    camera.start()
    try:
        assert next_frame(camera, 0).image.shape == (24, 32, 3)
    finally:
        camera.stop()


def test_video_camera_missing_file_is_a_setup_error(tmp_path: Path) -> None:
    pytest.importorskip("av")
    with pytest.raises(SetupError, match=r"cameras.clip: video file .*nope.mp4 does not exist"):
        video_camera(tmp_path, path="nope.mp4").start()


def test_v4l2_camera_missing_device_is_a_setup_error() -> None:
    spec = V4L2CameraSpec(kind="v4l2", device="/dev/video97")
    camera = spec.build("usb", BuildContext(config_dir=Path(".")))
    with pytest.raises(SetupError, match=r"cameras.usb: v4l2 device /dev/video97 does not exist"):
        camera.start()


def test_pattern_source_paces_and_numbers_frames() -> None:
    source = PatternSource(16, 8, fps=0)
    info = source.open()
    assert (info.width, info.height, info.description) == (16, 8, "pattern 16x8@max")
    got = [source.read() for _ in range(3)]
    assert [verify_pattern(item[0]) for item in got if item] == [1, 2, 3]
    assert got[0] is not None and got[2] is not None and got[2][1] >= got[0][1]


# -- CLI ----------------------------------------------------------------------------------------


def test_publish_a_video_file_list_and_snapshot(tmp_path: Path) -> None:
    clip = write_pattern_video(tmp_path / "clip.mov", frames=4)
    pub = Publisher("vid", "--pixel-format", "bgr24", source=f"video:{clip}")
    pub.wait_ready()
    listed = run_cli(["camera", "list"])
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith("vid "))
    assert "64x48" in row and "bgr24" in row and "live" in row and "video clip.mov" in row
    out = tmp_path / "snap.png"
    snap = run_cli(["camera", "snapshot", "vid", "-o", str(out)])
    assert snap.returncode == 0, snap.stderr
    image = np.asarray(Image.open(out))
    assert 1 <= verify_pattern(image) <= 4  # lossless all the way: video -> BGR channel -> RGB PNG


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [(["--source", "bogus"], 2, "expected 'pattern'"),
     (["--source", "pattern", "--pixel-format", "yuv"], 2, "rgb24 or bgr24"),
     (["--source", "pattern", "--width", "3"], 2, "at least 6x2"),
     (["--source", "v4l2:/dev/video97"], 3, "/dev/video97 does not exist"),
     (["--source", "video:/nonexistent.mp4"], 3, "does not exist")],
)  # fmt: skip
def test_publish_errors_name_the_problem(args: list[str], code: int, needle: str) -> None:
    proc = run_cli(["camera", "publish", "x", *args], timeout=60)
    assert proc.returncode == code, proc.stderr
    assert needle in proc.stderr


def test_publish_stops_after_frames_and_snapshot_of_missing_channel_fails() -> None:
    done = run_cli(["camera", "publish", "n", "--source", "pattern", "--frames", "3", "--fps", "0"])
    assert done.returncode == 0 and "after 3 frames" in done.stderr
    missing = run_cli(["camera", "snapshot", "n", "--wait", "0"])
    assert missing.returncode == 3 and "no camera channel 'n'" in missing.stderr
    empty = run_cli(["camera", "list"])
    assert "no camera channels" in empty.stdout
