"""Byte layout of a frame channel (version 1). All integers and floats are little-endian.

A channel is one file in the shared-memory directory: a 256-byte header, then ``slot_count``
slots of ``slot_stride`` bytes. Offsets in the header::

    0   magic          8s  b"RFLXCAM\\0"
    8   version        u32 1
    12  header_size    u32 256 (where slot 0 starts)
    16  width          u32
    20  height         u32
    24  channels       u32 3
    28  pixel_format   u32 1 = rgb24, 2 = bgr24 (the colour order the bytes are in)
    32  slot_count     u32
    36  slot_hdr_size  u32 64 (slot header; the pixels follow it)
    40  slot_stride    u64 bytes from one slot to the next (multiple of 4096)
    48  frame_bytes    u64 width * height * channels
    56  pid            u32 publisher process id (informative; liveness is the lock, see segments)
    60  reserved       u32
    64  t_created      f64 CLOCK_MONOTONIC seconds when the publisher created the channel
    72  t_heartbeat    f64 * last time the publisher loop ran (moves even when frames are slow)
    80  latest         u64 * frame number of the newest complete frame (0 = none yet)
    88  fps_nominal    f64 frames per second the source declares (0 = unknown)
    96  fps_measured   f64 * moving average of the publish rate
    104 state          u64 * 0 = starting, 1 = live, 2 = closed (publisher ended on purpose)
    112 reserved       16 bytes
    128 name           32s UTF-8, NUL padded
    160 source         96s UTF-8 description of the source, NUL padded

Each slot starts with a 64-byte slot header, then ``frame_bytes`` of pixels (row-major HxWxC)::

    0   seq            u64 * 2n-1 while frame n is being written into the slot, 2n once complete
    8   t_capture      f64 * CLOCK_MONOTONIC capture time of the frame
    16  t_published    f64 * CLOCK_MONOTONIC time the write finished
    24  frame_number   u64 * n

Fields marked ``*`` change while readers are attached; they sit on 8-byte boundaries and are
stored with single 8-byte stores (see ``reader``/``writer``). Frame ``n`` lives in slot
``(n - 1) % slot_count``. The per-slot ``seq`` is a seqlock: a reader checks it before and after
copying, so a frame overwritten mid-copy is detected and never returned.
"""

from __future__ import annotations

import struct
import sys
import threading
from dataclasses import dataclass

MAGIC = b"RFLXCAM\x00"
VERSION = 1
HEADER_SIZE = 256
SLOT_HEADER_SIZE = 64
SLOT_ALIGN = 4096

PIXEL_FORMATS: dict[str, int] = {"rgb24": 1, "bgr24": 2}
PIXEL_FORMAT_NAMES: dict[int, str] = {v: k for k, v in PIXEL_FORMATS.items()}

STATE_STARTING = 0
STATE_LIVE = 1
STATE_CLOSED = 2
STATE_NAMES = {STATE_STARTING: "starting", STATE_LIVE: "live", STATE_CLOSED: "closed"}

# Static part of the header, written once before the channel becomes visible.
_STATIC = struct.Struct("<8sIIIIIIII QQ II d")  # up to offset 72
_NAME = struct.Struct("<32s96s")  # at offset 128
_FPS_NOMINAL_OFFSET = 88

# Offsets of the 8-byte fields that change while readers are attached, in units of 8 bytes
# (indices into a ``memoryview.cast("Q")`` / ``cast("d")`` of the header).
T_HEARTBEAT = 72 // 8
LATEST = 80 // 8
FPS_MEASURED = 96 // 8
STATE = 104 // 8

# Slot header fields, in units of 8 bytes from the slot start.
SLOT_SEQ = 0
SLOT_T_CAPTURE = 1
SLOT_T_PUBLISHED = 2
SLOT_FRAME_NUMBER = 3

if sys.byteorder != "little":  # pragma: no cover - every supported host is little-endian
    raise ImportError("reflex.shm needs a little-endian host (the channel layout is little-endian)")


_FENCE = threading.Lock()


