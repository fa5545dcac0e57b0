"""The simulated Damiao motor (research/yam_damiao.md section 5), checked frame by frame.

Most tests drive :class:`SimMotor` with explicit times, so the watchdog and the plant are
checked exactly; the bus tests use the real python-can virtual interface.
"""

from __future__ import annotations

import math
import time

import can
import pytest

from reflex.can.capture import BusCapture, classify
from reflex.can.codec import (
    MitCommand,
    Special,
    decode_feedback,
    pack_mit,
    refresh_request,
    register_request,
    special_frame,
)
from reflex.can.faults import MotorStatus
from reflex.can.motors import motor_type
from reflex.can.registers import RegisterCmd, decode_value, encode_value
from reflex.can.sim.bus import SimMotorBus, StrayFrame, WireTiming
from reflex.can.sim.motor import Plant, SimMotor, SimMotorConfig
from reflex.can.sim.registry import running

DM4310 = motor_type("DM4310")
DM4340 = motor_type("DM4340")
ENABLE, DISABLE = special_frame(Special.ENABLE), special_frame(Special.DISABLE)
CLEAR, ZERO = special_frame(Special.CLEAR_ERROR), special_frame(Special.SET_ZERO)


def motor(esc_id: int = 4, mt=DM4310, plant: Plant | None = None, **kw: object) -> SimMotor:  # type: ignore[no-untyped-def]
    return SimMotor(SimMotorConfig(esc_id, mt, plant or Plant(), **kw), t0=0.0)  # type: ignore[arg-type]


def status_of(reply: bytes | None) -> int:
    assert reply is not None
    return reply[0] >> 4


def mit(p: float, v: float, kp: float, kd: float, t: float, mt=DM4310) -> bytes:  # type: ignore[no-untyped-def]
    return pack_mit(MitCommand(p, v, kp, kd, t), mt)


# -------------------------------------------------------------------------------- addressing
def test_addressing_esc_id_and_register_service_only() -> None:
    m = motor(4)
    assert m.accepts(4, ENABLE)
    assert m.accepts(0x7FF, refresh_request(4))
    assert not m.accepts(5, ENABLE)
    assert not m.accepts(0x7FF, refresh_request(5))
    assert not m.accepts(0x14, ENABLE)  # its own reply id is not a command id
    assert not m.accepts(4, ENABLE[:7])  # not 8 bytes
    reply = m.handle(0x7FF, refresh_request(4), 0.01)
    assert reply is not None and reply[0] == 0x04  # status 0 in the high nibble, id in the low
    assert m.mst_id == 0x14


def test_exactly_one_reply_per_accepted_frame_clear_error_configurable() -> None:
    m = motor(4)
    frames = [
        (4, ENABLE),
        (4, mit(0, 0, 10, 1, 0)),
        (0x7FF, refresh_request(4)),
        (0x7FF, register_request(4, RegisterCmd.READ, 9)),
        (0x7FF, register_request(4, RegisterCmd.WRITE, 9, encode_value(9, 8000))),
        (0x7FF, register_request(4, RegisterCmd.STORE, 9)),
        (4, ZERO),
        (4, DISABLE),
    ]
    for i, (arb, data) in enumerate(frames):
        assert m.handle(arb, data, 0.001 * (i + 1)) is not None, classify(arb, data)
    assert m.handle(4, CLEAR, 0.1) is None
    answering = motor(4, reply_to_clear_error=True)
    assert answering.handle(4, CLEAR, 0.1) is not None


