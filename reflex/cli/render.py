"""The human side of ``reflex connect``: the session summary and the ``--check`` rows.

Written for a person at a terminal: sentences and counts with percentages, no Python reprs, and
nothing cut short: prose wraps at the terminal width, and a long token (a path, a session id)
is never broken or ellipsised; it goes on its own line whole and the terminal wraps it.
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from collections.abc import Iterable
from typing import Any, TextIO

INDENT = 12  # "  recording " labels are this wide


def width() -> int:
    return max(40, shutil.get_terminal_size((100, 24)).columns)


class Writer:
    """Plain text to a stream, with colour only on a terminal that wants it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.colour = tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        self.width = width()

    def paint(self, text: str, style: str) -> str:
        if not self.colour:
            return text
        codes = {"ok": "1;32", "bad": "1;31", "warn": "33", "dim": "2", "bold": "1"}
        return f"\033[{codes[style]}m{text}\033[0m"

    def line(self, text: str = "") -> None:
        self.stream.write(text + "\n")

    def para(self, text: str, indent: int = 2) -> None:
        """Prose wrapped at the terminal width, indented; long tokens stay whole."""
        for chunk in textwrap.wrap(text, max(20, self.width - indent), break_long_words=False,
                                   break_on_hyphens=False) or [""]:
            self.line(" " * indent + chunk)

    def row(self, label: str, text: str, style: str | None = None) -> None:
        """``  label    text`` with the text wrapped under itself; long tokens stay whole."""
        lines = textwrap.wrap(
            text, max(20, self.width - INDENT), break_long_words=False, break_on_hyphens=False
        ) or [""]
        head = f"  {label:<{INDENT - 3}} "
        for i, chunk in enumerate(lines):
            body = self.paint(chunk, style) if style else chunk
            self.line((head if i == 0 else " " * INDENT) + body)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "0%"


