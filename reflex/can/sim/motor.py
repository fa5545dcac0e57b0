"""One simulated Damiao motor in MIT mode: what it answers, when it makes torque, how it moves.

Behaviour (research/yam_damiao.md section 5):
* accepts 8-byte standard frames on its ESC_ID and register frames on 0x7FF carrying its id;
  answers every accepted frame exactly once on MST_ID (clear-error: configurable);
* power-on disabled (0x0); FC enables, FD disables; faults 0x8-0xE latch: FD leaves them as they
  are, FB clears them to disabled, then FC enables again;
* no torque while disabled or faulted; after TIMEOUT x 50 us without a frame an enabled motor
  switches to damping and reports 0xD;
* commands and feedback go through the exact 16/12-bit truncating codec, so the simulator sees
  precisely what a real motor would;
* tau = kp (p_des - p) + kd (v_des - v) + t_ff, clamped to +-TMAX and to the physical peak torque;
  the feedback torque is the torque actually applied;
* plant: inertia, viscous damping, Coulomb friction, optional gravity term and hard stops,
  integrated lazily (semi-implicit, sub-steps <= 1 ms) up to the time of each frame.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from reflex.can.codec import (
    MitCommand,
    Special,
    pack_feedback,
    parse_register_message,
    parse_special,
    reply_id,
    unpack_mit,
)
from reflex.can.faults import MotorStatus
from reflex.can.motors import MotorType
from reflex.can.registers import (
    CTRL_MODE_MIT,
    REGISTERS,
    RID_PMAX,
    RID_TIMEOUT,
    RID_TMAX,
    RID_VMAX,
    TIMEOUT_UNIT_S,
    YAM_TIMEOUT,
    RegisterCmd,
    decode_value,
    encode_value,
)

MAX_SUBSTEP_S = 1e-3
ZERO_COMMAND = MitCommand(0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Plant:
    """The joint a motor drives, in motor-side radians."""

    inertia: float = 0.01  # kg m^2
    damping: float = 0.02  # Nm s/rad, viscous
    coulomb: float = 0.05  # Nm
    gravity: float = 0.0  # Nm; adds -gravity * sin(q) (off by default: no model of the arm links)
    lower_stop: float = -math.inf  # rad, hard stop
    upper_stop: float = math.inf
    damping_mode_kd: float = 0.5  # Nm s/rad applied in the 0xD damping state


@dataclass
class SimMotorConfig:
    esc_id: int
    motor: MotorType
    plant: Plant = field(default_factory=Plant)
    mst_id: int | None = None  # default ESC_ID + 0x10
    initial_position: float = 0.0  # physical rad; reads as this until a set-zero
    timeout: int = YAM_TIMEOUT  # TIMEOUT register, 50 us units; 0 = watchdog off
    ambient_c: float = 30.0
    over_temperature_c: float = 80.0  # OT_Value
    reply_to_clear_error: bool = False  # not established for real motors: both must work


@dataclass
class MotorEvent:
    t: float
    what: str


class SimMotor:
    """Not thread-safe on its own: :class:`SimMotorBus` serialises every call."""

    def __init__(self, config: SimMotorConfig, t0: float = 0.0, seed: int = 0) -> None:
        self.config = config
        self.esc_id = config.esc_id
        self.mst_id = config.mst_id if config.mst_id is not None else reply_id(config.esc_id)
        self.mt = config.motor
        self.plant = config.plant
        self.status: int = MotorStatus.DISABLED
        self.q = config.initial_position
        self.qd = 0.0
        self.zero_offset = 0.0
        self.t = t0
        self.last_rx = t0
        self.command = ZERO_COMMAND
        self.applied_torque = 0.0
        rng = random.Random(seed * 131 + config.esc_id)
        self.temp_mos = config.ambient_c + rng.uniform(0.0, 5.0)
        self.temp_rotor = self.temp_mos - 1.0
        self.registers: dict[int, float | int] = {
            0: 15.0,
            1: 0.1,
            2: config.over_temperature_c,
            3: 0.98,
            7: self.mst_id,
            8: self.esc_id,
            RID_TIMEOUT: config.timeout,
            10: CTRL_MODE_MIT,
            14: 4106,
            RID_PMAX: self.mt.pmax,
            RID_VMAX: self.mt.vmax,
            RID_TMAX: self.mt.tmax,
            29: 32.0,
            35: 4,
        }
        self.silent = False  # unpowered: hears nothing, answers nothing
        self.drop_next_replies = 0
        # registers whose writes are echoed but not applied (a write-protected or faulty motor)
        self.ignore_writes: set[int] = set()
        # called with (motor, arbitration_id, data, t) before each accepted frame is handled: a
        # test makes a fault happen at a given point of the protocol (the enable frame, a push)
        self.on_frame: Callable[[SimMotor, int, bytes, float], None] | None = None
        self.events: list[MotorEvent] = []
        self.counts: dict[str, int] = {}
        self.stored = False

    # -- observation helpers (tests, reports) ---------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.status == MotorStatus.ENABLED

    def reading(self) -> float:
        """Position as the motor reports it: zero-offset applied, wrapped into [-PMAX, PMAX)."""
        p = self.q - self.zero_offset
        span = 2 * self.mt.pmax
        return (p + self.mt.pmax) % span - self.mt.pmax

    def snapshot(self) -> dict[str, object]:
        return {
            "esc_id": self.esc_id,
            "status": int(self.status),
            "enabled": self.enabled,
            "position": self.reading(),
            "velocity": self.qd,
            "torque": self.applied_torque,
            "temp_mos": round(self.temp_mos),
            "counts": dict(self.counts),
            "events": [(e.t, e.what) for e in self.events],
        }

    # -- fault injection --------------------------------------------------------------------------
    def inject_fault(self, code: int, t: float) -> None:
        """Latch a fault now (over-temperature also heats the motor past OT_Value)."""
        self.advance(t)
        if code in (MotorStatus.MOS_OVER_TEMPERATURE, MotorStatus.ROTOR_OVER_TEMPERATURE):
            self.temp_mos = self.temp_rotor = float(self.registers[2]) + 5.0
        self._latch(code, t)

    # -- protocol ---------------------------------------------------------------------------------
    def accepts(self, arbitration_id: int, data: bytes) -> bool:
        if len(data) != 8:
            return False
        if arbitration_id == self.esc_id:
            return True
        if arbitration_id == 0x7FF:
            return (data[0] | (data[1] << 8)) == self.esc_id
        return False

    def handle(self, arbitration_id: int, data: bytes, t: float) -> bytes | None:
        """Process one accepted frame at time ``t``; returns the reply payload (or None)."""
        if self.on_frame is not None:
            self.on_frame(self, arbitration_id, data, t)
        if self.silent:
            return None
        self.advance(t)
        self.last_rx = t
        reply = self._dispatch(arbitration_id, data, t)
        if reply is not None and self.drop_next_replies > 0:
            self.drop_next_replies -= 1
            self._count("dropped_replies")
            return None
        return reply

    def _dispatch(self, arbitration_id: int, data: bytes, t: float) -> bytes | None:
        if arbitration_id == 0x7FF:
            return self._register(data, t)
        special = parse_special(data)
        if special is None:
            self._count("mit")
            if self.enabled:
                self.command = unpack_mit(data, self.mt)
            return self.feedback()
        self._count(special.name.lower())
        if special is Special.ENABLE:
            if self.status == MotorStatus.DISABLED:
                self.status = MotorStatus.ENABLED
                self.command = ZERO_COMMAND  # no torque until the first MIT frame
                self._event(t, "enable")
        elif special is Special.DISABLE:
            if self.enabled:
                self.status = MotorStatus.DISABLED
                self._event(t, "disable")
        elif special is Special.SET_ZERO:
            self.zero_offset = self.q
            self._event(t, "set_zero")
        elif special is Special.CLEAR_ERROR:
            if self.status >= 0x8:
                self.status = MotorStatus.DISABLED
                self._event(t, "clear_error")
            if not self.config.reply_to_clear_error:
                return None
        return self.feedback()

    def _register(self, data: bytes, t: float) -> bytes | None:
        msg = parse_register_message(data)
        if msg is None:
            return None
        self._count(f"register_{msg.cmd.name.lower()}")
        head = bytes(data[:4])
        if msg.cmd is RegisterCmd.REFRESH:
            return self.feedback()
        if msg.cmd is RegisterCmd.READ:
            value = self.registers.get(msg.rid, 0)
            raw = encode_value(msg.rid, value) if msg.rid in REGISTERS else struct.pack("<I", 0)
            return head + raw
        if msg.cmd is RegisterCmd.WRITE:
            if msg.rid in REGISTERS and msg.rid not in self.ignore_writes:
                self.registers[msg.rid] = decode_value(msg.rid, msg.value)
                self._register_side_effects(msg.rid)
                self._event(t, f"write_register {msg.rid}={self.registers[msg.rid]}")
            return head + msg.value
        self.stored = True  # STORE
        return head + msg.value

    def _register_side_effects(self, rid: int) -> None:
        if rid in (RID_PMAX, RID_VMAX, RID_TMAX):
            self.mt = replace(
                self.mt,
                pmax=float(self.registers[RID_PMAX]),
                vmax=float(self.registers[RID_VMAX]),
                tmax=float(self.registers[RID_TMAX]),
            )

    def feedback(self) -> bytes:
        return pack_feedback(
            self.esc_id,
            int(self.status),
            self.reading(),
            self.qd,
            self.applied_torque,
            round(self.temp_mos),
            round(self.temp_rotor),
            self.mt,
        )

    # -- physics ----------------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Integrate up to ``t`` (never backwards), firing the watchdog at its exact deadline."""
        if t <= self.t:
            return
        timeout = int(self.registers[RID_TIMEOUT])
        if self.enabled and timeout > 0:
            deadline = self.last_rx + timeout * TIMEOUT_UNIT_S
            if deadline < t:
                self._integrate(max(deadline, self.t))
                self._latch(MotorStatus.LOSS_OF_COMMUNICATION, deadline)
        self._integrate(t)
        if self.temp_mos > float(self.registers[2]) and self.status < 0x8:
            self._latch(MotorStatus.MOS_OVER_TEMPERATURE, t)

    def _latch(self, code: int, t: float) -> None:
        if self.status != code:
            self.status = code
            self._event(t, f"fault 0x{code:X}")

    def _integrate(self, t_end: float) -> None:
        p = self.plant
        t_start = self.t
        while self.t < t_end:
            h = min(MAX_SUBSTEP_S, t_end - self.t)
            if self.status == MotorStatus.DISABLED and self.qd == 0.0 and p.gravity == 0.0:
                self.applied_torque = 0.0
                self.t = t_end  # at rest, no torque: nothing moves
                break
            self._substep(h)
            self.t += h
        self._heat(t_end - t_start)

    def _substep(self, h: float) -> None:
        p = self.plant
        inertia = p.inertia
        external = -p.gravity * math.sin(self.q) if p.gravity else 0.0
        limit = min(self.mt.tmax, self.mt.peak_torque)
        if self.enabled:
            c = self.command
            pos = self.q - self.zero_offset
            # implicit in the PD terms: stable for any gain/inertia at this step size
            k_eff = h * c.kp
            num = self.qd + h / inertia * (c.kp * (c.position - pos) + c.kd * c.velocity + c.torque + external)
            qd_new = num / (1.0 + h / inertia * (c.kd + p.damping + k_eff))
            tau = c.kp * (c.position - pos - h * qd_new) + c.kd * (c.velocity - qd_new) + c.torque
            if abs(tau) > limit:
                tau = math.copysign(limit, tau)
                qd_new = (self.qd + h / inertia * (tau + external)) / (1.0 + h * p.damping / inertia)
        else:
            kd = p.damping_mode_kd if self.status == MotorStatus.LOSS_OF_COMMUNICATION else 0.0
            qd_new = (self.qd + h / inertia * external) / (1.0 + h / inertia * (kd + p.damping))
            tau = -kd * qd_new
        # Coulomb friction as a velocity decrement: sticks at rest instead of chattering
        dv = h * p.coulomb / inertia
        qd_new = 0.0 if abs(qd_new) <= dv else qd_new - math.copysign(dv, qd_new)
        q_new = self.q + h * qd_new
        if q_new <= p.lower_stop:
            q_new, qd_new = p.lower_stop, max(qd_new, 0.0)
        elif q_new >= p.upper_stop:
            q_new, qd_new = p.upper_stop, min(qd_new, 0.0)
        self.q, self.qd, self.applied_torque = q_new, qd_new, tau

    def _heat(self, dt: float) -> None:
        # slow first-order heating with torque squared (2 min time constant)
        if dt <= 0:
            return
        target = self.config.ambient_c + 0.05 * self.applied_torque**2
        self.temp_mos += (target - self.temp_mos) * (1.0 - math.exp(-dt / 120.0))
        self.temp_rotor = self.temp_mos - 1.0

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    def _event(self, t: float, what: str) -> None:
        self.events.append(MotorEvent(t, what))
