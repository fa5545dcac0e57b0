"""Operator labels for episodes, typed on stdin (a script piping them in works the same).

One label per line: ``s``/``success``, ``f``/``failure``, ``r``/``re-record``, ``q``/``stop``. A
line is read only when the session asks for one (after an episode, or to end a ``wait`` reset), so
labels piped in ahead of time are taken in order. Lines are bounded; the reader is a daemon thread
so a session never waits on a terminal it does not need.
"""

from __future__ import annotations

import queue
import sys
import threading
from typing import IO, Literal

Outcome = Literal["success", "failure", "re-record", "stop"]
MAX_LINE = 256  # characters of one operator line that are looked at
LABELS: dict[str, Outcome] = {
    "s": "success", "success": "success",
    "f": "failure", "failure": "failure", "fail": "failure",
    "r": "re-record", "re-record": "re-record", "rerecord": "re-record",
    "q": "stop", "stop": "stop",
}
HELP = "[s]uccess  [f]ailure  [r]e-record  [q] stop"


def parse_label(line: str) -> Outcome | None:
    """The outcome a line names, or None (unknown input)."""
    return LABELS.get(line[:MAX_LINE].strip().lower())


class LineReader:
    """Lines from a stream on a daemon thread; ``None`` once the stream ends."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._lines: queue.Queue[str | None] = queue.Queue(maxsize=1024)
        self._ended = False
        self._thread = threading.Thread(target=self._run, name="reflex-labels", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                line = self._stream.readline(MAX_LINE + 1)
                if not line:
                    break
                if not line.endswith("\n"):  # an over-long line: skip its rest
                    while line and not line.endswith("\n"):
                        line = self._stream.readline(MAX_LINE + 1)
                    line = "?"
                self._lines.put(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        self._lines.put(None)

    def poll(self) -> tuple[bool, str | None]:
        """(True, line) when a line (None: end of input) is there, else (False, None)."""
        if self._ended:
            return True, None
        try:
            line = self._lines.get_nowait()
        except queue.Empty:
            return False, None
        self._ended = line is None
        return True, line
