"""Sensible ranges of safety, timing and limit fields, and the explicit expert override.

A config value can be *valid* (a positive finite number) and still switch a protection off:
``max_delta: 1e6`` lets any jump through, ``runner_timeout_s: 1e9`` disables a watchdog. Each such
field declares the range inside which it still protects, and why, with
``Field(..., json_schema_extra=sensible(low, high, why))``: the range lands in the JSON schema and
the config reference, and the loader refuses a value outside it (exit 2, YAML path and line).

Going beyond a range on purpose (a bench rig, a fast research arm) needs an explicit block::

    expert_override:
      reason: bench test of the watchdog with a slow runner
      allow: [hardware.config.runner_timeout_s]

Only the listed fields may leave their range; the block and the values it let through are
stamped into the session result (``expertOverride``) and into ``recording.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

KEY = "x-sensible-range"


def sensible(low: float | None, high: float | None, why: str) -> dict[str, Any]:
    """``json_schema_extra`` of a field with a sensible range (inclusive; None = open)."""
    return {KEY: {"low": low, "high": high, "why": why}}


@dataclass(frozen=True)
class BoundedValue:
    """One value of a bounded field found in a config."""

    path: tuple[str | int, ...]
    value: float
    low: float | None
    high: float | None
    why: str

    @property
    def inside(self) -> bool:
        return (self.low is None or self.value >= self.low) and (self.high is None or self.value <= self.high)

    @property
    def field(self) -> str:
        """The YAML path of the field (a per-joint list names the list, not the element)."""
        return dotted(tuple(p for p in self.path if not isinstance(p, int)) if self.per_element else self.path)

    @property
    def per_element(self) -> bool:
        return bool(self.path) and isinstance(self.path[-1], int)

    def describe_range(self) -> str:
        return describe(self.low, self.high)


def describe(low: float | None, high: float | None) -> str:
    if low is None:
        return f"at most {high:g}"
    if high is None:
        return f"at least {low:g}"
    return f"{low:g} to {high:g}"


def bounded_values(model: BaseModel, path: tuple[str | int, ...] = ()) -> list[BoundedValue]:
    """Every value of every bounded field in ``model`` and the models nested in it."""
    found: list[BoundedValue] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        here = (*path, name)
        extra = info.json_schema_extra
        spec = extra.get(KEY) if isinstance(extra, dict) else None
        if isinstance(spec, dict):
            found.extend(_numbers(value, here, spec))
        found.extend(_nested(value, here))
    return found


def _numbers(value: Any, path: tuple[str | int, ...], spec: dict[str, Any]) -> list[BoundedValue]:
    def one(v: Any, p: tuple[str | int, ...]) -> list[BoundedValue]:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return []
        return [BoundedValue(p, float(v), spec["low"], spec["high"], spec["why"])]

    if isinstance(value, (list, tuple)):
        return [b for i, v in enumerate(value) for b in one(v, (*path, i))]
    return one(value, path)


def _nested(value: Any, path: tuple[str | int, ...]) -> list[BoundedValue]:
    if isinstance(value, BaseModel):
        return bounded_values(value, path)
    if isinstance(value, dict):
        return [b for k, v in value.items() for b in _nested(v, (*path, str(k)))]
    if isinstance(value, (list, tuple)):
        return [b for i, v in enumerate(value) for b in _nested(v, (*path, i))]
    return []


def dotted(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def overridden(config: Any) -> dict[str, Any] | None:
    """The expert override as stamped into the result and the recording, or None."""
    block = getattr(config, "expert_override", None)
    if block is None:
        return None
    outside = [b for b in bounded_values(config) if not b.inside and b.field in block.allow]
    return {
        "reason": block.reason,
        "allow": list(block.allow),
        "outsideRange": [
            {"field": dotted(b.path), "value": b.value, "range": b.describe_range()} for b in outside
        ],
    }
