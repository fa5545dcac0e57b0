"""The motor chain driver against simulated Damiao motors on a python-can virtual bus."""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from reflex.can.bus import open_bus
from reflex.can.capture import BusCapture, Captured, classify
from reflex.can.chain import ChainMotor, ChainTiming, JointControl, MotorChain, StopPlan
from reflex.can.codec import decode_feedback, unpack_mit
from reflex.can.faults import MotorSilent, MotorStatus
from reflex.can.motors import motor_type
from reflex.can.registers import RID_TIMEOUT
from reflex.can.sim.bus import SimMotorBus, StrayFrame, WireTiming
from reflex.hardware.yam.arm import ARM_KD, ARM_KP, ARM_MOTOR_TYPES
from reflex.hardware.yam.sim import yam_sim_motors

TYPES = [*ARM_MOTOR_TYPES, "DM4310"]
MOTORS = [ChainMotor(f"test joint{i + 1}", i + 1, motor_type(t)) for i, t in enumerate(TYPES)]
CONTROLS = [JointControl(kp=k, kd=d, max_speed=1.0) for k, d in zip(ARM_KP["yam"], ARM_KD, strict=True)] + [
    JointControl(kp=20.0, kd=0.5, max_speed=1.0)
]


class Rig:
    def __init__(self, channel: str, timing: WireTiming, stray: list[StrayFrame], strategy: str = "pipelined",
                 chain_timing: ChainTiming | None = None):
        self.channel = channel
        self.sim = SimMotorBus(channel, yam_sim_motors("linear_4310"), timing=timing, stray=stray).start()
        self.capture = BusCapture(channel)
        self.chain = MotorChain(
            open_bus(channel),
            MOTORS,
            name="test arm",
            rate_hz=250,
            timing=chain_timing or ChainTiming(reply_timeout_s=0.02, max_retries=2, reply_budget_s=0.05),
            stop_plan=StopPlan(mode="disable", ramp_s=0.1),
            strategy=strategy,  # type: ignore[arg-type]
        )

    def close(self) -> list[Captured]:
        self.chain.close()
        self.sim.stop()
        return self.capture.stop()

    def wait_cycles(self, n: int) -> None:
        target = self.chain.stats.cycles + n
        deadline = time.monotonic() + 10
        while self.chain.stats.cycles < target:
            assert time.monotonic() < deadline, "chain stalled"
            time.sleep(0.005)


def make_rig(name: str, latency_s: float = 100e-6, stray: list[StrayFrame] | None = None, **kw: str) -> Rig:
    return Rig(f"sim:chain-{name}", WireTiming(latency_s=latency_s, jitter_s=0.0), stray or [], **kw)


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    r = make_rig(request.node.name)
    yield r
    r.close()


def host_kinds(frames: list[Captured]) -> list[str]:
    return [classify(f.arbitration_id, f.data) for f in frames if f.arbitration_id < 0x10 or f.arbitration_id == 0x7FF]


def test_refresh_and_registers_are_read_only(rig: Rig) -> None:
    feedback = rig.chain.refresh()
    assert [fb.status for fb in feedback] == [MotorStatus.DISABLED] * 7
    assert rig.chain.read_register(3, RID_TIMEOUT) == 8000
    rig.chain.start()
    rig.wait_cycles(20)
    frames = rig.close()
    kinds = set(host_kinds(frames))
    assert kinds == {"register_refresh", "register_read"}, kinds
    assert all(m.status == MotorStatus.DISABLED for m in rig.sim.motors.values())


def test_write_register_is_echoed_and_verified(rig: Rig) -> None:
    rig.chain.write_register(2, RID_TIMEOUT, 0)
    assert rig.sim.motor(3).registers[RID_TIMEOUT] == 0
    assert rig.chain.write_register(2, RID_TIMEOUT, 8000) == 8000


