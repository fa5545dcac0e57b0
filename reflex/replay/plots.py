"""``--plots DIR``: per-joint predicted-vs-recorded PNGs and an HTML report linking them.

Needs matplotlib (``pip install 'reflex-runtime[plots]'``); imported only here, with the Agg
backend, so it works on machines without a display.
"""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reflex.errors import ConfigError, ConfigIssue
from reflex.replay.report import ReplayReport, episode_json

if TYPE_CHECKING:
    from reflex.replay.runner import EpisodeReplay

COLUMNS = 4
DPI = 72


def write_plots(report: ReplayReport, out_dir: Path) -> dict[str, Any]:
    """Write the PNGs and ``report.html``; returns what was written (also put in the JSON)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "--plots", [ConfigIssue("", "matplotlib is not installed: pip install 'reflex-runtime[plots]'")]
        ) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[dict[str, str]] = []
    for index, result in enumerate(report.results):
        slug = _slug(index, result)
        joints = out_dir / f"{slug}_joints.png"
        errors = out_dir / f"{slug}_errors.png"
        _joint_figure(plt, result, joints)
        _error_figure(plt, result, errors)
        written.append({"episode": result.episode.label, "joints": joints.name, "errors": errors.name})
    page = out_dir / "report.html"
    page.write_text(_html(report, written), encoding="utf-8")
    pngs = [str(out_dir / w[key]) for w in written for key in ("joints", "errors")]
    return {"dir": str(out_dir), "html": str(page), "png": pngs}


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


def _joint_figure(plt: Any, result: EpisodeReplay, path: Path) -> None:
    ep = result.episode
    names = ep.meta.joint_names
    rows = max(1, math.ceil(len(names) / COLUMNS))
    fig, axes = plt.subplots(rows, COLUMNS, figsize=(4 * COLUMNS, 2.4 * rows), squeeze=False, sharex=True)
    x_rec, y_rec = _series(result, use_replayed=False)
    x_rep, y_rep = _series(result, use_replayed=True)
    t0 = ep.steps[0].t_tick if ep.steps else 0.0
    t_state = np.array([s.t_state - t0 for s in ep.steps])
    state = np.stack([s.state for s in ep.steps]) if ep.steps else np.zeros((0, len(names)))
    errors = result.chunk_errors
    for j, name in enumerate(names):
        ax = axes[j // COLUMNS][j % COLUMNS]
        ax.plot(t_state, state[:, j], color="0.7", linewidth=1.0, label="measured")
        ax.plot(x_rec, y_rec[:, j], color="tab:blue", linewidth=1.4, label="recorded chunks")
        ax.plot(x_rep, y_rep[:, j], color="tab:orange", linewidth=1.2, linestyle="--", label="replayed chunks")
        title = name if errors is None else f"{name}  max|Δ| {errors.per_joint[j].max_abs:.3g}"
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=7)
    for k in range(len(names), rows * COLUMNS):
        axes[k // COLUMNS][k % COLUMNS].axis("off")
    axes[0][0].legend(fontsize=7, loc="best")
    fig.suptitle(f"{ep.meta.session_id or ep.source.name}: recorded vs replayed chunks (x: s)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


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


def _html(report: ReplayReport, written: list[dict[str, str]]) -> str:
    esc = html.escape
    verdict = "PASS" if report.ok else "FAIL"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>reflex replay report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#eee}"
        "td:first-child{text-align:left}.fail{color:#b00}.pass{color:#070}img{max-width:100%}</style>",
        "</head><body>",
        f"<h1>reflex replay — <span class='{verdict.lower()}'>{verdict}</span></h1>",
        f"<p>target: <code>{esc(report.target)}</code>; {report.steps} steps replayed; "
        f"{esc(json.dumps(report.timing()))}</p>",
    ]
    if report.violations:
        parts.append("<ul class='fail'>" + "".join(f"<li>{esc(v.message)}</li>" for v in report.violations) + "</ul>")
    for result, files in zip(report.results, written, strict=True):
        info = episode_json(result)
        det = result.determinism
        parts.append(f"<h2>{esc(result.episode.label)}</h2>")
        parts.append(
            f"<p>format {esc(result.episode.format)}, {info['steps']} steps, chunks {esc(json.dumps(info['chunks']))}"
            f"<br>determinism: <b>{esc(det.status)}</b> {esc('; '.join(det.reasons))}</p>"
        )
        if result.notes:
            parts.append("<ul>" + "".join(f"<li>{esc(n)}</li>" for n in result.notes) + "</ul>")
        parts.append(_joint_table(result))
        parts.append(f"<p><img src='{esc(files['joints'])}' alt='joints'></p>")
        parts.append(f"<p><img src='{esc(files['errors'])}' alt='errors'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _joint_table(result: EpisodeReplay) -> str:
    rows = ["<table><tr><th>joint</th><th>chunk max|Δ|</th><th>chunk rmse</th><th>chunk cosine</th>"
            "<th>executed max|Δ|</th><th>executed rmse</th></tr>"]
    for j, name in enumerate(result.episode.meta.joint_names):
        c = result.chunk_errors.per_joint[j] if result.chunk_errors else None
        s = result.step_errors.per_joint[j] if result.step_errors else None
        cells = [
            f"{c.max_abs:.4g}" if c else "–", f"{c.rmse:.4g}" if c else "–", f"{c.cosine:.6f}" if c else "–",
            f"{s.max_abs:.4g}" if s else "–", f"{s.rmse:.4g}" if s else "–",
        ]
        rows.append(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)
