"""Bounded reading of what a connector command writes.

A connector is user code: it may print a log line with no newline forever, or dump a core image
to stdout. Nothing it writes can grow Reflex's memory beyond these caps:

* stdout: one reply (per call: the whole output; persistent: one line) of at most
  :data:`MAX_REPLY_BYTES` — inline camera images fit many times over; beyond it the process is
  killed and the hook fails;
* stderr: only the last :data:`STDERR_LINES` lines are kept, each cut to
  :data:`STDERR_LINE_BYTES`, for error messages; the rest is read and dropped.
"""

from __future__ import annotations

import collections

MAX_REPLY_BYTES = 64 * 1024 * 1024
STDERR_LINES = 40
STDERR_LINE_BYTES = 4096
READ_BYTES = 1 << 16


class StderrTail:
    """The last lines of a stream, each at most ``line_bytes``, whatever and however much is fed."""

    def __init__(self, max_lines: int = STDERR_LINES, line_bytes: int = STDERR_LINE_BYTES) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=max_lines)
        self._line_bytes = line_bytes
        self._partial = bytearray()
        self._cut = 0  # bytes dropped from the current (over-long) line

    def feed(self, chunk: bytes) -> None:
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            piece = chunk[start:] if newline < 0 else chunk[start:newline]
            room = self._line_bytes - len(self._partial)
            self._partial += piece[: max(room, 0)]
            self._cut += max(len(piece) - max(room, 0), 0)
            if newline < 0:
                return
            self._end_line()
            start = newline + 1

    def _end_line(self) -> None:
        line = self._partial.decode("utf-8", errors="replace").rstrip()
        if self._cut:
            line += f" ... ({self._cut} more bytes on this line)"
        self._lines.append(line)
        self._partial.clear()
        self._cut = 0

    def lines(self) -> list[str]:
        out = list(self._lines)
        if self._partial or self._cut:
            tail = self._partial.decode("utf-8", errors="replace").rstrip()
            out.append(tail + (f" ... ({self._cut} more bytes without a newline)" if self._cut else ""))
        return out

    def text(self) -> str:
        return "\n".join(self.lines())
