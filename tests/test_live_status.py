"""The live status of ``reflex connect`` as a person sees it: a real child process on a
pseudo-terminal (80 columns), versus the same command with ``--json`` or piped."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

from conftest import REPO, base_session, subprocess_env, write_session

CLEAR = "\r\x1b[K"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def run_on_pty(args: list[str], columns: int = 80, timeout_s: float = 120) -> tuple[int, str]:
    """``python -m reflex ARGS`` with a pseudo-terminal as stdin/stdout/stderr; returns (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: a terminal of ``columns`` columns, then exec
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
            os.chdir(REPO)
            env = subprocess_env(TERM="xterm")
            env.pop("COLUMNS", None)
            os.execvpe(sys.executable, [sys.executable, "-m", "reflex", *args], env)
        finally:
            os._exit(127)
    chunks = []
    import select
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


def session_file(tmp_path: Path, **record: object) -> Path:
    # 150 steps at 50 Hz: at least 3 s of wall time, a dozen refreshes of a 0.25 s live line
    session = base_session(control_rate_hz=50, max_steps=150, record={"formats": ["jsonl"], **record})
    return write_session(tmp_path, session)


def long_record_dir(tmp_path: Path) -> Path:
    return tmp_path / "a-recording-directory-with-a-long-name-so-the-whole-path-is-well-past-eighty-columns"


def test_live_line_appears_updates_and_the_summary_is_whole_at_80_columns(tmp_path: Path) -> None:
    record = long_record_dir(tmp_path)
    code, out = run_on_pty(["connect", str(session_file(tmp_path)), "--record", str(record)])
    assert code == 0, out
    head, _, rest = out.partition("\n")
    assert "connected to local builtin:demo" in head and "DRY RUN" in head and "50 Hz" in head
    assert "Ctrl-C to stop" in head
    # the live line: redrawn in place, with a step count that grows
    frames = [ANSI.sub("", f) for f in rest.split(CLEAR) if f.strip()]
    live = [f for f in frames if re.search(r"step \d+", f) and "reflex connect:" not in f]
    steps = [int(re.search(r"step (\d+)", f).group(1)) for f in live]  # type: ignore[union-attr]
    assert len(set(steps)) >= 2 and steps == sorted(steps), live
    assert all(len(f.rstrip("\r\n")) < 80 for f in live)  # one row, so \r can redraw it
    # whole cells only, in priority order: what fits in 80 columns
    for frame, step in zip(live, steps, strict=True):
        assert frame.startswith(f"step {step} ") and "Hz  late p99" in frame and "clamps" in frame, frame
    # the summary after it: a report, no Python reprs, nothing truncated
    summary = ANSI.sub("", out[out.index("reflex connect:"):])
    assert "reflex connect: ok" in summary
    for repr_mark in ("['", "{'", "None", "…", "..."):
        assert repr_mark not in summary, summary
    result_id = re.search(r"session_\w+", summary)
    assert result_id is not None and (record / "recording.json").is_file()
    manifest = json.loads((record / "recording.json").read_text())
    assert manifest["session_id"] in summary
    assert str(record) in [ln.strip() for ln in summary.splitlines()]  # the whole path, on its own line
    assert "150 steps" in summary and "guard" in summary and "camera" in summary and "top:" in summary
    # prose wraps at 80 columns; only a single long token (a path) may run past, whole
    long_lines = [ln for ln in summary.splitlines() if len(ln) > 80]
    assert all(" " not in ln.strip().split("  ")[-1].strip() for ln in long_lines), long_lines


def test_live_line_carries_every_cell_on_a_wide_terminal() -> None:
    from reflex.cli.live import status_line
    from reflex.runtime.live import LiveSnapshot

    snap = LiveSnapshot(t=12.5, steps=625, rate_hz=49.9, lateness_p99_ms=1.23, chunk_age_ms=80.0, chunks=12,
                        clamp_delta=7, clamp_limit=2, stale_steps=3, starved_steps=1, record_backlog_kib=64.0,
                        record_dropped=4, seam_jump=0.012)
    line = status_line(snap, 200)
    for cell in ("step 625 49.9Hz", "late p99 1.2ms", "chunk 80ms", "clamps 9", "stale 3", "rec 64K 4 drop",
                 "starved 1", "seam 0.012", "12.5s"):
        assert cell in line, line
    narrow = status_line(snap, 40)
    assert len(narrow) < 40 and line.startswith(narrow)


def test_no_live_line_with_json_on_a_terminal(tmp_path: Path) -> None:
    code, out = run_on_pty(["connect", str(session_file(tmp_path)), "--json", "--no-record"])
    assert code == 0, out
    assert CLEAR not in out and "Ctrl-C to stop" not in out
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1 and json.loads(lines[0])["ok"] is True


def test_no_live_line_when_piped(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reflex", "connect", str(session_file(tmp_path)), "--no-record"],
        capture_output=True, text=True, env=subprocess_env(TERM="xterm"), cwd=REPO, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stdout and "\r" not in proc.stdout and "Ctrl-C to stop" not in proc.stdout
    assert proc.stdout.startswith("reflex connect: ok")


def test_text_on_stderr_starts_on_a_clean_row(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An operator prompt (or any stderr line) printed while the live line is drawn clears it first."""
    import io

    from reflex.cli.live import LiveStatus

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    live_out, err = Terminal(), Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    live = LiveStatus(live_out)
    live._hook_stderr()
    print("episode 1 done: [s]uccess  [f]ailure", file=sys.stderr)
    assert live_out.getvalue() == CLEAR and err.getvalue() == "episode 1 done: [s]uccess  [f]ailure\n"
    live.finished()
    assert sys.stderr is err  # restored
