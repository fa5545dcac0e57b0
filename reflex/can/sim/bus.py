"""Simulated motors on a python-can ``virtual`` channel, with the timing of a 1 Mbit/s wire.

The virtual interface delivers frames instantly and in-process; this module adds what a real
bus has and a test should feel:

* **wire occupancy**: one frame at a time, ``bits_per_frame / bitrate`` each (0.13 ms), host
  frames and replies alike, so a 7-motor request/reply cycle cannot beat ~1.8 ms;
* **reply latency**: each reply leaves ``latency_s + U(0, jitter_s)`` after its request finished
  on the wire, and is delivered once its own wire slot ends;
* **fault injection**: latched fault codes, silent motors, dropped replies, stray third-party
  frames, all callable from tests or scheduled from a config.

The bus runs in the host's time, not when the scheduler lets a thread run:

* a host frame is handled inside the sender's ``send()`` call (the simulator's place on the
  virtual channel is an inbox that answers on ``put``), stamped with the time it was sent;
* a host that opened the channel with :func:`open_host_bus` (``reflex.can.bus.open_bus`` does for
  ``sim:`` channels) pulls the frames whose wire time has come whenever it reads, so a reply
  that is due before the host's deadline is always there when the host looks, however late the
  host thread ran; while such a host is attached, nothing else delivers, so frame order on the
  channel is the order of the wire model, whatever the load;
* with no such host (a plain ``virtual`` bus), a background thread delivers at the wire times.

Replies are committed to the wire once ready, and before any host frame sent after that,
mimicking arbitration (host ids 0x01-0x07 beat replies 0x11-0x17).
"""

from __future__ import annotations

import heapq
import itertools
import json
import queue
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import can
from can.interfaces import virtual

from reflex.can.sim import registry
from reflex.can.sim.motor import SimMotor

IDLE_WAIT_S = 0.02


@dataclass(frozen=True)
class WireTiming:
    enabled: bool = True
    bitrate: int = 1_000_000
    bits_per_frame: int = 130
    latency_s: float = 100e-6
    jitter_s: float = 200e-6

    @property
    def frame_s(self) -> float:
        return self.bits_per_frame / self.bitrate


@dataclass(frozen=True)
class StrayFrame:
    """A third-party frame sent every ``period_s`` (e.g. a teaching handle on 0x50F)."""

    arbitration_id: int
    data: bytes
    period_s: float


class _Inbox(queue.Queue):  # type: ignore[type-arg]
    """Stands in for the simulator's receive queue on the virtual channel: a frame put here by
    any sender is handled at once, on the sender's thread, before its ``send()`` returns."""

    def __init__(self, on_frame: Callable[[can.Message], None]) -> None:
        super().__init__()
        self._on_frame = on_frame

    def put(self, item: can.Message, block: bool = True, timeout: float | None = None) -> None:
        self._on_frame(item)


class _SimEndpoint(virtual.VirtualBus):
    """The simulator's place on the channel: sends like any virtual bus, receives through an
    :class:`_Inbox`."""

    def __init__(self, channel: str, on_frame: Callable[[can.Message], None]) -> None:
        super().__init__(channel=channel, receive_own_messages=False)
        inbox = _Inbox(on_frame)
        with virtual.channels_lock:
            self.channel[self.channel.index(self.queue)] = inbox
            self.queue = inbox


class SimHostBus(virtual.VirtualBus):
    """A host's virtual bus on a simulated channel: every read first delivers the frames whose
    wire time has come, and waits no longer than until the next one is due."""

    def __init__(self, channel: str, sim: SimMotorBus | None) -> None:
        super().__init__(channel=channel, receive_own_messages=False)
        self._sim = sim
        if sim is not None:
            sim.attach_host()

    def _recv_internal(self, timeout: float | None) -> tuple[can.Message | None, bool]:
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            now = time.monotonic()  # before the pump: whatever was due by now is delivered
            due = self._sim.pump() if self._sim is not None else None
            msg, filtered = super()._recv_internal(0.0)
            if msg is not None or (end is not None and now >= end):
                return msg, filtered
            wait = None if end is None else end - now
            if due is not None:
                wait = due - now if wait is None else min(wait, due - now)
            msg, filtered = super()._recv_internal(None if wait is None else max(0.0, wait))
            if msg is not None:
                return msg, filtered

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        if self._sim is not None and self._sim.bus_off:
            # what a controller in bus-off does: refuses every frame until it is restarted
            raise can.CanOperationError(f"{self.channel_id}: bus-off, frame not sent (simulated)")
        super().send(msg, timeout)

    def shutdown(self) -> None:
        if self._sim is not None:
            self._sim.detach_host()
            self._sim = None
        super().shutdown()


