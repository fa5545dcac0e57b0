"""Per-joint error metrics between replayed and recorded actions.

Arrays are ``(..., dim)``: every leading axis (chunks, horizon, steps) is pooled, the last axis
is the joint. Cosine similarity treats a joint's whole sequence as one vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WORST_JOINTS = 3


@dataclass
class ErrorStats:
    count: int  # compared scalar values
    mse: float
    rmse: float
    max_abs: float
    cosine: float

    def to_json(self) -> dict[str, float | int]:
        return {
            "count": self.count,
            "mse": _round(self.mse),
            "rmse": _round(self.rmse),
            "maxAbs": _round(self.max_abs),
            "cosine": _round(self.cosine, 9),
        }


@dataclass
class JointErrors:
    names: tuple[str, ...]
    overall: ErrorStats
    per_joint: list[ErrorStats]

    def worst(self, n: int = WORST_JOINTS) -> list[tuple[str, ErrorStats]]:
        """Joints with the largest max abs error (ties broken by MSE), worst first; zero errors skipped."""
        order = sorted(range(len(self.names)), key=lambda i: (self.per_joint[i].max_abs, self.per_joint[i].mse))
        picked = [(self.names[i], self.per_joint[i]) for i in reversed(order)]
        return [(name, s) for name, s in picked if s.max_abs > 0][:n]

    def to_json(self) -> dict[str, object]:
        return {
            "overall": self.overall.to_json(),
            "perJoint": {name: s.to_json() for name, s in zip(self.names, self.per_joint, strict=True)},
            "worstJoints": [{"joint": name, **s.to_json()} for name, s in self.worst()],
        }


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    # element-wise sums, not BLAS dot/norm: on a busy machine BLAS threads make these 100x slower
    na, nb = float(np.sqrt(np.sum(a * a))), float(np.sqrt(np.sum(b * b)))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.clip(np.sum(a * b) / (na * nb), -1.0, 1.0))


def stats(predicted: np.ndarray, recorded: np.ndarray) -> ErrorStats:
    diff = predicted - recorded
    if diff.size == 0:
        return ErrorStats(0, 0.0, 0.0, 0.0, 1.0)
    mse = float(np.mean(diff**2))
    max_abs = float(np.max(np.abs(diff)))
    return ErrorStats(int(diff.size), mse, float(np.sqrt(mse)), max_abs, cosine(predicted, recorded))


def joint_errors(predicted: np.ndarray, recorded: np.ndarray, names: tuple[str, ...]) -> JointErrors:
    if predicted.shape != recorded.shape:
        raise ValueError(f"shapes differ: replayed {predicted.shape}, recorded {recorded.shape}")
    dim = predicted.shape[-1] if predicted.ndim else 0
    if len(names) != dim:
        names = tuple(f"joint{i}" for i in range(dim))
    p = predicted.reshape(-1, dim)
    r = recorded.reshape(-1, dim)
    # one contiguous row per joint: reductions over strided columns are many times slower
    pj, rj = np.ascontiguousarray(p.T), np.ascontiguousarray(r.T)
    return JointErrors(names, stats(p, r), [stats(pj[j], rj[j]) for j in range(dim)])


def _round(value: float, digits: int = 12) -> float:
    return float(f"{value:.{digits}g}")
