"""The action guard: the last thing between a policy and a motor. It fails closed.

* wrong width or any non-finite value -> :class:`GuardRejected` (the runner safe-stops);
* every joint clamped into its limits;
* every joint clamped to ``max_delta`` around the *measured* position, so the first command of a
  session (or after a chunk seam) is bridged from where the robot is, never a jump.
"""

from __future__ import annotations

import numpy as np

from reflex.ports import GuardEvent, JointLayout


class GuardRejected(RuntimeError):
    """The action cannot be made safe by clamping."""


REAL_KINDS = "iuf"  # signed, unsigned, floating: nothing else is a joint position


def real_array(value: object, what: str = "action") -> np.ndarray:
    """``value`` as float64, only if it holds real numbers. Complex (its imaginary part would be
    dropped), bool, object and string arrays are refused here, never coerced."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype.kind not in REAL_KINDS:
        raise GuardRejected(f"{what} has dtype {array.dtype} ({_kind_name(array.dtype)}); expected real numbers")
    return array.astype(np.float64, copy=False)


def _kind_name(dtype: np.dtype) -> str:
    names = {"b": "bool", "c": "complex", "O": "Python objects", "U": "text", "S": "bytes", "V": "raw"}
    return names.get(dtype.kind, dtype.kind)


class ActionGuard:
    def __init__(self, layout: JointLayout, max_delta: float | list[float]) -> None:
        self.layout = layout
        delta = np.broadcast_to(np.asarray(max_delta, dtype=float), (layout.dim,)).copy()
        if delta.shape != (layout.dim,) or np.any(delta <= 0) or not np.all(np.isfinite(delta)):
            raise ValueError(f"max_delta must be positive and have 1 or {layout.dim} entries")
        self.max_delta = delta
        self.clamp_counts = {"clamp_limit": 0, "clamp_delta": 0}

    def check(self, action: np.ndarray, measured: np.ndarray) -> tuple[np.ndarray, list[GuardEvent]]:
        """A safe command near ``action``, and what was changed. Raises GuardRejected."""
        dim = self.layout.dim
        action = real_array(action)
        if action.shape != (dim,):
            raise GuardRejected(f"action has shape {action.shape}, expected ({dim},)")
        if not np.all(np.isfinite(action)):
            bad = [self.layout.names[i] for i in np.flatnonzero(~np.isfinite(action))]
            raise GuardRejected(f"action is not finite at {', '.join(bad)}")
        measured = real_array(measured, "measured position")
        if measured.shape != (dim,) or not np.all(np.isfinite(measured)):
            raise GuardRejected("measured position is missing or not finite")
        events: list[GuardEvent] = []
        limited = np.clip(action, self.layout.lower, self.layout.upper)
        self._note(events, "clamp_limit", limited != action)
        low = measured - self.max_delta
        high = measured + self.max_delta
        bridged = np.clip(limited, low, high)
        safe = np.clip(bridged, self.layout.lower, self.layout.upper)
        # Measured pose further outside the limits than one step: no command satisfies both bounds.
        stranded = np.abs(safe - measured) > self.max_delta + 1e-12
        if stranded.any():
            names = ", ".join(self.layout.names[i] for i in np.flatnonzero(stranded))
            raise GuardRejected(f"measured position of {names} is outside its limits by more than max_delta")
        self._note(events, "clamp_delta", bridged != limited)
        return safe, events

    def _note(self, events: list[GuardEvent], kind: str, mask: np.ndarray) -> None:
        if mask.any():
            self.clamp_counts[kind] += 1
            joints = tuple(self.layout.names[i] for i in np.flatnonzero(mask))
            events.append(GuardEvent(kind=kind, joints=joints))
