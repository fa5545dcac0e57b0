"""One long-lived connector process speaking newline-delimited JSON on stdin/stdout.

One request is in flight at a time; each reply must carry the request's ``id``. Any transport
failure (timeout, exit, a line that is not JSON, a wrong id) marks the channel broken and kills
the process: after that, nothing it says can be trusted, and the safe stop goes through
``safe_stop_command`` instead.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import subprocess
import threading
import time
from typing import Any

from reflex.hardware.subprocess.codec import decode_object, reply_id_despite_nan
from reflex.hardware.subprocess.errors import ContractViolation, NonFiniteNumber, excerpt, tail
from reflex.hardware.subprocess.process import CommandSpec, describe_exit, kill_group, start
from reflex.hardware.subprocess.streams import MAX_REPLY_BYTES, READ_BYTES, StderrTail


class ChannelBroken(RuntimeError):
    """The process can no longer be talked to."""


class PersistentProcess:
    def __init__(
        self, spec: CommandSpec, extra_env: dict[str, str], max_reply_bytes: int = MAX_REPLY_BYTES
    ) -> None:
        self.spec = spec
        self.max_reply_bytes = max_reply_bytes
        self._extra_env = extra_env
        self._proc: subprocess.Popen[bytes] | None = None
        self._buffer = bytearray()
        self._stderr = StderrTail()
        self._stderr_thread: threading.Thread | None = None
        self._selector: selectors.BaseSelector | None = None
        self.broken: str | None = None  # why the channel is unusable

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        proc = start(self.spec, self._extra_env)
        self._proc = proc
        assert proc.stdout is not None and proc.stderr is not None
        os.set_blocking(proc.stdout.fileno(), False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(proc.stdout.fileno(), selectors.EVENT_READ)
        self._stderr_thread = threading.Thread(
            target=self._drain_stderr, args=(proc,), name="reflex-connector-stderr", daemon=True
        )
        self._stderr_thread.start()

    @property
    def healthy(self) -> bool:
        return self._proc is not None and self.broken is None and self._proc.poll() is None

    def kill(self, reason: str) -> None:
        if self.broken is None:
            self.broken = reason
        if self._proc is not None:
            kill_group(self._proc)
            self._close_streams()

    def wait_exit(self, timeout_s: float) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stderr_tail(self) -> str:
        if self._stderr_thread is not None and self._proc is not None and self._proc.poll() is not None:
            self._stderr_thread.join(timeout=0.2)  # let the last lines arrive
        return tail(self._stderr.text())

    # -- exchange --------------------------------------------------------------------------
    def exchange(self, line: bytes, request_id: int, timeout_s: float) -> dict[str, Any]:
        """Send one request line, return the decoded reply object (the caller validates it).
        Raises ChannelBroken, or NonFiniteNumber for an in-sync reply carrying NaN/Infinity."""
        if self.broken is not None:
            raise ChannelBroken(f"the connector process is unusable ({self.broken})")
        deadline = time.monotonic() + timeout_s
        self._send(line)
        raw = self._read_line(deadline, timeout_s)
        try:
            data = decode_object(raw, "reply line")
        except NonFiniteNumber:
            if reply_id_despite_nan(raw) == request_id:
                raise  # a bad value in an in-sync reply: the process can still be asked to stop
            self._break("a reply line with NaN/Infinity and the wrong id")
        except ContractViolation as exc:
            self._break(f"{exc} (only JSON reply lines may go to stdout; print logs to stderr)")
        reply_id = data.get("id")
        if reply_id != request_id:
            got = "no id" if reply_id is None else f"id {reply_id!r}"
            self._break(f"reply has {got}, expected id {request_id} (replies must echo the request id, "
                        "one reply per request, in order)")
        return data

    def _send(self, line: bytes) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(line)
            self._proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            self._break(self._exit_text("stopped reading stdin"))

    def _read_line(self, deadline: float, timeout_s: float) -> bytes:
        assert self._proc is not None and self._proc.stdout is not None and self._selector is not None
        fd = self._proc.stdout.fileno()
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0:
                line = bytes(self._buffer[:newline])
                del self._buffer[: newline + 1]
                if line.strip():
                    return line
                continue  # blank lines are allowed between messages
            if len(self._buffer) > self.max_reply_bytes:
                self._break(f"a reply line exceeded {self.max_reply_bytes} bytes without a newline")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                partial = f"; partial line so far: {excerpt(bytes(self._buffer))}" if self._buffer else ""
                self._break(f"no reply within {timeout_s:g} s{partial}")
            if not self._selector.select(remaining):
                continue
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            if not chunk:
                partial = ""
                if self._buffer.strip():
                    partial = f" after a partial line {excerpt(bytes(self._buffer))}"
                self._break(self._exit_text("closed stdout") + partial)
            self._buffer += chunk

    def _exit_text(self, what: str) -> str:
        code = self.wait_exit(0.5)
        if code is None:
            return f"the process {what} but is still running"
        return f"the process {describe_exit(code)}"

    def _break(self, reason: str) -> Any:
        self.kill(reason)
        raise ChannelBroken(reason)

    # -- internals -------------------------------------------------------------------------
    def _drain_stderr(self, proc: subprocess.Popen[bytes]) -> None:
        """Read stderr in fixed-size chunks into a bounded tail: a line with no end costs nothing."""
        assert proc.stderr is not None
        fd = proc.stderr.fileno()
        try:
            while chunk := os.read(fd, READ_BYTES):
                self._stderr.feed(chunk)
        except (OSError, ValueError):
            pass

    def _close_streams(self) -> None:
        if self._selector is not None:
            self._selector.close()
            self._selector = None
        proc = self._proc
        if proc is None:
            return
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
