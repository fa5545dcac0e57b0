"""Whether a replay should reproduce the recording bit for bit, and whether it did.

Reproduction is expected when the replayed model is the recorded one (same ``model.onnx``
SHA-256) and it runs with the recorded seed. When the recording does not carry what that needs
(no model hash, no seed for a seeded policy), replay says so instead of calling a difference a
mismatch; chunks whose observation could not be rebuilt exactly are reported apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reflex.ports import TargetInfo
from reflex.replay.episode import EpisodeMeta

TOLERANCE = 1e-5


@dataclass
class Determinism:
    status: str  # reproduced | mismatch | different_model | cannot_verify
    expected: bool
    max_abs: float | None
    reasons: list[str] = field(default_factory=list)
    approximate: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool | None:
        """True / False when reproduction was expected and could be judged, else None."""
        if self.status == "reproduced":
            return True
        return False if self.status == "mismatch" else None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "expected": self.expected,
            "reproduced": self.reproduced,
            "tolerance": TOLERANCE,
            "maxAbs": self.max_abs,
            "reasons": list(self.reasons),
            "approximate": list(self.approximate),
        }


def judge(
    meta: EpisodeMeta,
    info: TargetInfo,
    exact_errors: list[tuple[int, float]],
    approximate_errors: list[tuple[int, float, list[str]]],
) -> Determinism:
    """``exact_errors``: (chunk_id, max abs error) of chunks with an exactly rebuilt observation."""
    different: list[str] = []
    unknown: list[str] = []
    recorded_hash, replay_hash = meta.model_hash, info.model_hash
    if recorded_hash is None:
        unknown.append("the recording does not stamp the model hash")
    elif replay_hash is None:
        unknown.append(f"the target ({info.kind}) does not report a model hash")
    elif recorded_hash != replay_hash:
        different.append(f"different model: recorded sha256 {recorded_hash[:12]}…, replayed {replay_hash[:12]}…")
    recorded_seed, replay_seed = meta.seed, info.seed
    if recorded_seed is None and replay_seed is not None:
        unknown.append(f"the recording lacks the seed of the policy's noise (the target uses seed {replay_seed})")
    elif recorded_seed is not None and replay_seed is not None and recorded_seed != replay_seed:
        different.append(f"different seed: recorded {recorded_seed}, replayed {replay_seed}")
    elif recorded_seed is not None and replay_seed is None:
        unknown.append(f"the target ({info.kind}) does not report its seed (recorded {recorded_seed})")
    approx = [
        f"chunk {cid}: max abs {err:.3g} ({'; '.join(why)})"
        for cid, err, why in approximate_errors
        if err > TOLERANCE
    ]
    max_exact = max((err for _, err in exact_errors), default=None)
    if different:
        return Determinism("different_model", False, max_exact, different)
    if unknown:
        return Determinism("cannot_verify", False, max_exact, unknown)
    if max_exact is None:
        max_approx = max((err for _, err, _ in approximate_errors), default=None)
        if max_approx is not None and max_approx <= TOLERANCE:
            note = ["no observation is recorded bit-exact, but every chunk matched anyway"]
            return Determinism("reproduced", True, max_approx, note)
        whys = sorted({why for _, _, reasons in approximate_errors for why in reasons})
        reasons = ["no chunk has an exactly recorded observation", *whys] if whys else ["no chunk was replayed"]
        if max_approx is not None:
            reasons.append(f"the max abs difference {max_approx:.3g} cannot be told apart from that loss")
        return Determinism("cannot_verify", True, max_approx, reasons)
    if max_exact <= TOLERANCE:
        # Only here do inexact chunks matter: they differ, but their observation was not recorded.
        return Determinism("reproduced", True, max_exact, [], approx)
    worst = max(exact_errors, key=lambda e: e[1])
    reasons = [
        f"same model and seed, but chunk {worst[0]} differs by {worst[1]:.3g} (> {TOLERANCE:g}): the export's "
        "config (normalisation, inputs) or the runtime changed"
    ]
    if info.accepts_prefix:
        reasons.append("the export takes an RTC prefix, rebuilt from the recorded chunks and ticks: a "
                       "recording with dropped steps or chunks cannot rebuild it exactly")
    recorded_providers = tuple((meta.target or {}).get("providers") or ())
    if recorded_providers and tuple(info.providers) != recorded_providers:
        reasons.append(f"providers differ: recorded {list(recorded_providers)}, replayed {list(info.providers)}")
    return Determinism("mismatch", True, max_exact, reasons)
