"""Live video for the LeRobot recorder: one H.264 encoder thread per camera.

Encoding runs off the hub's writer thread, and PyAV releases the GIL while it converts and
encodes (frames are wrapped, not copied, so the thread holds the lock only briefly): three
640x480 cameras at 30 Hz cost about a quarter of a core with ``libx264`` ``ultrafast`` (AV1 is too slow to encode
live on 2 cores; transcode after the session if the Hub wants it). While recording, each
camera goes to a *fragmented* MP4 (a fragment per frame, written when the next frame is muxed:
:attr:`CameraEncoder.durable` counts the frames a flush has put on disk), so everything up to the
last flush survives ``kill -9``; :func:`remux` turns it into a plain MP4 with ``pts = k / fps``.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import IO, Any

import numpy as np

CODEC = "libx264"
CODEC_NAME = "h264"  # as LeRobot's info.json names it
# zerolatency + one thread: a packet comes out for every frame that goes in (no encoder delay).
ENCODER_OPTIONS = {"preset": "ultrafast", "tune": "zerolatency", "crf": "23", "g": "2", "bf": "0", "threads": "1"}
# A fragment per frame, pushed through at once: what flush() syncs is every frame encoded so far.
FRAGMENTED = {"movflags": "frag_every_frame+empty_moov+default_base_moof", "flush_packets": "1"}
STATS_SIDE = 150  # image stats are computed on frames strided down to about this size
_STOP = None


def pix_fmt_for(height: int, width: int) -> str:
    # 4:2:0 needs even sizes; odd-sized cameras keep full chroma instead of being cropped.
    return "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"


class CameraEncoder:
    """Encodes one frame per dataset row, in order, on its own thread."""

    def __init__(self, camera: str, path: Path, fps: int, queue_size: int = 90) -> None:
        self.camera = camera
        self.path = path
        self.fps = fps
        self.size: tuple[int, int] | None = None  # (height, width), from the first frame
        self.frames = 0
        self.submitted = 0
        self.muxed = 0
        self.closed = False
        self.error: BaseException | None = None
        self.hist = np.zeros((3, 256), dtype=np.int64)
        self.hist_frames = 0
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=queue_size)
        self._fh: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"reflex-lerobot-{camera}", daemon=True)
        self._thread.start()

    def put(self, image: np.ndarray) -> None:
        """Queue a frame; blocks the recorder (never the control loop) while the encoder is behind."""
        if self.size is None:
            self.size = (int(image.shape[0]), int(image.shape[1]))
        elif image.shape[:2] != self.size:
            raise ValueError(
                f"camera '{self.camera}': frame size changed from {self.size[1]}x{self.size[0]} "
                f"to {image.shape[1]}x{image.shape[0]} mid-episode"
            )
        while True:
            self._raise_if_failed()
            try:
                self._queue.put(image, timeout=0.5)
                self.submitted += 1
                return
            except queue.Full:
                continue

    def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until every frame handed over is encoded, then sync the file to disk: a row
        journaled after this call has its frames on disk (thread-safe)."""
        deadline = time.monotonic() + timeout_s
        while self.frames < self.submitted and self._thread.is_alive():
            self._raise_if_failed()
            if time.monotonic() > deadline:
                raise TimeoutError(f"camera '{self.camera}': encoder {self.submitted - self.frames} frames behind")
            time.sleep(0.001)
        self._raise_if_failed()
        with self._lock:
            if self._fh is not None and not self._fh.closed:
                self._fh.flush()
                os.fsync(self._fh.fileno())

    @property
    def durable(self) -> int:
        """Frames whose fragment is complete in the file after :meth:`flush`: the mov muxer writes a
        frame's fragment when the next frame arrives, so the newest one is still in memory."""
        return self.muxed if self.closed else max(0, self.muxed - 1)

    def close(self, timeout_s: float = 60.0) -> int:
        """Encode what is queued, write the trailer; returns the number of frames encoded."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"camera '{self.camera}': encoder did not finish within {timeout_s} s")
        self._raise_if_failed()
        return self.frames

    def _raise_if_failed(self) -> None:
        if self.error is not None:
            raise RuntimeError(f"camera '{self.camera}' encoder: {type(self.error).__name__}: {self.error}")

    def _run(self) -> None:
        import av

        container: Any = None
        stream: Any = None
        time_base = Fraction(1, self.fps)
        try:
            while True:
                image = self._queue.get()
                if image is _STOP:
                    break
                if container is None:
                    container, stream = self._open(av, image)
                # wraps the camera's array without copying (a camera never writes into an image it
                # handed out): from_ndarray's copy held the interpreter lock ~1.3 ms per 640x480
                # frame; the conversion to YUV inside encode() runs in swscale without it
                frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(image), format="rgb24")
                frame.pts = self.frames
                frame.time_base = time_base
                for packet in stream.encode(frame):
                    container.mux(packet)
                    self.muxed += 1
                self.frames += 1
                self._note_stats(image)
            if container is not None:
                for packet in stream.encode(None):
                    container.mux(packet)
                    self.muxed += 1
        except BaseException as exc:  # reported through put()/flush()/close()
            self.error = exc
        finally:
            try:
                if container is not None:
                    container.close()
            except Exception as exc:
                self.error = self.error or exc
            with self._lock:
                if self._fh is not None:
                    try:
                        self._fh.flush()
                        os.fsync(self._fh.fileno())
                    except OSError as exc:
                        self.error = self.error or exc
                    try:
                        self._fh.close()
                    except OSError as exc:  # e.g. disk full: reported through close()
                        self.error = self.error or exc
                self.closed = self.error is None

    def _open(self, av: Any, image: np.ndarray) -> tuple[Any, Any]:
        height, width = image.shape[:2]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._fh = self.path.open("wb")
        container = av.open(self._fh, mode="w", format="mp4", options=dict(FRAGMENTED))
        stream = container.add_stream(CODEC, rate=self.fps, options=dict(ENCODER_OPTIONS))
        stream.width = width
        stream.height = height
        stream.pix_fmt = pix_fmt_for(height, width)
        stream.codec_context.time_base = Fraction(1, self.fps)
        stream.codec_context.thread_count = 1
        return container, stream

    def _note_stats(self, image: np.ndarray) -> None:
        step = max(1, max(image.shape[:2]) // STATS_SIDE)
        small = image[::step, ::step]
        for c in range(3):
            self.hist[c] += np.bincount(small[..., c].ravel(), minlength=256)
        self.hist_frames += 1


def remux(src: Path, dst: Path, max_frames: int | None, fps: int) -> int:
    """Copy the first ``max_frames`` frames of a (possibly torn) fragmented MP4 into a plain MP4.

    Frames are renumbered ``pts = k`` in a ``1/fps`` time base, so the LeRobot loader finds frame
    ``k`` at exactly ``k / fps``. Returns the number of frames copied (fewer than asked when the
    source was cut short by a crash).
    """
    import av

    tmp = dst.with_name(dst.name + ".tmp")
    dst.parent.mkdir(parents=True, exist_ok=True)
    copied = 0
    with av.open(str(src)) as inp:
        istream = inp.streams.video[0]
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "faststart"}) as out:
            ostream = out.add_stream_from_template(istream)
            ostream.time_base = Fraction(1, fps)
            try:
                for packet in inp.demux(istream):
                    if packet.size == 0 or packet.dts is None:
                        continue  # demuxer flush packet
                    if max_frames is not None and copied >= max_frames:
                        break
                    if packet.is_corrupt:
                        break  # the fragment torn by the crash: its data is cut short
                    packet.stream = ostream
                    packet.pts = packet.dts = copied
                    packet.duration = 1
                    packet.time_base = Fraction(1, fps)
                    out.mux(packet)
                    copied += 1
            except (av.error.InvalidDataError, av.error.EOFError, EOFError):
                pass  # a torn last fragment: keep what came before it
    os.replace(tmp, dst)
    return copied


def count_decodable(path: Path) -> int:
    """Decode every frame of ``path``; the number that decoded (used to validate a repair)."""
    import av

    n = 0
    with av.open(str(path)) as inp:
        try:
            for _ in inp.decode(video=0):
                n += 1
        except av.error.InvalidDataError:
            pass
    return n
