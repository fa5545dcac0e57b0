"""Starting and bounding user commands.

Every command runs in its own session (process group): a timeout kills the whole group, so a
script's children (``sleep``, a Python helper) cannot keep the pipes open and hang Reflex, and a
Ctrl-C at the terminal reaches Reflex only, which then runs the safe stop through these commands
instead of having them die mid-move.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reflex.hardware.subprocess.config import Command
from reflex.hardware.subprocess.streams import MAX_REPLY_BYTES, READ_BYTES, StderrTail


@dataclass(frozen=True)
class CommandSpec:
    """One configured command: which config field it came from and how to start it."""

    field: str  # e.g. "observe_command": named in every error
    display: str  # as written in the config
    argv: tuple[str, ...]
    cwd: Path
    env: dict[str, str]

    @classmethod
    def from_config(
        cls, field: str, command: Command, shell: bool, cwd: Path, env: dict[str, str]
    ) -> CommandSpec:
        display = command if isinstance(command, str) else shlex.join(command)
        if shell:
            argv: tuple[str, ...] = ("/bin/sh", "-c", display)
        else:
            argv = tuple(shlex.split(command)) if isinstance(command, str) else tuple(command)
        return cls(field, display, argv, cwd, env)


@dataclass
class CallResult:
    returncode: int | None  # None: killed after the timeout, or for writing too much
    stdout: bytes
    stderr: bytes  # the kept tail only (see streams.StderrTail)
    seconds: float
    overflow: bool = False  # stdout went past the reply cap: killed


class StartFailed(OSError):
    """The command could not be started at all (not found, not executable, bad cwd)."""


def start(spec: CommandSpec, extra_env: dict[str, str], pipes_stdin: bool = True) -> subprocess.Popen[bytes]:
    env = {**os.environ, **spec.env, **extra_env}
    try:
        return subprocess.Popen(
            spec.argv,
            stdin=subprocess.PIPE if pipes_stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=spec.cwd,
            env=env,
            start_new_session=True,
        )
    except FileNotFoundError as exc:
        missing = exc.filename if exc.filename else spec.argv[0]
        if not spec.cwd.is_dir():
            raise StartFailed(f"working directory {spec.cwd} does not exist") from None
        raise StartFailed(f"cannot start: {missing} not found (cwd {spec.cwd})") from None
    except PermissionError:
        raise StartFailed(f"cannot start: {spec.argv[0]} is not executable (chmod +x, or run it "
                          "through its interpreter, e.g. `bash script.sh`)") from None
    except OSError as exc:
        raise StartFailed(f"cannot start: {exc}") from None


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = 0.0) -> None:
    """SIGTERM (if a grace period is given) then SIGKILL to the command's whole process group."""
    if proc.poll() is not None:
        return  # exited: whatever it started on purpose (e.g. a driver daemon) is left alone
    if grace_s > 0:
        _signal_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    _signal_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2.0)


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_once(
    spec: CommandSpec, stdin: bytes, timeout_s: float, extra_env: dict[str, str],
    max_stdout: int = MAX_REPLY_BYTES,
) -> CallResult:
    """Run the command to completion with ``stdin``; kill its group when ``timeout_s`` passes or
    stdout goes past ``max_stdout``. stderr is drained into a bounded tail."""
    t0 = time.monotonic()
    deadline = t0 + timeout_s
    proc = start(spec, extra_env)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    out = bytearray()
    err = StderrTail()
    pending = memoryview(stdin)
    with selectors.DefaultSelector() as selector:
        for stream, event in ((proc.stdin, selectors.EVENT_WRITE), (proc.stdout, selectors.EVENT_READ),
                              (proc.stderr, selectors.EVENT_READ)):
            os.set_blocking(stream.fileno(), False)
            selector.register(stream, event)
        if not pending:
            _unregister(selector, proc.stdin)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return _killed(proc, out, err, t0)
            for key, _ in selector.select(remaining):
                source: Any = key.fileobj
                if source is proc.stdin:
                    try:
                        pending = pending[os.write(proc.stdin.fileno(), pending[:READ_BYTES]):]
                    except BlockingIOError:
                        continue
                    except OSError:
                        pending = pending[:0]  # stopped reading stdin: its exit status tells why
                    if not pending:
                        _unregister(selector, proc.stdin)
                    continue
                try:
                    data = os.read(key.fd, READ_BYTES)
                except BlockingIOError:
                    continue
                if not data:
                    _unregister(selector, source)
                elif source is proc.stdout:
                    out += data
                    if len(out) > max_stdout:
                        return _killed(proc, out[:max_stdout], err, t0, overflow=True)
                else:
                    err.feed(data)
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 0.0))
    except subprocess.TimeoutExpired:
        return _killed(proc, out, err, t0)
    _close(proc)
    return CallResult(proc.returncode, bytes(out), err.text().encode(), time.monotonic() - t0)


def _unregister(selector: selectors.BaseSelector, stream: Any) -> None:
    selector.unregister(stream)
    with contextlib.suppress(OSError):
        stream.close()


def _killed(
    proc: subprocess.Popen[bytes], out: bytearray, err: StderrTail, t0: float, overflow: bool = False
) -> CallResult:
    kill_group(proc)
    _close(proc)
    return CallResult(None, bytes(out), err.text().encode(), time.monotonic() - t0, overflow)


def _close(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"was killed by {name}"
    return f"exited with code {returncode}"