# -------------------------------------------------------------------------------- state machine
def test_enable_disable_and_latching_faults() -> None:
    m = motor(4)
    assert status_of(m.handle(4, mit(1.0, 0, 50, 1, 0), 0.001)) == 0x0
    assert m.command == MitCommand(0.0, 0.0, 0.0, 0.0, 0.0), "a disabled motor must ignore MIT commands"
    assert status_of(m.handle(4, ENABLE, 0.002)) == 0x1
    assert status_of(m.handle(4, DISABLE, 0.003)) == 0x0
    assert status_of(m.handle(4, ENABLE, 0.004)) == 0x1
    m.inject_fault(MotorStatus.OVER_CURRENT, 0.005)
    assert status_of(m.handle(4, mit(0, 0, 10, 1, 0), 0.006)) == 0xA
    assert status_of(m.handle(4, DISABLE, 0.007)) == 0xA, "disable does not clear a latched fault"
    assert status_of(m.handle(4, ENABLE, 0.008)) == 0xA, "enable alone does not clear a latched fault"
    m.handle(4, CLEAR, 0.009)
    assert status_of(m.handle(0x7FF, refresh_request(4), 0.010)) == 0x0
    assert status_of(m.handle(4, ENABLE, 0.011)) == 0x1


def test_no_torque_while_faulted() -> None:
    m = motor(4)
    m.handle(4, ENABLE, 0.0)
    m.handle(4, mit(0, 0, 0, 0, 2.0), 0.001)
    m.handle(0x7FF, refresh_request(4), 0.05)
    assert m.applied_torque == pytest.approx(2.0, abs=0.01)
    m.inject_fault(MotorStatus.OVERLOAD, 0.05)
    m.handle(0x7FF, refresh_request(4), 0.1)
    assert m.applied_torque == 0.0


def test_over_temperature_relatches_while_still_hot() -> None:
    m = motor(4)
    m.inject_fault(MotorStatus.MOS_OVER_TEMPERATURE, 0.0)
    reply = m.handle(0x7FF, refresh_request(4), 0.01)
    fb = decode_feedback(reply or b"", DM4310)
    assert fb.status == MotorStatus.MOS_OVER_TEMPERATURE and fb.t_mos > 80
    m.handle(4, CLEAR, 0.02)
    assert status_of(m.handle(0x7FF, refresh_request(4), 0.03)) == 0xB, "the cause persists, so does the fault"


# -------------------------------------------------------------------------------- watchdog
def test_watchdog_expiry_switches_to_damping_and_reports_0xD() -> None:
    m = motor(4, timeout=8000)  # 8000 x 50 us = 400 ms
    m.handle(4, ENABLE, 0.0)
    m.handle(4, mit(0, 2.0, 0, 1.0, 0), 0.100)
    assert status_of(m.handle(0x7FF, refresh_request(4), 0.499)) == 0x1, "399 ms of silence is fine"
    assert status_of(m.handle(0x7FF, refresh_request(4), 0.899)) == 0x1
    m.qd = 5.0  # spinning when the host goes quiet
    assert status_of(m.handle(0x7FF, refresh_request(4), 1.301)) == 0xD
    assert [e.what for e in m.events][-1] == "fault 0xD"
    assert m.events[-1].t == pytest.approx(0.899 + 0.4)
    m.qd = 5.0
    m.handle(0x7FF, refresh_request(4), 1.35)
    assert 0 < m.qd < 5.0, "damping mode brakes the joint"
    assert m.applied_torque < 0
    # still 0xD, and MIT commands are ignored
    m.handle(4, mit(3.0, 0, 100, 1, 0), 1.36)
    assert m.command.kp == 0.0 or m.command.position != pytest.approx(3.0, abs=0.01)


def test_watchdog_off_when_timeout_is_zero() -> None:
    m = motor(4, timeout=0)
    m.handle(4, ENABLE, 0.0)
    assert status_of(m.handle(0x7FF, refresh_request(4), 100.0)) == 0x1


# -------------------------------------------------------------------------------- quantisation
def test_motor_sees_exactly_what_the_codec_carries() -> None:
    m = motor(1, DM4340)
    m.handle(1, ENABLE, 0.0)
    m.handle(1, mit(0.0, 0.0, 80.0, 5.0, 0.0, DM4340), 0.001)
    assert m.command.position == pytest.approx(-1.907e-4, abs=1e-7)  # mid code, slightly negative
    assert m.command.velocity == pytest.approx(-0.002442, abs=1e-6)
    assert m.command.kp == pytest.approx(655 * 500 / 4095)
    fb = decode_feedback(motor(1, DM4340).feedback(), DM4340)
    assert fb.position == pytest.approx(-1.907e-4, abs=1e-7)
    assert fb.velocity == pytest.approx(-0.002442, abs=1e-6)
    assert 25 <= fb.t_mos <= 40 and isinstance(fb.t_mos, int)


