"""The live status of ``reflex connect`` in a terminal: what is running, then one line refreshed a
few times a second (step, achieved rate, lateness, chunk age, guard clamps, stale steps, recorder
backlog). It runs on its own thread and only reads counters the loop keeps anyway
(:mod:`reflex.runtime.live`), so the control loop does no work for it.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from reflex.runtime.live import LiveProbe, LiveSnapshot

if TYPE_CHECKING:
    from reflex.runtime.session import Session

REFRESH_S = 0.25
CLEAR = "\r\033[K"


def wanted(stream: TextIO, as_json: bool) -> bool:
    """Only for a person at a terminal: not with --json, not when piped, not on a dumb terminal."""
    isatty = getattr(stream, "isatty", None)
    return (not as_json and callable(isatty) and bool(isatty()) and os.environ.get("TERM") != "dumb")


def headline(session: Session) -> str:
    """``connected to local builtin:demo (CPU); robot sim, 14 joints; ... Ctrl-C to stop``."""
    cfg, info = session.config, session.info
    parts = []
    if info is not None:
        target = info.kind
        where = info.details.get("export") or info.details.get("url")
        if where:
            target += f" {where}"
        providers = [p.removesuffix("ExecutionProvider") for p in info.providers]
        if providers:
            target += f" ({', '.join(providers)})"
        parts.append(f"connected to {target}")
    hardware = session.hardware
    joints = hardware.layout.dim if hardware is not None else 0
    parts.append(f"robot {cfg.hardware.kind}, {joints} joints")
    cameras = session.cameras.names()
    if cameras:
        parts.append("cameras " + ", ".join(cameras))
    mode = "DRY RUN (nothing sent to the robot)" if cfg.mode == "dry_run" else "APPLYING ACTIONS"
    parts.append(f"{mode} at {cfg.control_rate_hz:g} Hz")
    recording = session.result.recording
    parts.append(f"recording to {recording['path']}" if recording else "not recording")
    return "; ".join(parts) + ". Ctrl-C to stop."


def status_cells(s: LiveSnapshot) -> list[str]:
    """The live line's cells, most important first (a narrow terminal shows a prefix of them)."""
    cells = [f"step {s.steps} {s.rate_hz:.1f}Hz"]
    if s.episode is not None:
        cells.insert(0, s.episode)
    if s.lateness_p99_ms is not None:
        cells.append(f"late p99 {s.lateness_p99_ms:.1f}ms")
    if s.chunk_age_ms is not None:
        cells.append(f"chunk {s.chunk_age_ms:.0f}ms")
    cells.append(f"clamps {s.clamp_delta + s.clamp_limit}")
    cells.append(f"stale {s.stale_steps}")
    if s.record_backlog_kib is not None:
        cells.append(f"rec {s.record_backlog_kib:.0f}K {s.record_dropped} drop")
    if s.starved_steps:
        cells.append(f"starved {s.starved_steps}")
    if s.seam_jump is not None:
        cells.append(f"seam {s.seam_jump:.3f}")
    cells.append(f"{s.t:.1f}s")
    return cells


def status_line(s: LiveSnapshot, width: int = 1000) -> str:
    """Whole cells that fit in one terminal row (``\r`` can only redraw one row)."""
    line = ""
    for cell in status_cells(s):
        candidate = f"{line}  {cell}" if line else cell
        if len(candidate) >= width:
            break
        line = candidate
    return line


class LiveStatus:
    """A :class:`reflex.runtime.session.SessionWatcher` that draws the live line."""

    def __init__(self, stream: TextIO | None = None, refresh_s: float = REFRESH_S) -> None:
        self.stream = stream or sys.stdout
        self.refresh_s = refresh_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lines_drawn = 0
        self._hooked: list[logging.Handler] = []
        self._lock = threading.Lock()

    def running(self, session: Session) -> None:
        assert session.loop is not None
        probe = LiveProbe(session.loop, session.hub, session.t_start, session.episodes)
        self._write(headline(session) + "\n")
        self._hook_logging()
        self._hook_stderr()
        self._thread = threading.Thread(target=self._run, args=(probe,), name="reflex-live", daemon=True)
        self._thread.start()

    def finished(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
            self._write(CLEAR)
        for handler in self._hooked:
            handler.removeFilter(self._clear_before_log)
        self._hooked = []
        if isinstance(sys.stderr, _ClearFirst):
            sys.stderr = sys.stderr.wrapped

    def _hook_stderr(self) -> None:
        """Text printed to stderr on this terminal while the line is drawn (an operator prompt, a
        warning) starts on a clean row too."""
        isatty = getattr(sys.stderr, "isatty", None)
        if callable(isatty) and isatty() and not isinstance(sys.stderr, _ClearFirst):
            sys.stderr = _ClearFirst(sys.stderr, lambda: self._write(CLEAR))

    def _hook_logging(self) -> None:
        """A log line (``-v``) written to the same terminal starts on a clean row, not after the
        live line; the live line is redrawn below it at the next refresh."""
        for handler in logging.getLogger().handlers:
            stream = getattr(handler, "stream", None)
            isatty = getattr(stream, "isatty", None)
            if callable(isatty) and isatty():
                handler.addFilter(self._clear_before_log)
                self._hooked.append(handler)

    def _clear_before_log(self, record: logging.LogRecord) -> bool:
        self._write(CLEAR)
        return True

    def _run(self, probe: LiveProbe) -> None:
        while not self._stop.wait(self.refresh_s):
            width = shutil.get_terminal_size((100, 24)).columns
            self._write(CLEAR + status_line(probe.snapshot(), width))
            self.lines_drawn += 1

    def _write(self, text: str) -> None:
        try:
            with self._lock:  # the drawing thread and the main thread both write
                self.stream.write(text)
                self.stream.flush()
        except (OSError, ValueError):  # the terminal went away: stop drawing, the session goes on
            self._stop.set()


class _ClearFirst:
    """A stderr that clears the live row before the first write of each line."""

    def __init__(self, wrapped: TextIO, clear: Callable[[], None]) -> None:
        self.wrapped = wrapped
        self._clear = clear
        self._at_line_start = True

    def write(self, text: str) -> int:
        if text and self._at_line_start:
            self._clear()
        if text:
            self._at_line_start = text.endswith("\n")
        return self.wrapped.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)