def test_pipelined_cycle_sends_all_requests_before_waiting() -> None:
    # with a 3 ms reply latency a send-one-wait-one cycle would interleave; the pipelined one
    # must have every request on the wire before the first reply comes back
    for strategy, interleaved in (("pipelined", False), ("sequential", True)):
        r = make_rig(f"order-{strategy}", latency_s=3e-3, strategy=strategy)
        try:
            r.chain.refresh()
        finally:
            frames = r.close()
        order = ["req" if f.arbitration_id == 0x7FF else "rep" for f in frames]
        assert order.count("req") == 7 and order.count("rep") == 7
        if interleaved:
            assert order == ["req", "rep"] * 7
        else:
            assert order == ["req"] * 7 + ["rep"] * 7


def test_dropped_reply_is_resent_within_the_cycle(rig: Rig) -> None:
    rig.chain.refresh()
    rig.sim.drop_replies(3, 1)
    rig.chain.refresh()  # would raise MotorSilent without the retry
    assert rig.chain.stats.retries == 1 and rig.chain.stats.missed == 0


def test_stray_frames_are_ignored_not_resent() -> None:
    r = make_rig("stray", stray=[StrayFrame(0x50F, bytes(8), 0.001), StrayFrame(0x123, bytes(8), 0.002)])
    try:
        r.chain.start()
        r.wait_cycles(100)
    finally:
        frames = r.close()
    assert r.chain.stats.stray > 50
    refreshes = host_kinds(frames).count("register_refresh")
    assert refreshes == r.chain.stats.frames_tx - r.chain.stats.retries  # no resend caused by strays
    assert r.chain.stats.retries <= 2 and r.chain.stats.missed == 0


def test_silent_motor_is_named(rig: Rig) -> None:
    rig.sim.set_silent(4)
    with pytest.raises(MotorSilent, match=r"test joint4 \(motor 0x04\): no reply to a refresh"):
        rig.chain.refresh()
    rig.sim.set_silent(4, False)
    rig.chain.refresh()
    rig.chain.start()
    rig.sim.set_silent(6)
    # monitoring (nothing live): no fault, the reading just ages
    rig.wait_cycles(3)
    t_silent = rig.chain.state().t_rx[5]
    rig.wait_cycles(30)
    assert rig.chain.fault is None and rig.chain.state().t_rx[5] == t_silent
    rig.sim.set_silent(6, False)
    rig.chain.refresh()
    rig.chain.enable_all()
    rig.chain.start_control(CONTROLS, interp_s=0.02)
    rig.sim.set_silent(6)
    assert rig.chain.wait_stopped(5.0)
    assert re.search(r"test joint6 \(motor 0x06\): no reply for \d+ ms \(budget 50 ms\)", rig.chain.fault or "")


def enable_and_control(rig: Rig) -> None:
    rig.chain.refresh()
    rig.chain.enable_all()
    rig.chain.start()
    rig.chain.start_control(CONTROLS, interp_s=0.02)


def mit_frames(frames: list[Captured], esc: int) -> list[tuple[float, float, float, float]]:
    """(t, p_des, v_des, kp) of every MIT frame to motor ``esc``."""
    mt = MOTORS[esc - 1].motor
    out = []
    for f in frames:
        if f.arbitration_id == esc and classify(f.arbitration_id, f.data) == "mit":
            cmd = unpack_mit(f.data, mt)
            out.append((f.t, cmd.position, cmd.velocity, cmd.kp))
    return out


def test_control_holds_the_measured_pose_then_slews_never_jumps(rig: Rig) -> None:
    enable_and_control(rig)
    measured = rig.chain.measured()
    rig.wait_cycles(10)
    target = measured.copy()
    target[0] += 0.3  # far more than one cycle may move at 1 rad/s
    rig.chain.set_targets(target)
    rig.wait_cycles(150)
    frames = rig.close()
    joint1 = mit_frames(frames, 1)
    first = joint1[0]
    assert first[1] == pytest.approx(measured[0], abs=4e-4), "first command = measured pose"
    assert first[3] == pytest.approx(80.0, abs=0.2)
    period = 1 / 250
    for (_, p0, _, _), (_, p1, _, _) in itertools.pairwise(joint1):
        assert abs(p1 - p0) <= 1.0 * 2 * period + 4e-4  # max_speed x (at most two periods) + 1 code
    assert joint1[-1][1] == pytest.approx(target[0], abs=4e-3)
    assert rig.sim.motor(1).q == pytest.approx(target[0], abs=0.02)


