"""One exchange on the wire: send a set of requests, collect one matching reply each.

In the ``pipelined`` strategy (default) all frames go out back to back and replies are matched
by their id as they come, so a cycle costs about one wire time per frame instead of one round
trip per motor; ``sequential`` (send one, wait for its reply, next) exists for comparison.

Every request has its own reply deadline and a bounded number of resends. Stray frames (unknown
ids) and late replies are counted and ignored: they never trigger a resend. A frame the bus
refuses to send (bus-off, full queue) is counted and remembered, never raised.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import can

from reflex.can.bus import BITRATE, BITS_PER_FRAME
from reflex.can.codec import reply_id
from reflex.can.motors import MotorType
from reflex.can.readings import Readings
from reflex.can.registers import RegisterCmd

Strategy = Literal["pipelined", "sequential"]


@dataclass(frozen=True)
class ChainMotor:
    """One motor on the bus; ``name`` is what errors say (e.g. ``left joint4``)."""

    name: str
    esc_id: int
    motor: MotorType
    mst_id: int | None = None

    @property
    def reply_id(self) -> int:
        return self.mst_id if self.mst_id is not None else reply_id(self.esc_id)

    @property
    def where(self) -> str:
        return f"{self.name} (motor 0x{self.esc_id:02X})"


@dataclass(frozen=True)
class ChainTiming:
    bitrate: int = BITRATE
    bits_per_frame: int = BITS_PER_FRAME
    reply_timeout_s: float = 0.002  # per motor, on top of the wire time of the frames in flight
    max_retries: int = 1  # resends per motor per cycle
    # one-shot operations (bring-up reads, enable, disable) are not time-critical: wait longer
    setup_timeout_s: float = 0.02
    setup_retries: int = 3
    reply_budget_s: float = 0.015  # a motor without a reply for longer than this is a fault
    stop_disable_s: float = 0.5  # keep sending FD this long to motors that did not confirm

    @property
    def frame_s(self) -> float:
        return self.bits_per_frame / self.bitrate


@dataclass
class ChainStats:
    cycles: int = 0
    frames_tx: int = 0
    frames_rx: int = 0
    send_errors: int = 0
    retries: int = 0
    missed: int = 0  # motor-cycles that ended without a reply
    late: int = 0  # replies that came after their cycle (or twice)
    stray: int = 0  # frames with an id that belongs to no motor
    cycle_time_max_s: float = 0.0
    cycle_times_s: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))  # recent cycles
    gap_max_s: float = 0.0  # longest time between two control cycles (motors enabled)
    started: float = field(default_factory=time.monotonic)
    fault_cycle: int | None = None
    stop_cycle: int | None = None

    def as_dict(self) -> dict[str, float | int | None]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            "cycles": self.cycles,
            "rate_hz": self.cycles / elapsed,
            "frames_tx": self.frames_tx,
            "frames_rx": self.frames_rx,
            "send_errors": self.send_errors,
            "retries": self.retries,
            "missed": self.missed,
            "late": self.late,
            "stray": self.stray,
            "cycle_time_max_ms": self.cycle_time_max_s * 1e3,
            "gap_max_ms": self.gap_max_s * 1e3,
            "fault_cycle": self.fault_cycle,
            "stop_cycle": self.stop_cycle,
        }


@dataclass
class Request:
    index: int
    arbitration_id: int
    data: bytes
    expect: tuple[RegisterCmd, int] | None = None  # register reply (cmd, rid); None = feedback
    want_status: int | None = None  # a feedback with another status may be a late reply: wait on


Replies = dict[int, tuple[bytes, float]]  # motor index -> (data, t_rx)


class Wire:
    """The transaction engine of one bus. Not thread-safe: the caller holds the bus lock."""

    def __init__(
        self, bus: can.BusABC, motors: Sequence[ChainMotor], timing: ChainTiming, strategy: Strategy
    ) -> None:
        self.bus = bus
        self.motors = list(motors)
        self.timing = timing
        self.strategy: Strategy = strategy
        self.stats = ChainStats()
        self.readings = Readings([m.motor for m in motors])
        self.last_register: dict[int, tuple[int, int]] = {}
        self._by_reply = {m.reply_id: i for i, m in enumerate(self.motors)}
        self.bus_error: str | None = None  # the last refused send, cleared by a good one
        self.last_tx_ok = time.monotonic()  # when a frame last left (bus-off: the watchdog counts from here)
        # per motor, monotonic: the last frame that left for it, the last reply it gave (what a stop
        # that cannot be confirmed says about its watchdog, see reflex.can.unconfirmed)
        self.last_sent: list[float | None] = [None] * len(self.motors)
        self.last_reply: list[float | None] = [None] * len(self.motors)

    def transact(self, reqs: list[Request], absorb: bool, setup: bool = False) -> Replies:
        """Send every request and collect one matching reply each."""
        self._drain()
        if self.strategy == "sequential":
            got: Replies = {}
            for req in reqs:
                got.update(self._exchange([req], setup))
        else:
            got = self._exchange(reqs, setup)
        if absorb:
            feedback = {r.index for r in reqs if r.expect is None}
            for i, (data, t_rx) in got.items():
                if i in feedback:
                    self.readings.absorb(i, data, t_rx)
                    self.last_register.pop(i, None)
        return got

    def send(self, arbitration_id: int, data: bytes, index: int | None = None) -> bool:
        """Put one frame on the bus (for motor ``index``, if one); False if the bus refused it
        (counted and remembered)."""
        try:
            self.bus.send(can.Message(arbitration_id=arbitration_id, data=data, is_extended_id=False))
        except can.CanError as exc:
            self.stats.send_errors += 1
            self.bus_error = f"{type(exc).__name__}: {exc}"
            return False
        self.stats.frames_tx += 1
        self.bus_error = None
        self.last_tx_ok = time.monotonic()
        if index is not None:
            self.last_sent[index] = self.last_tx_ok
        return True

    def recv_any(self, timeout: float) -> can.Message | None:
        return self.bus.recv(timeout=timeout)

    def _exchange(self, reqs: list[Request], setup: bool = False) -> Replies:
        t = self.timing
        timeout = t.setup_timeout_s if setup else t.reply_timeout_s
        retries = t.setup_retries if setup else t.max_retries
        got: Replies = {}
        pending: dict[int, Request] = {}
        deadline: dict[int, float] = {}
        attempts: dict[int, int] = {}
        in_flight = 2 * len(reqs) * t.frame_s
        for req in reqs:
            pending[req.index] = req
            attempts[req.index] = 0
            sent = self.send(req.arbitration_id, req.data, req.index)
            # a refused frame never reached the wire: nothing to wait for, retry it at once
            deadline[req.index] = time.monotonic() + (in_flight + timeout if sent else 0.0)
        while pending:
            wait = min(deadline[i] for i in pending) - time.monotonic()
            msg = self.bus.recv(timeout=max(0.0, wait))
            while msg is not None:  # take everything that arrived before judging deadlines:
                self._take(msg, pending, got)  # after a scheduling stall, replies wait queued
                msg = self.bus.recv(timeout=0.0) if pending else None
            now = time.monotonic()
            for i in [i for i, d in deadline.items() if d <= now and i in pending]:
                if attempts[i] < retries and (i not in got or pending[i].want_status is not None):
                    attempts[i] += 1
                    self.stats.retries += 1
                    sent = self.send(pending[i].arbitration_id, pending[i].data, i)
                    deadline[i] = time.monotonic() + (2 * t.frame_s + timeout if sent else 0.0)
                else:
                    del pending[i]
        return got

    def _take(self, msg: can.Message, pending: dict[int, Request], got: Replies) -> None:
        """Match one received frame to a pending request (or count it as stray / late)."""
        t_rx = time.monotonic()
        self.stats.frames_rx += 1
        index = self._by_reply.get(msg.arbitration_id)
        if index is None or msg.is_extended_id:
            self.stats.stray += 1
            return
        data = bytes(msg.data)
        if index not in pending or not self._matches(index, pending[index], data):
            self.stats.late += 1
            return
        want = pending[index].want_status
        got[index] = (data, t_rx)
        self.last_reply[index] = t_rx
        if want is None or data[0] >> 4 == want:
            del pending[index]
        # else: keep it provisionally; a reply with the wanted status may still come

    def _matches(self, index: int, req: Request, data: bytes) -> bool:
        if len(data) != 8:
            return False
        esc = self.motors[index].esc_id
        if req.expect is not None:
            cmd, rid = req.expect
            return data[0] | (data[1] << 8) == esc and data[2] == cmd and data[3] == rid
        # a feedback frame: refuse the echo of the last register request to this motor
        last = self.last_register.get(index)
        if last is not None and data[0] | (data[1] << 8) == esc and (data[2], data[3]) == last:
            return False
        return (data[0] & 0xF) == (esc & 0xF)

    def _drain(self) -> None:
        while (msg := self.bus.recv(timeout=0.0)) is not None:
            self.stats.frames_rx += 1
            if msg.arbitration_id in self._by_reply:
                self.stats.late += 1
            else:
                self.stats.stray += 1
