"""Helpers for the camera/shm tests: isolated channel namespaces, real publisher processes, and a
check that no shared-memory segment outlives a test."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, subprocess_env

SHM = Path("/dev/shm")
_counter = itertools.count()
CLEANUP_WAIT_S = 10.0  # the watchdog of a SIGKILLed publisher removes its channel asynchronously


def reflex_files() -> set[str]:
    if not SHM.is_dir():
        return set()
    return {p for p in os.listdir(SHM) if "reflex_cam_" in p}


def shm_isolation(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Give the test its own channel namespace; afterwards assert that nothing was left behind."""
    namespace = f"t{os.getpid()}n{next(_counter)}"
    monkeypatch.setenv("REFLEX_SHM_NAMESPACE", namespace)
    before = reflex_files()
    yield namespace
    Publisher.stop_all()
    mine = f"reflex_cam_{namespace}."
    deadline = time.monotonic() + CLEANUP_WAIT_S
    while time.monotonic() < deadline:
        left = {f for f in reflex_files() - before if mine in f}
        if not left:
            break
        time.sleep(0.05)
    left = {f for f in reflex_files() - before if mine in f}  # includes half-made ".tmp" files
    assert not left, f"shared-memory segments left behind: {sorted(left)}"


class Publisher:
    """``python -m reflex camera publish NAME ...`` as a real process."""

    running: list[Publisher] = []

    def __init__(self, name: str, *args: str, source: str = "pattern") -> None:
        self.name = name
        cmd = [sys.executable, "-m", "reflex", "camera", "publish", name, "--source", source, "-q", *args]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        Publisher.running.append(self)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the channel exists and carries a first frame (or the process died)."""
        from reflex.shm.reader import ShmReader
        from reflex.shm.segments import ChannelError, channel_path

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"publisher '{self.name}' exited {self.proc.returncode}: {self.output()}")
            if channel_path(self.name).exists():
                try:
                    with ShmReader.attach(self.name) as reader:
                        if reader.header.pid == self.pid and reader.latest_number() > 0:
                            return
                except (ChannelError, ValueError):
                    pass
            time.sleep(0.02)
        raise AssertionError(f"publisher '{self.name}' not ready within {timeout} s")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def output(self) -> str:
        if self.proc.poll() is None:
            return ""
        out, err = self.proc.communicate()
        return out + err

    @classmethod
    def stop_all(cls) -> None:
        for pub in cls.running:
            if pub.proc.poll() is None:
                pub.proc.send_signal(signal.SIGTERM)
                try:
                    pub.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pub.proc.kill()
                    pub.proc.wait()
            if pub.proc.stdout is not None:
                pub.proc.communicate()
        cls.running.clear()


def wait_until(predicate: object, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``predicate()`` until true; fail with ``what`` after ``timeout`` (a bound, not a claim)."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


_NO_WATCHDOG_PUBLISHER = """
import sys, time
from reflex.shm.writer import ShmWriter
from reflex.cameras.sources.pattern import render_pattern
w = ShmWriter.create(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), watchdog=False)
w.write(render_pattern(1, w.header.width, w.header.height))
print("ready", flush=True)
time.sleep(60)
"""


def crash_publisher_without_watchdog(name: str, width: int = 32, height: int = 24) -> int:
    """A publisher that dies by SIGKILL with no watchdog: its channel stays behind, stale."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _NO_WATCHDOG_PUBLISHER, name, str(width), str(height)],
        cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.kill()
    proc.wait()
    proc.stdout.close()
    return proc.pid