def fence() -> None:
    """A full memory barrier between the seqlock counter and the pixel copy.

    x86-64 already keeps stores in order (TSO); on weakly ordered CPUs (aarch64, e.g. a Jetson)
    taking and releasing a mutex issues the barrier instructions the seqlock needs, and Python
    offers no cheaper portable way to emit one.
    """
    with _FENCE:
        pass


class LayoutError(ValueError):
    """The bytes at a channel path are not a channel this version understands."""


@dataclass(frozen=True)
class ChannelHeader:
    """The static part of a channel header."""

    width: int
    height: int
    channels: int
    pixel_format: str
    slot_count: int
    pid: int
    t_created: float
    fps_nominal: float
    name: str
    source: str

    @property
    def frame_bytes(self) -> int:
        return self.width * self.height * self.channels

    @property
    def slot_stride(self) -> int:
        return align(SLOT_HEADER_SIZE + self.frame_bytes, SLOT_ALIGN)

    @property
    def total_size(self) -> int:
        return HEADER_SIZE + self.slot_count * self.slot_stride

    def slot_offset(self, index: int) -> int:
        return HEADER_SIZE + index * self.slot_stride

    def pack(self) -> bytes:
        """The 256 header bytes with every dynamic field zero (state starting, no frame)."""
        buf = bytearray(HEADER_SIZE)
        _STATIC.pack_into(
            buf, 0, MAGIC, VERSION, HEADER_SIZE, self.width, self.height, self.channels,
            PIXEL_FORMATS[self.pixel_format], self.slot_count, SLOT_HEADER_SIZE,
            self.slot_stride, self.frame_bytes, self.pid, 0, self.t_created,
        )  # fmt: skip
        struct.pack_into("<d", buf, _FPS_NOMINAL_OFFSET, self.fps_nominal)
        _NAME.pack_into(buf, 128, _fixed(self.name, 32), _fixed(self.source, 96))
        return bytes(buf)

    @classmethod
    def unpack(cls, data: bytes | memoryview, where: str) -> ChannelHeader:
        """Parse and validate; ``where`` (the path) is named in every error."""
        if len(data) < HEADER_SIZE:
            raise LayoutError(f"{where}: {len(data)} bytes, a channel header needs {HEADER_SIZE}")
        fields = _STATIC.unpack_from(data, 0)
        magic, version, header_size, width, height, channels, pix, slots, slot_hdr = fields[:9]
        stride, frame_bytes, pid, _reserved, t_created = fields[9:]
        if magic != MAGIC:
            raise LayoutError(f"{where}: not a reflex camera channel (magic {magic!r})")
        if version != VERSION:
            raise LayoutError(f"{where}: channel layout version {version}, this reader knows {VERSION}")
        if pix not in PIXEL_FORMAT_NAMES:
            raise LayoutError(f"{where}: unknown pixel format code {pix}")
        (fps_nominal,) = struct.unpack_from("<d", data, _FPS_NOMINAL_OFFSET)
        name, source = _NAME.unpack_from(data, 128)
        header = cls(
            width=width, height=height, channels=channels, pixel_format=PIXEL_FORMAT_NAMES[pix],
            slot_count=slots, pid=pid, t_created=t_created, fps_nominal=fps_nominal,
            name=_unfixed(name), source=_unfixed(source),
        )  # fmt: skip
        expected = (HEADER_SIZE, SLOT_HEADER_SIZE, header.slot_stride, header.frame_bytes)
        if (header_size, slot_hdr, stride, frame_bytes) != expected or channels != 3 or slots < 1:
            raise LayoutError(
                f"{where}: inconsistent header (header {header_size}, slot header {slot_hdr}, "
                f"stride {stride}, frame {frame_bytes} bytes, {channels} channels, {slots} slots)"
            )
        return header


def align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def _fixed(text: str, size: int) -> bytes:
    raw = text.encode("utf-8")[:size]
    return raw + b"\x00" * (size - len(raw))


def _unfixed(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("utf-8", errors="replace")
