"""Operator labels for episodes: single keys at a terminal, lines from a pipe.

At a terminal (stdin is a TTY) one key is a label, no Enter needed: ``s`` success, ``f`` failure,
``r`` re-record, ``q`` stop (Enter alone ends a ``wait`` reset). The terminal is put in cbreak mode
(no line editing, no echo; Ctrl-C still signals) while the episodes run and restored when they end,
whatever ends them. From a pipe (a script) one label per line: ``s``/``success``,
``f``/``failure``, ``r``/``re-record``, ``q``/``stop``. Either way a label is taken only when the
session asks for one (after an episode, or to end a ``wait`` reset), so labels given ahead of time
are taken in order. Input is bounded (line length, keys per read, queued labels); the readers are
daemon threads so a session never waits on a terminal it does not need.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import select
import sys
import threading
from typing import IO, Any, Literal, Protocol

Outcome = Literal["success", "failure", "re-record", "stop"]
MAX_LINE = 256  # characters of one operator line that are looked at
LABELS: dict[str, Outcome] = {
    "s": "success", "success": "success",
    "f": "failure", "failure": "failure", "fail": "failure",
    "r": "re-record", "re-record": "re-record", "rerecord": "re-record",
    "q": "stop", "stop": "stop",
}
HELP = "[s]uccess  [f]ailure  [r]e-record  [q] stop"
MAX_QUEUED = 1024  # labels waiting to be asked for; more (a key held down) are dropped
KEY_READ = 64  # bytes of terminal input taken per read
END_OF_INPUT = 0x04  # Ctrl-D: in cbreak mode a plain byte, read as the end of input


class OperatorInput(Protocol):
    keys: bool  # single keys (a terminal) rather than lines

    def poll(self) -> tuple[bool, str | None]: ...

    def close(self) -> None: ...


def open_operator_input(stream: IO[str] | None = None) -> OperatorInput:
    """Keys when ``stream`` (stdin) is a terminal, lines otherwise (a pipe, a file)."""
    stream = stream if stream is not None else sys.stdin
    try:
        fd = stream.fileno()
        tty = os.isatty(fd)
    except (AttributeError, OSError, ValueError):
        tty = False
    if tty:
        try:
            foreground = os.tcgetpgrp(fd) == os.getpgrp()
        except OSError:  # not this process's controlling terminal: no job control to stop it
            foreground = True
        if not foreground:  # reading (or setting) a terminal from the background stops the process
            return NoInput("stdin is a terminal this session is not in the foreground of: no labels can be read")
        with contextlib.suppress(ImportError, OSError):
            return KeyReader(fd)
    return LineReader(stream)


class NoInput:
    """No operator input can be read: the episodes end as when stdin ends."""

    keys = False

    def __init__(self, why: str) -> None:
        print(f"{why} (run it in the foreground, or pipe the labels in)", file=sys.stderr, flush=True)

    def poll(self) -> tuple[bool, str | None]:
        return True, None

    def close(self) -> None:
        pass


@contextlib.contextmanager
def _no_sigttou() -> Any:
    """Set terminal modes without SIGTTOU stopping the process (say it went to the background)."""
    import signal

    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTTOU})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def parse_label(line: str) -> Outcome | None:
    """The outcome a line names, or None (unknown input)."""
    return LABELS.get(line[:MAX_LINE].strip().lower())


class LineReader:
    """Lines from a stream on a daemon thread; ``None`` once the stream ends."""

    keys = False

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream if stream is not None else sys.stdin
        self._lines: queue.Queue[str | None] = queue.Queue(maxsize=MAX_QUEUED)
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

    def close(self) -> None:
        """Nothing to restore: the thread ends with the stream (or the process)."""


class KeyReader:
    """Single keys from a terminal in cbreak mode, on a daemon thread; restored by :meth:`close`
    (the session calls it on every way out; ``atexit`` is the backstop)."""

    keys = True

    def __init__(self, fd: int) -> None:
        import termios
        import tty

        self._fd = fd
        self._saved: list[Any] | None = termios.tcgetattr(fd)
        # TCSANOW: keys typed before the session asked are kept, not flushed
        with _no_sigttou():
            tty.setcbreak(fd, termios.TCSANOW)
        atexit.register(self.close)
        self._keys: queue.Queue[str | None] = queue.Queue(maxsize=MAX_QUEUED)
        self._ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reflex-keys", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._fd], [], [], 0.1)  # wakes to notice close()
                if not ready or self._stop.is_set():
                    continue
                data = os.read(self._fd, KEY_READ)
                if not data:
                    break
                for byte in data:
                    if byte == END_OF_INPUT:
                        self._put(None)
                        return
                    if byte in (0x0A, 0x0D):  # Enter: ends a wait reset
                        self._put("")
                    elif 0x20 < byte < 0x7F:  # a printable key; escape sequences and the like are not labels
                        self._put(chr(byte))
        except (OSError, ValueError):
            pass
        self._put(None)

    def _put(self, key: str | None) -> None:
        with contextlib.suppress(queue.Full):
            self._keys.put_nowait(key)

    def poll(self) -> tuple[bool, str | None]:
        if self._ended:
            return True, None
        try:
            key = self._keys.get_nowait()
        except queue.Empty:
            return False, None
        self._ended = key is None
        return True, key

    def close(self) -> None:
        """Restore the terminal as it was (idempotent)."""
        self._stop.set()
        saved, self._saved = self._saved, None
        if saved is None:
            return
        import termios

        self._thread.join(1.0)
        with contextlib.suppress(OSError, termios.error), _no_sigttou():
            termios.tcsetattr(self._fd, termios.TCSADRAIN, saved)
        atexit.unregister(self.close)