def ms(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "?"
    return f"{value:.2f} ms" if value < 10 else f"{value:.0f} ms"


def seconds(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "?"
    if value < 120:
        return f"{value:.1f} s"
    minutes, secs = divmod(round(value), 60)
    return f"{minutes} min {secs:02d} s"


def words(items: Iterable[Any]) -> str:
    return ", ".join(str(i) for i in items) or "none"


STOP_REASONS = {
    "completed": "finished as configured (max_steps / duration_s)",
    "source_exhausted": "the replayed recording ran out",
    "aborted": "aborted during connect; nothing was powered",
    "setup_failed": "could not be brought up; nothing moved",
    "forced_exit": "stopped at once by a second Ctrl-C",
    "not_started": "did not start",
}


def stop_reason_text(reason: str) -> str:
    if reason.startswith("signal:"):
        return f"stopped by {reason.partition(':')[2]} (finished cleanly)"
    if reason.startswith("incident:"):
        return f"safe-stopped after a fault in {reason.partition(':')[2]}"
    return STOP_REASONS.get(reason, reason)


def render_result(payload: dict[str, Any], stream: TextIO | None = None) -> None:
    """The summary printed after a session: what ran, how long, ok or why not, then the details."""
    out = Writer(stream)
    ok = bool(payload.get("ok"))
    steps = int(payload.get("steps") or 0)
    status = out.paint("ok", "ok") if ok else out.paint(f"FAILED (exit {payload.get('exitCode')})", "bad")
    out.line(f"reflex connect: {status}")
    mode = payload.get("mode", "?")
    loop = payload.get("loop") or {}
    rate = loop.get("rateHz")
    rate_text = f" at {rate:g} Hz" if isinstance(rate, (int, float)) else ""
    out.row("session", f"{payload.get('sessionId', '?')}")
    out.row("config", str(payload.get("config")))
    applied = int(payload.get("appliedSteps") or 0)
    applied_text = f"{plural(applied, 'step')} applied to the robot" if mode == "apply_actions" else \
        "dry run: nothing sent to the robot"
    out.row("ran", f"{plural(steps, 'step')} in {seconds(payload.get('durationS'))}, {mode}{rate_text}; "
                   f"{applied_text}")
    out.row("ended", stop_reason_text(str(payload.get("stopReason", "?"))), None if ok else "bad")
    for error in payload.get("errors") or []:
        out.row("error", str(error), "bad")
    for failure in payload.get("safeStopFailures") or []:
        out.row("SAFE STOP", f"FAILED: {failure}; check the robot", "bad")
    if payload.get("safeStops"):
        out.row("safe stop", f"{payload['safeStops']} (the robot was stopped safely)", "bad")
    _target(out, payload.get("target") or {}, payload)
    if steps:
        _loop(out, payload, steps)
    _cameras(out, payload.get("cameras") or {})
    _recording(out, payload.get("recording"))
    for name, view in (payload.get("view") or {}).items():
        text = f"{name}: {view.get('sent', 0)} steps sent to the viewer, {view.get('dropped', 0)} dropped"
        if view.get("failed"):
            text += f"; stopped: {view['failed']}"
        out.row("live view", text, "warn" if view.get("failed") or view.get("dropped") else None)


def _target(out: Writer, target: dict[str, Any], payload: dict[str, Any]) -> None:
    if not target:
        return
    parts = [str(target.get("kind", "?"))]
    for key in ("export", "url"):
        if target.get(key):
            parts.append(str(target[key]))
    providers = target.get("providers") or []
    if providers:
        parts.append("on " + words(p.removesuffix("ExecutionProvider") for p in providers))
    text = " ".join(parts)
    if target.get("chunkLength"):
        dt = target.get("actionDt")
        text += f"; chunks of {target['chunkLength']} actions" + (f", {dt * 1e3:g} ms apart" if dt else "")
    first = (payload.get("chunks") or {}).get("firstChunkMs")
    if first is not None:
        text += f"; first chunk in {ms(first)}"
    out.row("target", text)


def _loop(out: Writer, payload: dict[str, Any], steps: int) -> None:
    loop = payload.get("loop") or {}
    late = loop.get("latenessMs") or {}
    infer = (payload.get("stagesMs") or {}).get("infer") or {}
    text = []
    if late.get("count"):
        text.append(f"tick lateness p50 {ms(late.get('p50'))}, p99 {ms(late.get('p99'))}")
    text.append(f"{plural(int(loop.get('overruns') or 0), 'overrun')}")
    if infer.get("count"):
        text.append(f"inference p50 {ms(infer.get('p50'))}, p99 {ms(infer.get('p99'))}")
    if payload.get("timeToFirstActionS") is not None:
        text.append(f"first action after {seconds(payload['timeToFirstActionS'])}")
    out.row("timing", "; ".join(text))
    realtime = loop.get("realtime") or {}
    if realtime.get("requested"):
        if realtime.get("granted"):
            cpu = "" if realtime.get("cpu") is None else f", pinned to CPU {realtime['cpu']}"
            out.row("realtime", f"loop thread SCHED_FIFO priority {realtime.get('priority')}{cpu}")
        else:
            out.row("realtime", f"not granted: {realtime.get('reason')}", "warn")

    held = int(loop.get("heldSteps") or 0)
    guarded = max(0, steps - held)
    guard = payload.get("guard") or {}
    limit, delta = int(guard.get("clampLimitSteps") or 0), int(guard.get("clampDeltaSteps") or 0)
    if limit or delta:
        style = "warn"
        text_g = (f"per-step delta clamped {delta} of {guarded} guarded steps ({pct(delta, guarded)}); "
                  f"joint limits clamped {limit} ({pct(limit, guarded)})")
    else:
        style, text_g = None, f"no clamps in {plural(guarded, 'guarded step')}"
    out.row("guard", text_g, style)

    stale = int((payload.get("stale") or {}).get("staleSteps") or 0)
    chunks = payload.get("chunks") or {}
    starved = int(chunks.get("starvedSteps") or 0)
    data = (f"stale {stale} of {steps} steps ({pct(stale, steps)}), starved {starved} ({pct(starved, steps)}), "
            f"held {held} ({pct(held, steps)})")
    out.row("data", data, "warn" if stale or starved else None)
    if chunks.get("received") is not None:
        text_c = f"{plural(int(chunks['received']), 'chunk')} received"
        if chunks.get("skippedActions"):
            skipped = plural(int(chunks["skippedActions"]), "action")
            text_c += f", {skipped} skipped (their time passed during inference)"
        out.row("chunks", text_c)
    _seams(out, payload.get("seams") or {})


def _seams(out: Writer, seams: dict[str, Any]) -> None:
    """Chunk switches: how far the command jumped (after blending, before the guard)."""
    switches = int(seams.get("switches") or 0)
    if not switches:
        return
    jump, gap = seams.get("jump") or {}, seams.get("gap") or {}
    how = str(seams.get("blend") or "none")
    if seams.get("horizonActions"):
        how += f", horizon {seams['horizonActions']} actions"
    text = f"{switches} chunk switch{'' if switches == 1 else 'es'} ({how}): jump p50 {jump.get('p50', 0):.4g}, "
    worst = max((jump.get("perJoint") or {}).items(), key=lambda kv: kv[1].get("max", 0), default=None)
    text += f"max {jump.get('max', 0):.4g}" + (f" ({worst[0]})" if worst else "")
    text += f"; chunks disagreed by up to {gap.get('max', 0):.4g}"
    if seams.get("jerkP99") is not None:
        text += f"; jerk p99 {seams['jerkP99']:.4g}/s³"
    misses = int(seams.get("horizonMisses") or 0)
    if misses:
        text += f"; {misses} horizon miss{'' if misses == 1 else 'es'} (the next chunk came late)"
    out.row("seams", text, "warn" if misses else None)


def _cameras(out: Writer, cameras: dict[str, Any]) -> None:
    for name, cam in cameras.items():
        age = cam.get("ageMs") or {}
        text = f"{name}: {cam.get('fps', 0):g} fps ({plural(int(cam.get('newFrames') or 0), 'new frame')})"
        if age.get("count"):
            text += f", frame age p50 {ms(age.get('p50'))}, p99 {ms(age.get('p99'))}"
        stale = int(cam.get("staleSteps") or 0)
        if stale:
            text += f", stale on {plural(stale, 'step')}"
        out.row("camera", text, "warn" if stale else None)


def _recording(out: Writer, recording: dict[str, Any] | None) -> None:
    if not recording:
        out.row("recording", "off")
        return
    formats = recording.get("formats") or []
    dropped = {k: v for k, v in (recording.get("dropped") or {}).items() if v}
    written = recording.get("writtenSteps") or {}
    text = words(formats)
    if written:
        text += "; " + ", ".join(f"{name} {n} steps" for name, n in written.items())
    text += "; dropped " + (", ".join(f"{k} {v}" for k, v in dropped.items()) if dropped else "nothing")
    out.row("recording", text, "warn" if dropped or recording.get("failures") else None)
    out.line(" " * INDENT + str(recording.get("path")))


def render_check(report: dict[str, Any], stream: TextIO | None = None) -> None:
    """``--check``: one row per item (config, target, hardware, each camera, recording)."""
    out = Writer(stream)
    ok = bool(report.get("ok"))
    status = out.paint("ok", "ok") if ok else out.paint(f"FAILED (exit {report.get('exitCode')})", "bad")
    out.line(f"reflex connect --check: {status}  {report.get('config')}")
    items = report.get("items") or [
        {"item": key, "status": "ok", "detail": value} for key, value in (report.get("checks") or {}).items()
    ]
    for item in items:
        mark = {"ok": "ok", "fail": "FAIL", "skip": "skip", "warn": "warn"}.get(item.get("status"), "?")
        style = {"ok": "ok", "fail": "bad", "warn": "warn"}.get(item.get("status"), "dim")
        label = f"{out.paint(f'{mark:<4}', style)} {item.get('item')}"
        lines = textwrap.wrap(str(item.get("detail", "")), max(20, out.width - 8),
                              break_long_words=False, break_on_hyphens=False) or [""]
        out.line(f"  {label}")
        for chunk in lines:
            out.line(f"       {chunk}")
    for error in report.get("errors") or []:  # errors that belong to no row (older reports)
        if not any(error.endswith(str(i.get("detail"))) for i in items):
            out.line(f"  {out.paint('error', 'bad')} {error}")
