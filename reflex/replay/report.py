"""The result of a replay: JSON for machines, a short table for people, the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reflex.errors import EXIT_OK
from reflex.replay.metrics import JointErrors
from reflex.replay.thresholds import Threshold, Violation

if TYPE_CHECKING:
    from reflex.replay.runner import EpisodeReplay

EXIT_THRESHOLD = 1  # a --fail-on threshold tripped (same code as a session that ended not ok)
WORST_CHUNKS = 5


@dataclass
class ReplayReport:
    target: str
    results: list[EpisodeReplay]
    thresholds: list[Threshold]
    read_s: float
    connect_s: float
    replay_s: float
    batched: bool
    overall_chunks: JointErrors | None = None
    overall_steps: JointErrors | None = None
    violations: list[Violation] = field(default_factory=list)
    plots: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.ok else EXIT_THRESHOLD

    @property
    def steps(self) -> int:
        return sum(len(r.episode.steps) for r in self.results)

    @property
    def recorded_s(self) -> float:
        return sum(r.episode.duration_s() for r in self.results)

    def timing(self) -> dict[str, Any]:
        work = self.read_s + self.replay_s  # target start-up is a one-off, reported apart
        steps_per_s = self.steps / work if work > 0 else 0.0
        return {
            "readS": round(self.read_s, 4),
            "connectS": round(self.connect_s, 4),
            "replayS": round(self.replay_s, 4),
            "steps": self.steps,
            "recordedS": round(self.recorded_s, 3),
            "stepsPerS": round(steps_per_s, 1),
            "realTimeFactor": round(self.recorded_s / work, 2) if work > 0 else None,
            "batched": self.batched,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "exitCode": self.exit_code,
            "target": self.target,
            "episodes": [episode_json(r) for r in self.results],
            "overall": {
                "chunks": self.overall_chunks.to_json() if self.overall_chunks else None,
                "executed": self.overall_steps.to_json() if self.overall_steps else None,
            },
            "thresholds": [str(t) for t in self.thresholds],
            "violations": [v.to_json() for v in self.violations],
            "timing": self.timing(),
            "plots": self.plots,
        }


def episode_json(r: EpisodeReplay) -> dict[str, Any]:
    ep = r.episode
    comparable = [i for i in r.inputs if i.comparable]
    worst = sorted(r.per_chunk_max_abs.items(), key=lambda kv: kv[1], reverse=True)[:WORST_CHUNKS]
    obs_steps = {i.chunk.chunk_id: i.chunk.obs_step for i in r.inputs}
    return {
        "recording": str(ep.source),
        "format": ep.format,
        "episode": ep.index,
        "sessionId": ep.meta.session_id,
        "complete": ep.complete,
        "steps": len(ep.steps),
        "durationS": round(ep.duration_s(), 3),
        "chunks": {
            "recorded": len(r.inputs),
            "replayed": len(comparable),
            "exact": sum(1 for i in comparable if i.exact),
            "horizonCompared": r.horizon,
        },
        "target": {
            "kind": r.info.kind,
            "modelHash": r.info.model_hash,
            "seed": r.info.seed,
            "recordedModelHash": ep.meta.model_hash,
            "recordedSeed": ep.meta.seed,
        },
        "determinism": r.determinism.to_json(),
        "demonstration": r.demonstration.to_json() if r.demonstration else None,
        "chunkErrors": r.chunk_errors.to_json() if r.chunk_errors else None,
        "worstChunks": [{"chunkId": cid, "obsStep": obs_steps[cid], "maxAbs": err} for cid, err in worst],
        "executed": {
            "compared": len(r.executed.steps),
            "guardRejected": len(r.executed.rejected_steps),
            "errors": r.step_errors.to_json() if r.step_errors else None,
        },
        "observeS": round(r.observe_s, 4),
        "inferS": round(r.infer_s, 4),
        "notes": list(r.notes),
    }


def render_text(report: ReplayReport) -> str:
    """The terminal summary: one block per episode, then the verdict."""
    lines: list[str] = []
    for r in report.results:
        ep, det = r.episode, r.determinism
        comparable = sum(1 for i in r.inputs if i.comparable)
        lines.append(f"{ep.label}  [{ep.format}]  {len(ep.steps)} steps, {comparable}/{len(r.inputs)} chunks replayed")
        if r.demonstration is not None:
            d = r.demonstration
            lines.append(f"  open-loop vs demonstration: {d.scored}/{d.frames} frames scored (every {d.every}), "
                         f"{r.horizon} actions each")
        else:
            worst = "" if det.max_abs is None else f" (max abs {det.max_abs:.3g})"
            lines.append(f"  determinism: {det.status}{worst}")
            lines += [f"    - {why}" for why in det.reasons]
            lines += [f"    ~ {a}" for a in det.approximate]
        if r.chunk_errors:
            o = r.chunk_errors.overall
            lines.append(f"  chunks:   max abs {o.max_abs:.4g}  rmse {o.rmse:.4g}  cosine {o.cosine:.6f}")
            lines += _worst_lines(r.chunk_errors)
        if r.step_errors:
            o = r.step_errors.overall
            lines.append(f"  executed: max abs {o.max_abs:.4g}  rmse {o.rmse:.4g}  cosine {o.cosine:.6f}"
                         f"  ({len(r.executed.steps)} steps)")
        lines += [f"  note: {n}" for n in r.notes]
        lines.append("")
    if len(report.results) > 1 and report.overall_chunks:
        o = report.overall_chunks.overall
        lines.append(f"overall chunks: max abs {o.max_abs:.4g}  rmse {o.rmse:.4g}  cosine {o.cosine:.6f}")
        lines += _worst_lines(report.overall_chunks)
    t = report.timing()
    lines.append(
        f"replayed {t['steps']} steps ({t['recordedS']} s recorded) in {report.read_s + report.replay_s:.3f} s: "
        f"{t['stepsPerS']} steps/s, {t['realTimeFactor']}x real time"
    )
    if report.plots:
        lines.append(f"plots: {report.plots.get('html')}")
    if report.violations:
        lines.append(f"FAIL ({len(report.violations)} threshold(s) tripped):")
        lines += [f"  - {v.message}" for v in report.violations]
    elif report.thresholds:
        lines.append(f"PASS ({', '.join(str(t) for t in report.thresholds)})")
    return "\n".join(lines)


def _worst_lines(errors: JointErrors) -> list[str]:
    worst = errors.worst()
    if not worst:
        return []
    parts = [f"{name} {s.max_abs:.4g}" for name, s in worst]
    return [f"  worst joints (max abs): {', '.join(parts)}"]
