"""``--fail-on``: thresholds that turn a replay into a CI check (exit code 1 when one trips).

Syntax: ``METRIC=LIMIT`` (repeat the flag or separate with commas), or ``reproduce``.

* ``max_abs``, ``mse``, ``rmse``: chunk errors; trip when above the limit;
* ``cosine``: chunk cosine similarity; trips when *below* the limit;
* ``step_max_abs``, ``step_mse``, ``step_rmse``, ``step_cosine``: the same on executed actions;
* ``reproduce``: trips when an episode that should reproduce (same model hash and seed) does not,
  or when the recording lacks what reproduction needs.

Every threshold applies to each episode and to all episodes pooled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from reflex.errors import ConfigError, ConfigIssue

METRICS: dict[str, tuple[str, str, bool]] = {  # name -> (which errors, stat, higher is worse)
    "max_abs": ("chunks", "max_abs", True),
    "mse": ("chunks", "mse", True),
    "rmse": ("chunks", "rmse", True),
    "cosine": ("chunks", "cosine", False),
    "step_max_abs": ("steps", "max_abs", True),
    "step_mse": ("steps", "mse", True),
    "step_rmse": ("steps", "rmse", True),
    "step_cosine": ("steps", "cosine", False),
}
REPRODUCE = "reproduce"


@dataclass(frozen=True)
class Threshold:
    metric: str
    limit: float | None  # None for ``reproduce``

    def __str__(self) -> str:
        return self.metric if self.limit is None else f"{self.metric}={self.limit:g}"


@dataclass
class Violation:
    threshold: Threshold
    scope: str  # an episode label, or "overall"
    value: float | str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"threshold": str(self.threshold), "scope": self.scope, "value": self.value, "message": self.message}


def parse_fail_on(values: list[str]) -> list[Threshold]:
    out: list[Threshold] = []
    issues: list[ConfigIssue] = []
    for raw in values:
        for item in (p.strip() for p in raw.split(",")):
            if not item:
                continue
            if item == REPRODUCE:
                out.append(Threshold(REPRODUCE, None))
                continue
            name, sep, limit = item.partition("=")
            name = name.strip()
            if not sep or name not in METRICS:
                issues.append(ConfigIssue("--fail-on", f"'{item}': expected METRIC=LIMIT with METRIC one of "
                                          f"{sorted(METRICS)}, or '{REPRODUCE}'"))
                continue
            try:
                value = float(limit)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value < 0:
                issues.append(ConfigIssue("--fail-on", f"'{item}': the limit must be a number >= 0"))
                continue
            out.append(Threshold(name, value))
    if issues:
        raise ConfigError("--fail-on", issues)
    return out


def check(threshold: Threshold, scope: str, stats: dict[str, Any] | None) -> Violation | None:
    """``stats``: {"chunks": ErrorStats|None, "steps": ErrorStats|None, "determinism": Determinism|None}."""
    stats = stats or {}
    if threshold.limit is None:
        det = stats.get("determinism")
        if det is None or det.status == "reproduced":
            return None
        why = "; ".join(det.reasons) or det.status
        return Violation(threshold, scope, det.status, f"{scope}: not reproduced ({det.status}): {why}")
    which, attr, higher_worse = METRICS[threshold.metric]
    errors = stats.get(which)
    if errors is None or errors.count == 0:
        return None
    value = float(getattr(errors, attr))
    tripped = value > threshold.limit if higher_worse else value < threshold.limit
    if not tripped:
        return None
    relation = ">" if higher_worse else "<"
    return Violation(threshold, scope, value, f"{scope}: {threshold.metric} {value:.6g} {relation} {threshold.limit:g}")
