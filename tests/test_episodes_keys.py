"""Operator labels as single keys at a real terminal: ``reflex connect`` on a pseudo-terminal.

The session's stdin is the slave side of a pty, the test types on the master side one key at a
time (no Enter), after the prompt asks for it. The terminal's mode must be as it was afterwards,
however the session ends (a clean end, Ctrl-C typed on the terminal).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, base_session, subprocess_env, write_session

STEPS = 6
TASKS = ["pick the red cube", "stack them"]


class Terminal:
    """A pty whose output (what the session shows the operator) is drained by a thread."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        self.mode = termios.tcgetattr(self.slave)
        self.output = bytearray()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.master, 4096)
                except OSError:
                    return
                with self._lock:
                    self.output += data

    def text(self) -> str:
        with self._lock:
            return self.output.decode("utf-8", "replace")

    def wait_for(self, needle: str, count: int, proc: subprocess.Popen[str]) -> None:
        deadline = time.monotonic() + 120  # a bound against a hang, not a timing assertion
        while self.text().count(needle) < count:
            assert proc.poll() is None, f"the session ended before {needle!r} #{count}:\n{self.text()[-2000:]}"
            assert time.monotonic() < deadline, f"never saw {needle!r} #{count}:\n{self.text()[-2000:]}"
            time.sleep(0.02)

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self.slave)


# run a command with the pty (its stdin) as its controlling terminal, so Ctrl-C typed there signals
# it and job control applies: a new session, the terminal claimed, then exec (no preexec_fn needed)
CONTROLLING_TTY = [sys.executable, "-c", "import fcntl, os, sys, termios; os.setsid(); "
                   "fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execvp(sys.argv[1], sys.argv[1:])"]


def spawn(tmp_path: Path, term: Terminal, *, as_json: bool) -> subprocess.Popen[str]:
    config = write_session(tmp_path, base_session(
        mode="dry_run", control_rate_hz=30, max_steps=0,
        episodes={"count": 2, "steps": STEPS, "tasks": TASKS, "labels": "stdin"},
        record={"enabled": True, "formats": ["lerobot"]},
    ))
    args = [*CONTROLLING_TTY, sys.executable, "-m", "reflex", "connect", "--config", str(config),
            "--record", str(tmp_path / "rec")]
    env = subprocess_env(TERM="xterm", COLUMNS="200")
    return subprocess.Popen(
        [*args, "--json"] if as_json else args, stdin=term.slave, stderr=term.slave,
        stdout=subprocess.PIPE if as_json else term.slave, text=True, env=env, cwd=REPO,
    )


@pytest.fixture
def term() -> Iterator[Terminal]:
    t = Terminal()
    yield t
    t.close()


def test_single_keys_label_the_episodes_and_the_terminal_is_restored(tmp_path: Path, term: Terminal) -> None:
    proc = spawn(tmp_path, term, as_json=True)
    try:
        term.wait_for("episode 0 finished: label it (press a key)", 1, proc)
        lflag = termios.tcgetattr(term.slave)[3]
        assert not lflag & (termios.ICANON | termios.ECHO) and lflag & termios.ISIG  # cbreak, Ctrl-C kept
        term.type(b"s")
        term.wait_for("episode 1 finished", 1, proc)
        term.type(b"x")  # not a label: answered with the keys, waited past
        term.wait_for("not a label: 'x'", 1, proc)
        term.type(b"r")  # re-record: episode 1 again
        term.wait_for("episode 1 finished", 2, proc)
        term.type(b"f")
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    result = json.loads(out.strip().splitlines()[-1])
    assert proc.returncode == 0 and result["ok"], (result["errors"], term.text()[-2000:])
    eps = result["episodes"]
    assert [(o["index"], o["task"], o["outcome"]) for o in eps["outcomes"]] == [
        (0, TASKS[0], "success"), (1, TASKS[1], "re-record"), (1, TASKS[1], "failure")]
    assert (eps["recorded"], eps["reRecorded"], eps["successRate"]) == (2, 1, 0.5)
    assert termios.tcgetattr(term.slave) == term.mode  # echo and line editing back as they were


def test_the_live_line_shows_the_keys_and_ctrl_c_restores_the_terminal(tmp_path: Path, term: Terminal) -> None:
    proc = spawn(tmp_path, term, as_json=False)
    try:
        term.wait_for("label? [s]uccess  [f]ailure  [r]e-record  [q] stop", 1, proc)  # the live status line
        term.type(b"\x03")  # Ctrl-C typed on the terminal: cbreak keeps it a signal; once: finish cleanly
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, term.text()[-3000:]
    assert "ep 0/2 label?" in term.text()
    assert termios.tcgetattr(term.slave) == term.mode
    events = [json.loads(line) for line in (tmp_path / "rec/lerobot/meta/reflex/events.jsonl").read_text().splitlines()]
    ends = [e["data"] for e in events if e.get("kind") == "episode_end"]
    assert [(e["index"], e["outcome"]) for e in ends] == [(0, None)]  # stopped while waiting: unlabelled


def test_a_background_session_never_touches_the_terminal(tmp_path: Path, term: Terminal) -> None:
    """``reflex connect ... &`` from an interactive shell: reading or setting the terminal would
    stop the process (SIGTTIN/SIGTTOU) with its motors possibly live; it reads no labels instead."""
    config = write_session(tmp_path, base_session(
        mode="dry_run", control_rate_hz=30, max_steps=0,
        episodes={"count": 2, "steps": STEPS, "labels": "stdin"}, record={"enabled": False},
    ))
    out = tmp_path / "result.json"
    shell = f"set -m; {sys.executable} -m reflex connect --config {config} --json > {out} & wait $!"
    proc = subprocess.Popen([*CONTROLLING_TTY, "bash", "-c", shell], stdin=term.slave, stdout=term.slave,
                            stderr=term.slave, env=subprocess_env(TERM="xterm"), cwd=REPO)
    try:
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, term.text()[-2000:]
    assert "not in the foreground" in term.text()
    result = json.loads(out.read_text().strip().splitlines()[-1])
    assert result["ok"] and result["episodes"]["stoppedBy"] == "input ended"
    assert termios.tcgetattr(term.slave) == term.mode