def test_fault_stops_on_the_same_cycle_and_never_reenables(rig: Rig) -> None:
    enable_and_control(rig)
    rig.wait_cycles(20)
    rig.sim.inject_fault(5, MotorStatus.MOS_OVER_TEMPERATURE)
    assert rig.chain.wait_stopped(5.0)
    rig.wait_cycles(50)  # keeps polling afterwards: still no enable
    assert rig.chain.mode == "monitor"
    frames = rig.close()
    stats = rig.chain.stats
    assert stats.stop_cycle == stats.fault_cycle  # the cycle that saw the fault sends the first stop frames
    assert "test joint5 (motor 0x05): MOSFET over-temperature (0xB)" in (rig.chain.fault or "")
    # on the wire: the first 0xB reply, then only hold frames at a fixed pose, then disable
    i_fault = next(
        i
        for i, f in enumerate(frames)
        if f.arbitration_id == 0x15 and f.data[0] >> 4 == MotorStatus.MOS_OVER_TEMPERATURE
    )
    after = frames[i_fault + 1 :]
    kinds = [classify(f.arbitration_id, f.data) for f in after if f.arbitration_id < 0x10]
    assert "enable" not in kinds and "clear_error" not in kinds
    assert "disable" in kinds
    first_disable = kinds.index("disable")
    assert set(kinds[:first_disable]) <= {"mit"} and set(kinds[first_disable:]) <= {"disable"}
    for esc in range(1, 8):
        held = {round(p, 4) for _, p, v, _ in mit_frames(after, esc)}
        assert len(held) <= 1, f"motor {esc} moved its hold target during the stop: {held}"
    assert all(m.status in (MotorStatus.DISABLED, MotorStatus.MOS_OVER_TEMPERATURE) for m in rig.sim.motors.values())


def test_watchdog_expiry_when_the_host_hangs_then_safe_stop(rig: Rig) -> None:
    enable_and_control(rig)
    rig.wait_cycles(10)
    with rig.chain.calls.lock:  # the host hangs: no frame for 0.5 s
        time.sleep(0.5)
    assert rig.chain.wait_stopped(5.0)
    frames = rig.close()
    assert "loss of communication" in (rig.chain.fault or "")
    assert any(f.arbitration_id in range(0x11, 0x18) and f.data[0] >> 4 == 0xD for f in frames), "0xD on the wire"
    for m in rig.sim.motors.values():
        assert m.status == MotorStatus.LOSS_OF_COMMUNICATION  # damped; disable does not clear it
        assert [e.what for e in m.events].count("enable") == 1


def test_position_is_unwrapped_across_pmax(rig: Rig) -> None:
    m = rig.sim.motor(7)
    rig.sim.with_motors(lambda motors: setattr(motors[7], "q", 12.45))
    rig.chain.refresh()
    rig.sim.with_motors(lambda motors: setattr(motors[7], "q", 12.55))  # reads as -12.45
    rig.chain.refresh()
    assert decode_feedback(m.feedback(), MOTORS[6].motor).position < 0
    assert rig.chain.measured()[6] == pytest.approx(12.55, abs=1e-3)


def test_bus_load_is_checked() -> None:
    bus = open_bus("sim:chain-load")
    try:
        with pytest.raises(ValueError, match="at most 500 Hz"):
            MotorChain(bus, MOTORS, rate_hz=600)
        assert MotorChain(bus, MOTORS, rate_hz=450).rate_hz == 450
    finally:
        bus.shutdown()


def test_runner_silence_stops_the_arm(rig: Rig) -> None:
    rig.chain.runner_timeout_s = 0.1
    enable_and_control(rig)
    assert rig.chain.wait_stopped(5.0)
    assert "no read or action from the runner" in (rig.chain.fault or "")
    assert not any(m.enabled for m in rig.sim.motors.values())
    assert math.isfinite(float(np.sum(rig.chain.measured())))