def open_host_bus(channel: str) -> SimHostBus:
    """A host bus on ``channel``, pulling from the simulator running there (if any)."""
    return SimHostBus(channel, registry.running(channel))


class SimMotorBus:
    """Owns the simulator's place on the virtual ``channel`` and answers for every motor on it."""

    def __init__(
        self,
        channel: str,
        motors: Sequence[SimMotor],
        timing: WireTiming | None = None,
        seed: int = 0,
        stray: Sequence[StrayFrame] = (),
        report_path: Path | None = None,
        register: bool = True,
    ) -> None:
        ids = [m.esc_id for m in motors]
        if len(set(ids)) != len(ids):
            raise ValueError(f"sim channel {channel}: duplicate motor ids {ids}")
        self.channel = channel
        self.motors = {m.esc_id: m for m in motors}
        self.timing = timing or WireTiming()
        self.stray = list(stray)
        self.report_path = report_path
        self._register = register
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._bus: can.BusABC | None = None
        self._hosts = 0  # attached SimHostBus: they deliver, the thread stays out of the way
        self._wire_free = 0.0
        self._ready: list[tuple[float, int, int, bytes]] = []  # (ready_t, seq, arb id, data)
        self._deliver: list[tuple[float, int, int, bytes]] = []  # (wire end, seq, arb id, data)
        self._seq = itertools.count()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._next_stray: list[float] = []
        self._wall_to_mono = 0.0
        self.frames_in = 0
        self.frames_out = 0
        self.drop_probability = 0.0
        self.bus_off = False  # the host controller refuses every frame (set_bus_off)
        self.errors: list[str] = []

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> SimMotorBus:
        if self._thread is not None:
            return self
        if self._register:
            registry.register(self)
        now = time.monotonic()
        self._wall_to_mono = now - time.time()
        for motor in self.motors.values():
            motor.t = motor.last_rx = now
        self._next_stray = [now + s.period_s for s in self.stray]
        self._bus = _SimEndpoint(self.channel, self._on_host_frame)
        self._thread = threading.Thread(target=self._run, name=f"sim-can-{self.channel}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._bus is not None:
            self._bus.shutdown()
            self._bus = None
        if self._register:
            registry.unregister(self)
        self.write_report()

    def __enter__(self) -> SimMotorBus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- fault injection and inspection (any thread) -------------------------------------------
    def motor(self, esc_id: int) -> SimMotor:
        try:
            return self.motors[esc_id]
        except KeyError:
            raise KeyError(f"sim channel {self.channel} has no motor {esc_id}") from None

    def inject_fault(self, esc_id: int, code: int) -> None:
        with self._lock:
            self.motor(esc_id).inject_fault(code, time.monotonic())

    def set_silent(self, esc_id: int, silent: bool = True) -> None:
        with self._lock:
            self.motor(esc_id).silent = silent

    def set_bus_off(self, off: bool = True) -> None:
        """The host's CAN controller goes bus-off: its sends raise, the motors hear nothing."""
        self.bus_off = off

    def drop_replies(self, esc_id: int, count: int) -> None:
        with self._lock:
            self.motor(esc_id).drop_next_replies += count

    def call_at(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the sim thread ``delay_s`` from now (scheduled fault injection)."""
        with self._lock:
            heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._seq), fn))
        self._wake.set()

    def with_motors(self, fn: Callable[[dict[int, SimMotor]], Any]) -> Any:
        """Inspect or change motors consistently with the sim thread."""
        with self._lock:
            now = time.monotonic()
            for m in self.motors.values():
                m.advance(now)
            return fn(self.motors)

    def snapshot(self) -> dict[str, Any]:
        return self.with_motors(
            lambda motors: {
                "channel": self.channel,
                "frames_in": self.frames_in,
                "frames_out": self.frames_out,
                "errors": list(self.errors),
                "motors": {str(i): m.snapshot() for i, m in sorted(motors.items())},
            }
        )

    def write_report(self) -> None:
        if self.report_path is None:
            return
        self.report_path.parent.mkdir(parents=True, exist_ok=True)
        self.report_path.write_text(json.dumps(self.snapshot(), indent=1, default=str))

    # -- the wire -------------------------------------------------------------------------------
    def attach_host(self) -> None:
        with self._lock:
            self._hosts += 1

    def detach_host(self) -> None:
        with self._lock:
            self._hosts -= 1
        self._wake.set()

    def pump(self) -> float | None:
        """Deliver every frame whose wire time has come (on the caller's thread); returns when the
        next one is due, or None if nothing is scheduled."""
        with self._lock:
            bus = self._bus
            if bus is None:
                return None
            self._service(bus, time.monotonic())
            return self._next_due()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    due = self._next_due() if self._hosts == 0 else None
                wait = IDLE_WAIT_S if due is None else min(IDLE_WAIT_S, max(0.0, due - time.monotonic()))
                self._wake.wait(wait)
                self._wake.clear()
                with self._lock:
                    if self._hosts == 0 and self._bus is not None:
                        self._service(self._bus, time.monotonic())
        except Exception as exc:  # a sim crash must be visible, not a silent dead bus
            self.errors.append(f"{type(exc).__name__}: {exc}")
            raise

    def _next_due(self) -> float | None:
        times = [q[0][0] for q in (self._ready, self._deliver, self._timers) if q]
        times += self._next_stray
        return min(times) if times else None

    def _on_host_frame(self, msg: can.Message) -> None:
        """Runs on the sender's thread, inside its ``send()``."""
        with self._lock:
            self.frames_in += 1
            if msg.is_extended_id or msg.is_remote_frame or msg.is_error_frame:
                return
            data = bytes(msg.data)
            now = time.monotonic()
            sent = min(now, msg.timestamp + self._wall_to_mono) if msg.timestamp else now
            self._commit(sent)  # replies ready before this frame got the wire first
            end = self._occupy(sent)
            for motor in self.motors.values():
                if motor.accepts(msg.arbitration_id, data):
                    reply = motor.handle(msg.arbitration_id, data, end)
                    if reply is not None and self._rng.random() >= self.drop_probability:
                        ready = end
                        if self.timing.enabled:
                            ready += self.timing.latency_s + self._rng.uniform(0.0, self.timing.jitter_s)
                        heapq.heappush(self._ready, (ready, next(self._seq), motor.mst_id, reply))
                    break
        self._wake.set()

    def _occupy(self, t: float) -> float:
        """Put one frame on the wire no earlier than ``t``; returns when it has been sent."""
        if not self.timing.enabled:
            return t
        start = max(t, self._wire_free)
        self._wire_free = start + self.timing.frame_s
        return self._wire_free

    def _commit(self, upto: float) -> None:
        """Give the wire to every reply ready by ``upto``, in the order they became ready."""
        while self._ready and self._ready[0][0] <= upto:
            ready, seq, arb, data = heapq.heappop(self._ready)
            heapq.heappush(self._deliver, (self._occupy(ready), seq, arb, data))

    def _service(self, bus: can.BusABC, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[2]()
        self._commit(now)
        for i, stray in enumerate(self.stray):
            if self._next_stray[i] <= now:
                at = self._next_stray[i]
                nxt = at + stray.period_s
                self._next_stray[i] = nxt if nxt > now else now + stray.period_s  # late: no catch-up burst
                heapq.heappush(self._deliver, (self._occupy(at), next(self._seq), stray.arbitration_id, stray.data))
        while self._deliver and self._deliver[0][0] <= now:
            _, _, arb, data = heapq.heappop(self._deliver)
            bus.send(can.Message(arbitration_id=arb, data=data, is_extended_id=False))
            self.frames_out += 1
