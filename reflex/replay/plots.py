"""``--plots DIR``: per-joint predicted-vs-recorded PNGs (joint limits and units drawn, long
episodes split into windows) and an HTML report linking them.

Needs matplotlib (``pip install 'reflex-runtime[plots]'``); imported only here, with the Agg
backend, so it works on machines without a display.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reflex.errors import ConfigError, ConfigIssue
from reflex.ports import JointLayout
from reflex.replay.report import ReplayReport, episode_json

if TYPE_CHECKING:
    from reflex.replay.runner import EpisodeReplay

COLUMNS = 4
DPI = 72
WINDOW_S = 30.0  # seconds per figure: a longer episode gets several
MAX_WINDOWS = 12  # beyond this many, windows grow instead
MAX_POINTS = 2000  # measured-state points per curve and figure


def write_plots(
    report: ReplayReport,
    out_dir: Path,
    window_s: float = WINDOW_S,
    on_progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the PNGs and ``report.html``; returns what was written (also put in the JSON).

    A long episode is split into windows of ``window_s`` seconds (at most ``MAX_WINDOWS``; beyond
    that the windows grow), one figure each, so every curve stays readable; the measured state is
    decimated to ``MAX_POINTS`` per curve and window. The error chart is drawn only when there is
    an error to show."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "--plots", [ConfigIssue("", "matplotlib is not installed: pip install 'reflex-runtime[plots]'")]
        ) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    plans = [(index, result, windows(result, window_s)) for index, result in enumerate(report.results)]
    total = sum(len(w) + 1 for _, _, w in plans)
    done = 0
    written: list[dict[str, Any]] = []
    for index, result, spans in plans:
        slug = _slug(index, result)
        layout = recorded_layout(result)
        joint_files = []
        for k, span in enumerate(spans):
            name = f"{slug}_joints.png" if len(spans) == 1 else f"{slug}_joints_{k + 1:02d}.png"
            _joint_figure(plt, result, out_dir / name, span, layout, (k + 1, len(spans)))
            joint_files.append(name)
            done += 1
            if on_progress is not None:
                on_progress("plotting", done, total)
        errors: str | None = None
        if _has_errors(result):
            errors = f"{slug}_errors.png"
            _error_figure(plt, result, out_dir / errors)
        done += 1
        if on_progress is not None:
            on_progress("plotting", done, total)
        written.append({"episode": result.episode.label, "joints": joint_files, "errors": errors,
                        "windows": [[round(a, 3), round(b, 3)] for a, b in spans],
                        "limits": _limits_json(layout)})
    page = out_dir / "report.html"
    page.write_text(_html(report, written), encoding="utf-8")
    pngs = [str(out_dir / f) for w in written for f in [*w["joints"], *([w["errors"]] if w["errors"] else [])]]
    return {"dir": str(out_dir), "html": str(page), "png": pngs, "episodes": written}


def windows(result: EpisodeReplay, window_s: float = WINDOW_S) -> list[tuple[float, float]]:
    """Time spans (session seconds) of the figures for one episode."""
    ep = result.episode
    if not ep.steps:
        return [(0.0, 0.0)]
    duration = ep.steps[-1].t_tick - ep.steps[0].t_tick
    x_rec, _ = _series(result, use_replayed=False)
    if x_rec.size and np.isfinite(x_rec).any():
        duration = max(duration, float(np.nanmax(x_rec)))
    if duration <= window_s:
        return [(0.0, max(duration, 1e-6))]
    count = min(MAX_WINDOWS, math.ceil(duration / window_s))
    width = duration / count
    return [(k * width, (k + 1) * width) for k in range(count)]


def recorded_layout(result: EpisodeReplay) -> JointLayout | None:
    """Joint limits and units of the recorded robot, from the hardware block the recording names."""
    block = (result.episode.meta.config_resolved or {}).get("hardware")
    if not isinstance(block, dict):
        return None
    try:
        from pydantic import TypeAdapter

        from reflex.config.session import HardwareBlock

        layout: JointLayout | None = TypeAdapter(HardwareBlock).validate_python(block).layout()
    except Exception:  # an old or plugin hardware block: plots go without limits
        return None
    if layout is None or tuple(layout.names) != tuple(result.episode.meta.joint_names):
        return None
    return layout


def _limits_json(layout: JointLayout | None) -> dict[str, list[Any]]:
    if layout is None:
        return {}
    units = layout.units or ("",) * layout.dim
    return {n: [float(lo), float(hi), u] for n, lo, hi, u in zip(layout.names, layout.lower, layout.upper, units,
                                                                  strict=True)}


def _has_errors(result: EpisodeReplay) -> bool:
    return any(e is not None and any(s.max_abs > 0 for s in e.per_joint)
               for e in (result.chunk_errors, result.step_errors))


def _slug(index: int, result: EpisodeReplay) -> str:
    name = result.episode.meta.session_id or result.episode.source.stem
    return f"ep{index:02d}_" + re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]


def _series(result: EpisodeReplay, use_replayed: bool) -> tuple[np.ndarray, np.ndarray]:
    """All compared chunks as one polyline per joint (NaN between chunks), x in session seconds."""
    ep = result.episode
    t0 = ep.steps[0].t_tick if ep.steps else 0.0
    comparable = [i for i in result.inputs if i.comparable]
    arrays = result.chunk_pred if use_replayed else result.chunk_rec
    dim = len(ep.meta.joint_names)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    for item, chunk in zip(comparable, arrays, strict=True):
        c = item.chunk
        xs.append(np.append(c.t_origin - t0 + np.arange(len(chunk)) * c.dt, np.nan))
        ys.append(np.vstack([chunk, np.full((1, dim), np.nan)]))
    if not xs:
        return np.zeros(0), np.zeros((0, dim))
    return np.concatenate(xs), np.concatenate(ys)


def _decimate(x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    stride = max(1, math.ceil(len(x) / limit))
    return x[::stride], y[::stride]


def _in_span(x: np.ndarray, y: np.ndarray, span: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isnan(x) | ((x >= span[0]) & (x <= span[1]))
    return x[keep], y[keep]


def _joint_figure(
    plt: Any, result: EpisodeReplay, path: Path, span: tuple[float, float], layout: JointLayout | None,
    part: tuple[int, int],
) -> None:
    ep = result.episode
    names = ep.meta.joint_names
    rows = max(1, math.ceil(len(names) / COLUMNS))
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(4 * COLUMNS, 2.4 * rows), squeeze=False, sharex=True)
    x_rec, y_rec = _in_span(*_series(result, use_replayed=False), span)
    x_rep, y_rep = _in_span(*_series(result, use_replayed=True), span)
    t0 = ep.steps[0].t_tick if ep.steps else 0.0
    t_state = np.array([s.t_state - t0 for s in ep.steps])
    state = np.stack([s.state for s in ep.steps]) if ep.steps else np.zeros((0, len(names)))
    t_state, state = _decimate(*_in_span(t_state, state, span))
    errors = result.chunk_errors
    # a dataset Reflex did not record: the blue line is what the demonstrator did next
    rec_label, rep_label = ("demonstrated actions", "policy chunks") if ep.foreign else (
        "recorded chunks", "replayed chunks")
    for j, name in enumerate(names):
        ax = axes[j // COLUMNS][j % COLUMNS]
        ax.plot(t_state, state[:, j], color="0.7", linewidth=1.0, label="measured")
        ax.plot(x_rec, y_rec[:, j], color="tab:blue", linewidth=1.4, label=rec_label)
        ax.plot(x_rep, y_rep[:, j], color="tab:orange", linewidth=1.2, linestyle="--", label=rep_label)
        title = name if errors is None else f"{name}  max|Δ| {errors.per_joint[j].max_abs:.3g}"
        if layout is not None:
            _draw_limits(ax, float(layout.lower[j]), float(layout.upper[j]))
            unit = layout.units[j] if layout.units else ""
            ax.set_ylabel(unit, fontsize=8)
            title += f"  [{layout.lower[j]:.3g}, {layout.upper[j]:.3g}]"
        ax.set_title(title, fontsize=9)
        ax.set_xlim(*span)
        ax.tick_params(labelsize=7)
    for k in range(len(names), rows * COLUMNS):
        axes[k // COLUMNS][k % COLUMNS].axis("off")
    axes[0][0].legend(fontsize=7, loc="best")
    where = "" if part[1] == 1 else f" — part {part[0]} of {part[1]}, {span[0]:.1f}–{span[1]:.1f} s"
    fig.suptitle(f"{ep.meta.session_id or ep.source.name}: {rec_label} vs {rep_label} (x: s){where}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _draw_limits(ax: Any, lower: float, upper: float) -> None:
    """The joint limits as red dashed lines; the view keeps the data readable (a limit far from
    the curves is named in the title, not allowed to squash them)."""
    bottom, top = ax.get_ylim()
    margin = 0.25 * max(top - bottom, 1e-6)
    for value in (lower, upper):
        if bottom - margin <= value <= top + margin:
            ax.axhline(value, color="tab:red", linewidth=0.9, linestyle=":", label="joint limit")
            bottom, top = min(bottom, value - 0.05 * margin), max(top, value + 0.05 * margin)
    ax.set_ylim(bottom, top)


def _error_figure(plt: Any, result: EpisodeReplay, path: Path) -> None:
    names = result.episode.meta.joint_names
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(names)), 3.6))
    x = np.arange(len(names))
    for offset, (label, errors, colour) in enumerate(
        (("chunks max|Δ|", result.chunk_errors, "tab:red"), ("executed max|Δ|", result.step_errors, "tab:purple"))
    ):
        values = [0.0] * len(names) if errors is None else [s.max_abs for s in errors.per_joint]
        ax.bar(x + (offset - 0.5) * 0.4, values, width=0.4, label=label, color=colour)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("max abs error")
    ax.legend(fontsize=8)
    ax.set_title(f"per-joint error — determinism: {result.determinism.status}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _header(report: ReplayReport) -> str:
    t = report.timing()
    rtf = f", {t['realTimeFactor']}x real time" if t.get("realTimeFactor") else ""
    return (f"{t['steps']} steps ({t['recordedS']:.1f} s recorded) replayed in {t['readS'] + t['replayS']:.2f} s: "
            f"reading {t['readS']:.2f} s, inference {t['replayS']:.2f} s, target start-up {t['connectS']:.2f} s; "
            f"{t['stepsPerS']:g} steps/s{rtf}; {'batched' if t['batched'] else 'one observation at a time'}")


def _chunks_text(info: dict[str, Any]) -> str:
    chunks = info.get("chunks") or {}
    if not isinstance(chunks, dict):
        return str(chunks)
    parts = []
    for key, value in chunks.items():
        words = re.sub(r"(?<!^)([A-Z])", r" \1", key).lower()
        parts.append(f"{words} {value:.4g}" if isinstance(value, float) else f"{words} {value}")
    return ", ".join(parts)


def _html(report: ReplayReport, written: list[dict[str, Any]]) -> str:
    esc = html.escape
    verdict = "PASS" if report.ok else "FAIL"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>reflex replay report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}"
        "td:first-child{text-align:left}.fail{color:#b00}.pass{color:#070}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>reflex replay — <span class='{verdict.lower()}'>{verdict}</span></h1>",
        f"<p>target <code>{esc(report.target)}</code> · {len(report.results)} episode(s)</p>",
        f"<p>{esc(_header(report))}</p>",
    ]
    if report.violations:
        parts.append("<ul class='fail'>" + "".join(f"<li>{esc(v.message)}</li>" for v in report.violations) + "</ul>")
    for result, files in zip(report.results, written, strict=True):
        info = episode_json(result)
        det = result.determinism
        parts.append(f"<h2>{esc(result.episode.label)}</h2>")
        parts.append(
            f"<p>format {esc(result.episode.format)}, {info['steps']} steps; chunks: {esc(_chunks_text(info))}"
            f"<br>determinism: <b>{esc(det.status)}</b> {esc('; '.join(det.reasons))}</p>"
        )
        if result.notes:
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in result.notes) + "</ul>")
        parts.append(_joint_table(result, files.get("limits") or {}))
        spans = files["windows"]
        for name, (a, b) in zip(files["joints"], spans, strict=True):
            caption = "" if len(spans) == 1 else f"<br><small>{a:.1f}–{b:.1f} s</small>"
            parts.append(f"<p><img src='{esc(name)}' alt='joints {a:.1f}-{b:.1f} s'>{caption}</p>")
        if files["errors"]:
            parts.append(f"<p><img src='{esc(files['errors'])}' alt='errors'></p>")
        else:
            parts.append("<p class='pass'>no difference on any joint: the replayed chunks equal the recorded ones "
                         "(so no error chart)</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _joint_table(result: EpisodeReplay, limits: dict[str, list[Any]]) -> str:
    rows = ["<table><tr><th>joint</th><th>unit</th><th>limits</th><th>chunk max|Δ|</th><th>chunk rmse</th>"
            "<th>chunk cosine</th><th>executed max|Δ|</th><th>executed rmse</th></tr>"]
    for j, name in enumerate(result.episode.meta.joint_names):
        c = result.chunk_errors.per_joint[j] if result.chunk_errors else None
        s = result.step_errors.per_joint[j] if result.step_errors else None
        lo_hi = limits.get(name)
        cells = [
            html.escape(str(lo_hi[2])) if lo_hi else "–", f"{lo_hi[0]:.4g} … {lo_hi[1]:.4g}" if lo_hi else "–",
            f"{c.max_abs:.4g}" if c else "–", f"{c.rmse:.4g}" if c else "–", f"{c.cosine:.6f}" if c else "–",
            f"{s.max_abs:.4g}" if s else "–", f"{s.rmse:.4g}" if s else "–",
        ]
        rows.append(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)