def test_position_wraps_at_pmax() -> None:
    m = motor(4, initial_position=13.0)
    assert m.reading() == pytest.approx(13.0 - 25.0)
    fb = decode_feedback(m.feedback(), DM4310)
    assert fb.position == pytest.approx(-12.0, abs=4e-4)


def test_set_zero_holds_for_the_rest_of_the_run() -> None:
    m = motor(4, initial_position=1.234)
    m.handle(4, ZERO, 0.01)
    assert decode_feedback(m.feedback(), DM4310).position == pytest.approx(0.0, abs=4e-4)
    m.q += 0.5  # the joint is moved
    assert m.reading() == pytest.approx(0.5)


# -------------------------------------------------------------------------------- MIT law, plant
def test_pd_control_converges_and_torque_saturates_at_the_physical_peak() -> None:
    m = motor(4, plant=Plant(inertia=0.01, damping=0.02, coulomb=0.0), timeout=0)  # no watchdog here
    m.handle(4, ENABLE, 0.0)
    m.handle(4, mit(0.5, 0, 10, 1.5, 0), 0.001)
    m.handle(0x7FF, refresh_request(4), 2.0)
    assert m.q == pytest.approx(0.5, abs=2e-3)
    # push hard against a hard stop: torque clamps to 7 Nm (DM4310 peak < TMAX 10)
    stopped = motor(4, plant=Plant(upper_stop=0.2), timeout=0)
    stopped.handle(4, ENABLE, 0.0)
    stopped.handle(4, mit(5.0, 0, 500, 0, 0), 0.001)
    fb = decode_feedback(stopped.handle(0x7FF, refresh_request(4), 0.5) or b"", DM4310)
    assert stopped.q == 0.2 and fb.velocity == pytest.approx(0.0, abs=0.02)
    assert fb.torque == pytest.approx(7.0, abs=0.01)


def test_gripper_push_stalls_at_a_hard_stop_within_two_seconds() -> None:
    from reflex.hardware.yam.sim import yam_sim_motors

    gripper = yam_sim_motors("linear_4310", seed=3)[-1]
    assert gripper.esc_id == 7
    lo, hi = gripper.plant.lower_stop, gripper.plant.upper_stop
    assert hi - lo == pytest.approx(6.57)
    gripper.handle(7, ENABLE, 0.0)
    for sign, stop in ((1, hi), (-1, lo)):
        t0 = gripper.t
        gripper.handle(7, mit(0, 0, 0, 0, 0.5 * sign), t0 + 0.001)
        t = t0
        while abs(gripper.q - stop) > 1e-9:
            t += 0.05
            gripper.handle(0x7FF, refresh_request(7), t)
            assert t - t0 < 2.0, "a 0.5 Nm push must reach the stop within 2 s"


def test_arm_joints_power_up_inside_their_limits() -> None:
    from reflex.hardware.yam.sim import yam_sim_motors
    from reflex.hardware.yam_layout import ARM_LOWER, ARM_UPPER

    for seed in range(5):
        motors = yam_sim_motors("no_gripper", seed=seed)
        assert len(motors) == 6
        for m, lo, hi in zip(motors, ARM_LOWER, ARM_UPPER, strict=True):
            assert lo <= m.reading() <= hi and -math.pi < m.reading() <= math.pi


