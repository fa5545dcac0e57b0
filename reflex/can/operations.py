"""One-shot operations on a bus (bring-up reads, register writes, enable, disable, clear
error): each sends its frames, waits with the longer set-up timeouts, and raises naming the
motor when one does not answer as it must. Not thread-safe: :class:`reflex.can.chain.MotorChain`
runs them on the bus's owner (:mod:`reflex.can.calls`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from reflex.can.codec import (
    Feedback,
    Special,
    decode_feedback,
    parse_register_message,
    refresh_request,
    register_request,
    special_frame,
)
from reflex.can.faults import MotorError, MotorFault, MotorSilent, MotorStatus, is_fault, status_text
from reflex.can.registers import REGISTER_SERVICE_ID, RegisterCmd, decode_value, encode_value
from reflex.can.unconfirmed import Unconfirmed
from reflex.can.wire import Replies, Request, Wire

MIN_DISABLE_ROUNDS = 3  # FD rounds (each with its resends) before a motor counts as unconfirmed


@dataclass(frozen=True)
class DisableOutcome:
    still_enabled: list[str]  # answered "enabled" to FD: a failed stop
    unconfirmed: list[Unconfirmed]  # never answered: cannot confirm (left to its own watchdog)


class Operations:
    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.motors = wire.motors
        self.timing = wire.timing
        self.readings = wire.readings

    def refresh(self) -> list[Feedback]:
        """Read every motor once without changing anything; raises naming a silent motor."""
        reqs = [Request(i, REGISTER_SERVICE_ID, refresh_request(m.esc_id)) for i, m in enumerate(self.motors)]
        got = self.wire.transact(reqs, absorb=True, setup=True)
        self._raise_missing(got, "no reply to a refresh (0x7FF, CMD 0xCC)")
        return [decode_feedback(got[i][0], m.motor) for i, m in enumerate(self.motors)]

    def register(self, index: int, cmd: RegisterCmd, rid: int, value: bytes = b"\0\0\0\0") -> float | int:
        m = self.motors[index]
        req = Request(index, REGISTER_SERVICE_ID, register_request(m.esc_id, cmd, rid, value), (cmd, rid))
        self.wire.last_register[index] = (int(cmd), rid)
        got = self.wire.transact([req], absorb=False, setup=True)
        if index not in got:
            raise MotorSilent(m.where, f"no reply to register {cmd.name.lower()} of register {rid}")
        parsed = parse_register_message(got[index][0])
        assert parsed is not None
        return decode_value(rid, parsed.value)

    def write_register(self, index: int, rid: int, value: float | int) -> float | int:
        echoed = self.register(index, RegisterCmd.WRITE, rid, encode_value(rid, value))
        if echoed != decode_value(rid, encode_value(rid, value)):
            raise MotorError(self.motors[index].where, f"register {rid} write echoed {echoed}, sent {value}")
        return echoed

    def enable_all(self) -> list[Feedback]:
        """FC to every motor; each must answer 'enabled'."""
        label = "enable (FC)"
        reqs = [
            Request(i, m.esc_id, special_frame(Special.ENABLE), want_status=MotorStatus.ENABLED)
            for i, m in enumerate(self.motors)
        ]
        got = self.wire.transact(reqs, absorb=True, setup=True)
        self._raise_missing(got, f"no reply to {label}")
        out = [decode_feedback(got[i][0], m.motor) for i, m in enumerate(self.motors)]
        for m, fb in zip(self.motors, out, strict=True):
            if fb.status != MotorStatus.ENABLED:
                if is_fault(fb.status):
                    raise MotorFault(m.where, fb.status)
                raise MotorError(m.where, f"{label} answered {status_text(fb.status)}")
        return out

    def disable_confirmed(self) -> DisableOutcome:
        """FD until every motor answered 'not enabled', or ``stop_disable_s`` ran out (and at
        least ``MIN_DISABLE_ROUNDS`` rounds went out)."""
        todo = list(range(len(self.motors)))
        answered: set[int] = set()
        deadline = time.monotonic() + self.timing.stop_disable_s
        rounds = 0
        while todo:
            reqs = [Request(i, self.motors[i].esc_id, special_frame(Special.DISABLE)) for i in todo]
            got = self.wire.transact(reqs, absorb=True, setup=True)
            answered.update(got)
            todo = [i for i in todo if i not in got or self.readings[i].status == MotorStatus.ENABLED]
            rounds += 1
            # a few rounds whatever the clock says: a host stall must not use up the time budget
            if rounds >= MIN_DISABLE_ROUNDS and time.monotonic() > deadline:
                break
        in_flight = 2 * len(self.motors) * self.timing.frame_s  # a frame handed over may wait this long
        return DisableOutcome(
            [self.motors[i].where for i in todo if i in answered],
            [
                Unconfirmed(self.motors[i].where, self.wire.last_reply[i], self.wire.last_sent[i], in_flight)
                for i in todo
                if i not in answered
            ],
        )

    def clear_errors(self, indices: Sequence[int]) -> None:
        """FB to the given motors. Whether a motor answers FB is not established: any reply is
        read and dropped, none is waited for beyond one reply timeout."""
        for i in indices:
            self.wire.send(self.motors[i].esc_id, special_frame(Special.CLEAR_ERROR), i)
        t = self.timing
        deadline = time.monotonic() + t.setup_timeout_s + len(indices) * 2 * t.frame_s
        while time.monotonic() < deadline:
            if self.wire.recv_any(max(0.0, deadline - time.monotonic())) is None:
                break

    def _raise_missing(self, got: Replies, message: str) -> None:
        for i, m in enumerate(self.motors):
            if i not in got:
                raise MotorSilent(m.where, f"{message} after {1 + self.timing.setup_retries} tries")
