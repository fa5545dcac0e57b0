"""Motors a stop could not confirm disabled, and when their own watchdog takes over.

A motor that never answers the disable frames (it went silent, its replies are lost, or its bus
refuses every frame) may still be making torque, and Reflex cannot tell. What stops it then is
its own watchdog: the TIMEOUT register written and read back before enable. Every such path ends
in the one statement built here, naming the motors, the frame they last acknowledged and the
time their watchdog runs out after it. A motor that still heard frames without answering kept
following them (the stop's hold/damp, then the disable), so its watchdog runs out at the latest
one watchdog period after the last frame that left for it: the statement gives that bound too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any


@dataclass(frozen=True)
class Unconfirmed:
    """One motor that did not confirm the disable (times on the monotonic clock)."""

    where: str
    last_reply: float | None  # the last frame it acknowledged (None: never)
    last_sent: float | None  # the last frame handed to the bus for it (None: none ever was)
    wire_s: float = 0.0  # how long after being handed over such a frame may still be on the wire

    def expires(self, watchdog_s: float, now: float) -> float:
        """When its watchdog runs out if it heard nothing after the frame it last acknowledged."""
        base = self.last_reply if self.last_reply is not None else self.last_sent
        return (base if base is not None else now) + watchdog_s

    def expires_by(self, watchdog_s: float, now: float) -> float:
        """When its watchdog has run out at the latest (it heard every frame that left for it)."""
        known = [t for t in (self.last_sent, self.last_reply) if t is not None]
        return (max(known) if known else now) + self.wire_s + watchdog_s


def _utc(t_mono: float, now_mono: float, now_wall: float) -> datetime:
    return datetime.fromtimestamp(now_wall + (t_mono - now_mono), tz=timezone.utc)


def _clock(t: datetime) -> str:
    return t.strftime("%H:%M:%S.%f")[:-3]


def left_to_watchdog(
    arm: str, channel: str, motors: Sequence[Unconfirmed], watchdog_s: float, cause: str
) -> tuple[str, list[dict[str, Any]]]:
    """The statement for the result (one sentence for the arm) and one record per motor
    (``leftToWatchdog`` in the session result; times in UTC, ISO 8601)."""
    now, wall = time.monotonic(), time.time()
    ms = f"{watchdog_s * 1e3:g} ms"
    records = []
    for m in motors:
        records.append({
            "arm": arm,
            "channel": channel,
            "motor": m.where,
            "cause": cause,
            "watchdogMs": round(watchdog_s * 1e3, 3),
            "lastAcknowledged": None if m.last_reply is None else _utc(m.last_reply, now, wall).isoformat(),
            "expiresAt": _utc(m.expires(watchdog_s, now), now, wall).isoformat(),
            "expiresBy": _utc(m.expires_by(watchdog_s, now), now, wall).isoformat(),
        })
    one = len(motors) == 1
    expires = max(m.expires(watchdog_s, now) for m in motors)
    expires_by = max(m.expires_by(watchdog_s, now) for m in motors)
    when = "expired" if expires <= now else "expires"
    text = (
        f"{arm} ({channel}): {', '.join(m.where for m in motors)} did not confirm the disable ({cause}); "
        f"left to {'its' if one else 'their'} motor watchdog ({ms}), which {when} at "
        f"{_clock(_utc(expires, now, wall))} UTC, {ms} after the last frame {'it' if one else 'they'} "
        f"acknowledged (at the latest {_clock(_utc(expires_by, now, wall))} UTC, {ms} after the last "
        f"frame that left for {'it' if one else 'them'})"
    )
    return text, records
