"""Find the Damiao motors on a bus, read-only: refresh polls and register reads, nothing else.

Each motor's MIT ranges are read from its own registers (21-23) and used to decode its state,
so a scan is right even for a motor type the table does not know.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import can

from reflex.can.chain import ChainMotor, ChainTiming, MotorChain
from reflex.can.codec import REPLY_OFFSET, refresh_request
from reflex.can.faults import MotorError, status_text
from reflex.can.motors import BUILTIN_MOTORS, MotorType
from reflex.can.registers import REGISTER_SERVICE_ID as SERVICE_ID
from reflex.can.registers import (
    RID_CTRL_MODE,
    RID_MST_ID,
    RID_PMAX,
    RID_TIMEOUT,
    RID_TMAX,
    RID_VMAX,
    TIMEOUT_UNIT_S,
)


@dataclass
class FoundMotor:
    esc_id: int
    mst_id: int
    motor_type: str
    status: str
    position: float
    velocity: float
    torque: float
    t_mos: int
    t_rotor: int
    timeout_ms: float | None = None
    ctrl_mode: int | None = None
    ranges: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def probe(bus: can.BusABC, ids: Sequence[int], timeout_s: float = 0.02) -> dict[int, int]:
    """Send a refresh to every id at once; returns esc id -> reply id of those that answered."""
    while bus.recv(timeout=0.0) is not None:
        pass
    for esc in ids:
        bus.send(can.Message(arbitration_id=SERVICE_ID, data=refresh_request(esc), is_extended_id=False))
    found: dict[int, int] = {}
    wanted = set(ids)
    deadline = time.monotonic() + timeout_s
    while len(found) < len(wanted):
        # replies that arrived are taken even past the deadline: after a scheduling stall they
        # wait queued; only an empty bus at the deadline ends the probe
        msg = bus.recv(timeout=max(0.0, deadline - time.monotonic()))
        if msg is None:
            break
        if len(msg.data) != 8 or msg.arbitration_id == SERVICE_ID:
            continue
        esc = msg.arbitration_id - REPLY_OFFSET
        if esc in wanted:
            found[esc] = msg.arbitration_id
            continue
        # a non-standard MST_ID: the low nibble of D0 still carries the id
        candidates = [e for e in wanted if e & 0xF == msg.data[0] & 0xF and e not in found]
        if len(candidates) == 1:
            found[candidates[0]] = msg.arbitration_id
    return dict(sorted(found.items()))


def identify(ranges: tuple[float, float, float]) -> MotorType:
    for mt in BUILTIN_MOTORS.values():
        if all(abs(a - b) < 1e-3 for a, b in zip(ranges, (mt.pmax, mt.vmax, mt.tmax), strict=True)):
            return mt
    return MotorType("unknown", ranges[0], ranges[1], ranges[2], ranges[2])


def scan(bus: can.BusABC, ids: Sequence[int], timeout_s: float = 0.02) -> list[FoundMotor]:
    """Every motor among ``ids`` that answers, with its registers and current state."""
    found = probe(bus, ids, timeout_s)
    timing = ChainTiming(reply_timeout_s=timeout_s, max_retries=2)
    out = []
    for esc, mst in found.items():
        chain = MotorChain(
            bus, [ChainMotor(f"motor {esc}", esc, BUILTIN_MOTORS["DM4310"], mst)], rate_hz=0, timing=timing
        )
        problems: list[str] = []
        try:
            ranges = tuple(float(chain.read_register(0, rid)) for rid in (RID_PMAX, RID_VMAX, RID_TMAX))
            mt = identify(ranges)  # type: ignore[arg-type]
            chain = MotorChain(bus, [ChainMotor(f"motor {esc}", esc, mt, mst)], rate_hz=0, timing=timing)
            fb = chain.refresh()[0]
            timeout = int(chain.read_register(0, RID_TIMEOUT))
            mode = int(chain.read_register(0, RID_CTRL_MODE))
            mst_reg = int(chain.read_register(0, RID_MST_ID))
        except MotorError as exc:
            out.append(
                FoundMotor(esc, mst, "?", "?", float("nan"), float("nan"), float("nan"), 0, 0, problems=[str(exc)])
            )
            continue
        if timeout == 0:
            problems.append("watchdog off (TIMEOUT=0): a hung host leaves this motor holding its last command")
        if mode != 1:
            problems.append(f"control mode {mode}, not MIT (1)")
        if mst_reg != mst:
            problems.append(f"MST_ID register says 0x{mst_reg:X} but replies come on 0x{mst:X}")
        out.append(
            FoundMotor(
                esc_id=esc,
                mst_id=mst,
                motor_type=mt.name,
                status=status_text(fb.status),
                position=fb.position,
                velocity=fb.velocity,
                torque=fb.torque,
                t_mos=fb.t_mos,
                t_rotor=fb.t_rotor,
                timeout_ms=timeout * TIMEOUT_UNIT_S * 1e3,
                ctrl_mode=mode,
                ranges={"pmax": mt.pmax, "vmax": mt.vmax, "tmax": mt.tmax},
                problems=problems,
            )
        )
    return out
