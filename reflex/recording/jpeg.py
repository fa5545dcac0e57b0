"""Camera frames encoded once for every format that stores images (JSONL, MCAP, Rerun, the live
viewer): JPEG by default, PNG with ``record.image_encoding: lossless`` (exact pixels, so replay
can reproduce an image policy). LeRobot encodes video instead (:mod:`lerobot.video`).

Each format writes on its own thread, and they all receive the same :class:`Frame` objects at
about the same moment, so "encode unless cached" is not enough: without a lock the formats race
past the empty cache and each encode the frame (measured: 2.5 encodes per frame with three
formats). Here each frame has a lock; the first format to take it encodes and caches the bytes on
the frame, the others reuse them. :func:`encoded_images` encodes a step's frames in whatever
order is free (a frame another format is encoding is taken last), so two formats arriving
together encode different cameras at the same time instead of waiting on each other.

JPEG goes through :func:`reflex.wire.jpeg.encode_jpeg` (libjpeg-turbo via simplejpeg, which
releases the interpreter lock for the whole encode; Pillow's encoder holds it for part of each
frame and made the control thread wait). The cache holds at most one JPEG and one PNG per frame
and lives as long as the frame; the recording hub counts it in ``record.queue_budget_mb``
(:func:`encoded_nbytes`).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping

from reflex.ports import Frame
from reflex.wire.jpeg import encode_jpeg

QUALITY = 90
PNG_LEVEL = 1  # fast zlib: PNG is for exact replay, not for size
_CACHE = "_reflex_encoded"  # {"jpeg": bytes, "png": bytes} in the frame's __dict__
_LOCK = "_reflex_encode_lock"
_ENCODES = [0]  # encodes performed in this process (tests check that a frame is encoded once)
_COUNT_LOCK = threading.Lock()


def _cache(frame: Frame) -> dict[str, bytes]:
    cache: dict[str, bytes] | None = frame.__dict__.get(_CACHE)
    if cache is None:
        cache = frame.__dict__.setdefault(_CACHE, {})  # setdefault is atomic: one dict wins
    return cache


def _lock(frame: Frame) -> threading.Lock:
    lock: threading.Lock = frame.__dict__.get(_LOCK) or frame.__dict__.setdefault(_LOCK, threading.Lock())
    return lock


def _encode(frame: Frame, fmt: str) -> bytes:
    """Encode ``frame`` as ``fmt`` (the caller holds the frame's lock)."""
    cache = _cache(frame)
    data = cache.get(fmt)
    if data is None:
        if fmt == "jpeg":
            data = encode_jpeg(frame.image, QUALITY)
        else:
            from PIL import Image

            buf = io.BytesIO()
            Image.fromarray(frame.image).save(buf, format="PNG", compress_level=PNG_LEVEL)
            data = buf.getvalue()
        cache[fmt] = data
        with _COUNT_LOCK:
            _ENCODES[0] += 1
    return data


def _format(image_encoding: str) -> str:
    return "png" if image_encoding == "lossless" else "jpeg"


def encoded_image(frame: Frame, image_encoding: str) -> tuple[bytes, str]:
    """(bytes, format) of one frame for ``record.image_encoding``: format ``"jpeg"`` or ``"png"``."""
    return encoded_images({"": frame}, image_encoding)[""]


def encoded_images(frames: Mapping[str, Frame], image_encoding: str) -> dict[str, tuple[bytes, str]]:
    """(bytes, format) of each frame, in the mapping's order; each frame is encoded once per
    process however many threads ask, and a frame another thread is encoding is waited for last."""
    fmt = _format(image_encoding)
    out: dict[str, bytes] = {}
    busy: list[str] = []
    for name, frame in frames.items():
        data = _cache(frame).get(fmt)
        if data is not None:
            out[name] = data
            continue
        lock = _lock(frame)
        if lock.acquire(blocking=False):
            try:
                out[name] = _encode(frame, fmt)
            finally:
                lock.release()
        else:
            busy.append(name)
    for name in busy:
        with _lock(frames[name]):
            out[name] = _encode(frames[name], fmt)
    return {name: (out[name], fmt) for name in frames}


def encoded_nbytes(frame: Frame) -> int:
    """Bytes of the encodings cached on ``frame`` so far."""
    cache = frame.__dict__.get(_CACHE)
    return sum(len(b) for b in cache.values()) if cache else 0


def encodes_so_far() -> int:
    """Frames encoded by this process so far (JPEG and PNG)."""
    return _ENCODES[0]
