"""Splitting messages above the SCTP message size limit, and putting them back together.

aiortc refuses data-channel messages above the peer's ``max-message-size`` (256 KiB between
aiortc peers, 64 KiB by the RFC default and in browsers). Every message therefore travels as one
or more parts, each with a 12-byte header: magic ``RX``, version 1, flags 0, u32 message id,
u16 part index, u16 part count (big-endian). Parts may arrive in any order.
"""

from __future__ import annotations

import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field

HEADER = struct.Struct(">2sBBIHH")
MAGIC = b"RX"
VERSION = 1
DEFAULT_PART_BYTES = 64 * 1024  # browser-safe; aiortc itself takes up to 256 KiB


class FragmentError(ValueError):
    """A part that cannot belong to a valid message."""


def split_message(msg_id: int, payload: bytes, part_bytes: int = DEFAULT_PART_BYTES) -> list[bytes]:
    """``payload`` as parts of at most ``part_bytes`` bytes each (header included)."""
    room = part_bytes - HEADER.size
    if room <= 0:
        raise ValueError(f"part_bytes must exceed the {HEADER.size}-byte header")
    count = max(1, -(-len(payload) // room))
    if count > 0xFFFF:
        raise ValueError(f"message of {len(payload)} bytes needs {count} parts (max 65535)")
    view = memoryview(payload)
    msg_id &= 0xFFFFFFFF
    return [
        HEADER.pack(MAGIC, VERSION, 0, msg_id, i, count) + view[i * room : (i + 1) * room]
        for i in range(count)
    ]


@dataclass
class _Pending:
    count: int
    parts: dict[int, bytes] = field(default_factory=dict)
    size: int = 0
    t_first: float = 0.0


class Reassembler:
    """Collects parts; ``feed`` returns the whole message once its last part arrived.

    Bounded: a message larger than ``max_message_bytes`` is dropped with an error, at most
    ``max_pending`` messages are open at once (the oldest is dropped), and a message whose
    parts stop coming for ``ttl_s`` is dropped on the next ``feed``.
    """

    def __init__(self, max_message_bytes: int, max_pending: int = 8, ttl_s: float = 10.0) -> None:
        self.max_message_bytes = max_message_bytes
        self.max_pending = max_pending
        self.ttl_s = ttl_s
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self.dropped = 0

    def feed(self, part: bytes | bytearray | memoryview) -> tuple[int, bytes] | None:
        if len(part) < HEADER.size:
            raise FragmentError(f"part of {len(part)} bytes is shorter than the header")
        magic, version, _flags, msg_id, index, count = HEADER.unpack_from(part)
        if magic != MAGIC or version != VERSION:
            raise FragmentError(f"bad part header (magic {magic!r}, version {version})")
        if count == 0 or index >= count:
            raise FragmentError(f"part index {index} out of range for {count} parts")
        body = bytes(part[HEADER.size :])
        if count == 1:
            self._check_size(msg_id, len(body))
            return msg_id, body
        self._expire()
        pending = self._pending.get(msg_id)
        if pending is None:
            pending = _Pending(count=count, t_first=time.monotonic())
            self._pending[msg_id] = pending
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
                self.dropped += 1
        if pending.count != count:
            del self._pending[msg_id]
            raise FragmentError(f"message {msg_id}: parts disagree on the part count")
        if index in pending.parts:
            return None  # a duplicate; reliable channels never send one, so ignore it
        pending.parts[index] = body
        pending.size += len(body)
        if pending.size > self.max_message_bytes:
            del self._pending[msg_id]
            self._check_size(msg_id, pending.size)
        if len(pending.parts) < count:
            return None
        del self._pending[msg_id]
        return msg_id, b"".join(pending.parts[i] for i in range(count))

    def _check_size(self, msg_id: int, size: int) -> None:
        if size > self.max_message_bytes:
            raise FragmentError(
                f"message {msg_id} is over the {self.max_message_bytes}-byte limit ({size} bytes so far)"
            )

    def _expire(self) -> None:
        now = time.monotonic()
        while self._pending:
            msg_id, oldest = next(iter(self._pending.items()))
            if now - oldest.t_first <= self.ttl_s:
                break
            del self._pending[msg_id]
            self.dropped += 1