def test_a_host_stall_is_no_runner_silence(rig: Rig) -> None:
    """While the chain thread itself cannot run (here: its bus lock is held, as when the host
    does not schedule the process), nobody could have called it: after such a stall, longer than
    the runner timeout, the chain resumes before the runner's next call and does not stop."""
    rig.chain.runner_timeout_s = 0.08
    enable_and_control(rig)
    with rig.chain.calls.lock:  # the chain thread stops at its next cycle
        stalled_from = rig.chain.stats.cycles
        # three timeouts without a cycle; well inside the motors' own 400 ms watchdog, which a
        # longer stall trips, as it would on a real bus
        deadline = time.monotonic() + 0.25
        while time.monotonic() < deadline:
            time.sleep(0.01)
        assert rig.chain.stats.cycles == stalled_from
    rig.wait_cycles(3)  # the chain runs again first; the runner has not called since the stall
    assert rig.chain.mode == "control" and rig.chain.fault is None, rig.chain.fault
    rig.chain.touch()
    assert rig.chain.wait_stopped(5.0)  # then silence while the chain runs stops the arm on time
    assert "no read or action from the runner" in (rig.chain.fault or "")


def test_a_silent_motor_is_caught_when_every_cycle_is_late() -> None:
    """A host loaded for seconds makes every bus cycle late. Each late stretch is left out of a
    motor's silence, but only down to one cycle: a motor that stays silent still runs out its
    reply budget (here ~12 cycles), instead of having its silence forgiven every cycle."""
    rig = Rig("sim:chain-every-cycle-late", WireTiming(latency_s=100e-6, jitter_s=0.0), [],
              chain_timing=ChainTiming(reply_timeout_s=0.002, max_retries=0, reply_budget_s=0.05))
    stop = threading.Event()

    def host_load() -> None:  # the chain thread gets one cycle in every ~20 ms
        while not stop.is_set():
            with rig.chain.calls.lock:
                time.sleep(0.02)
            time.sleep(0.001)

    try:
        enable_and_control(rig)
        rig.wait_cycles(3)
        load = threading.Thread(target=host_load, daemon=True)
        load.start()
        rig.wait_cycles(3)
        rig.sim.drop_replies(4, 10**6)
        assert rig.chain.wait_stopped(10.0), "a silent motor was forgiven cycle after cycle"
        assert "no reply for" in (rig.chain.fault or "") and "joint4" in (rig.chain.fault or ""), rig.chain.fault
    finally:
        stop.set()
        rig.close()


def test_a_held_command_settles_inside_the_limits_when_the_host_stalls(rig: Rig) -> None:
    """A motor keeps executing the last MIT frame while the host stalls; with velocity feedforward
    it settles at p + kd v / kp, not p. Every frame keeps that point inside the joint limits, so a
    stall during a fast slew towards a limit never carries the joint past it."""
    enable_and_control(rig)
    measured = rig.chain.measured()
    upper = measured[3] + 0.3
    controls = list(CONTROLS)
    controls[3] = JointControl(kp=ARM_KP["yam"][3], kd=ARM_KD[3], upper=upper, max_speed=3.0, max_error=0.2)
    rig.chain.set_controls(controls)
    target = measured.copy()
    target[3] += 2.0  # far past the limit: the command slews at 3 rad/s, then sits on the limit
    rig.chain.set_targets(target)
    rig.wait_cycles(8)
    with rig.chain.calls.lock:  # the host stalls mid-slew (shorter than the motor watchdog)
        time.sleep(0.25)
    rig.wait_cycles(60)
    with rig.chain.calls.lock:  # and again, sitting on the limit
        time.sleep(0.25)
    assert rig.sim.motor(4).q <= upper + 0.02
    frames = rig.close()
    reach = ARM_KD[3] / ARM_KP["yam"][3]
    joint4 = mit_frames(frames, 4)
    assert any(v > 0.5 for _, _, v, _ in joint4), "the slew used velocity feedforward"
    for _, p, v, _ in joint4:
        assert p <= upper + 4e-4
        assert p + reach * v <= upper + 0.01, f"frame p={p} v={v} settles past the limit {upper}"