# -------------------------------------------------------------------------------- registers
def test_register_service_read_write_store_refresh() -> None:
    m = motor(4)
    head = bytes((4, 0, 0x33, 9))
    assert m.handle(0x7FF, register_request(4, RegisterCmd.READ, 9), 0.01) == head + encode_value(9, 8000)
    for rid, expected in ((7, 0x14), (8, 4), (10, 1), (21, 12.5), (22, 30.0), (23, 10.0)):
        reply = m.handle(0x7FF, register_request(4, RegisterCmd.READ, rid), 0.02)
        assert reply is not None and decode_value(rid, reply[4:]) == expected
    write = register_request(4, RegisterCmd.WRITE, 9, encode_value(9, 0))
    assert m.handle(0x7FF, write, 0.03) == write, "a write is echoed"
    assert m.registers[9] == 0
    store = register_request(4, RegisterCmd.STORE, 9)
    assert m.handle(0x7FF, store, 0.04) == store and m.stored
    # writing VMAX rescales what the motor reports
    m.handle(0x7FF, register_request(4, RegisterCmd.WRITE, 22, encode_value(22, 10.0)), 0.05)
    assert m.mt.vmax == 10.0


# -------------------------------------------------------------------------------- the bus
def test_bus_wire_timing_lower_bound_and_one_reply_each() -> None:
    from reflex.hardware.yam.sim import yam_sim_motors

    timing = WireTiming(latency_s=100e-6, jitter_s=0.0)
    with SimMotorBus("sim:wire", yam_sim_motors("linear_4310"), timing=timing) as sim:
        host = can.Bus(interface="virtual", channel="sim:wire")
        try:
            t_send = time.monotonic()
            for esc in range(1, 8):
                host.send(can.Message(arbitration_id=0x7FF, data=refresh_request(esc), is_extended_id=False))
            replies: list[tuple[float, int]] = []
            while len(replies) < 7:
                msg = host.recv(timeout=2.0)
                assert msg is not None
                replies.append((time.monotonic(), msg.arbitration_id))
            assert host.recv(timeout=0.05) is None, "exactly one reply per request"
            assert sorted(a for _, a in replies) == list(range(0x11, 0x18))
            # 7 requests + 7 replies share one 1 Mbit/s wire: no earlier than 14 x 0.13 ms
            assert replies[-1][0] - t_send >= 14 * timing.frame_s
            # wrong ids, extended ids and short frames get no answer
            host.send(can.Message(arbitration_id=0x09, data=ENABLE, is_extended_id=False))
            host.send(can.Message(arbitration_id=0x04, data=ENABLE, is_extended_id=True))
            host.send(can.Message(arbitration_id=0x04, data=ENABLE[:4], is_extended_id=False))
            assert host.recv(timeout=0.05) is None
            assert sim.motor(4).status == MotorStatus.DISABLED
        finally:
            host.shutdown()


def test_bus_fault_injection_silent_dropped_and_stray() -> None:
    from reflex.hardware.yam.sim import yam_sim_motors

    stray = [StrayFrame(0x50F, bytes(8), 0.005)]
    with (
        SimMotorBus("sim:inject", yam_sim_motors("linear_4310"), stray=stray) as sim,
        BusCapture("sim:inject") as cap,
    ):
        assert running("sim:inject") is sim
        with pytest.raises(RuntimeError, match="already runs"):
            SimMotorBus("sim:inject", yam_sim_motors("no_gripper")).start()
        host = can.Bus(interface="virtual", channel="sim:inject")
        try:
            sim.set_silent(3)
            sim.drop_replies(5, 1)
            for esc in (3, 5, 5):
                host.send(can.Message(arbitration_id=0x7FF, data=refresh_request(esc), is_extended_id=False))
            time.sleep(0.1)
        finally:
            host.shutdown()
    kinds = [(f.arbitration_id, classify(f.arbitration_id, f.data)) for f in cap.frames]
    assert (0x13, "feedback") not in kinds, "a silent motor never answers"
    assert kinds.count((0x15, "feedback")) == 1, "the first reply of motor 5 was dropped"
    assert kinds.count((0x50F, "other")) >= 5
    assert sim.motor(5).counts["dropped_replies"] == 1
    assert running("sim:inject") is None
