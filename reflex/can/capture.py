"""Record and classify every frame on a CAN channel (tests, benches, ``reflex can watch --raw``).

A capture is one more listener on the bus: on a ``virtual`` channel it sees the host's frames
and the simulated motors' replies; on SocketCAN it sees everything other sockets send.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reflex.can.codec import parse_register_message, parse_special
from reflex.can.registers import REGISTER_SERVICE_ID

if TYPE_CHECKING:
    import can


@dataclass(frozen=True)
class Captured:
    t: float  # when the frame was put on the bus (its sender's stamp), on the monotonic clock
    arbitration_id: int
    data: bytes


def classify(arbitration_id: int, data: bytes, motor_ids: range = range(1, 16)) -> str:
    """What a frame is: mit | enable | disable | set_zero | clear_error | register_<cmd> (host
    side), feedback | register_reply (motor side, id + 0x10), or other."""
    if arbitration_id == REGISTER_SERVICE_ID:
        msg = parse_register_message(data)
        return f"register_{msg.cmd.name.lower()}" if msg is not None else "other"
    if arbitration_id in motor_ids:
        special = parse_special(data)
        return special.name.lower() if special is not None else "mit"
    if arbitration_id - 0x10 in motor_ids and len(data) == 8:
        esc = arbitration_id - 0x10
        if data[0] | (data[1] << 8) == esc and parse_register_message(data) is not None and data[0] >> 4 == 0:
            return "register_reply"
        return "feedback"
    return "other"


class BusCapture:
    """Collects frames from a background thread until stopped."""

    def __init__(self, channel: str, interface: str = "virtual") -> None:
        import can

        self._bus: can.BusABC = can.Bus(interface=interface, channel=channel, receive_own_messages=False)
        self.frames: list[Captured] = []
        self._wall_to_mono = time.monotonic() - time.time()
        self._drained = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture-{channel}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._bus.recv(timeout=0.05)
            if msg is not None:
                self.frames.append(self._captured(msg))

    def _captured(self, msg: can.Message) -> Captured:
        # the sender's stamp, not this thread's receive time: a capture thread that runs late
        # must not make a frame look late
        t = msg.timestamp + self._wall_to_mono if msg.timestamp else time.monotonic()
        return Captured(t, msg.arbitration_id, bytes(msg.data))

    def stop(self) -> list[Captured]:
        self._stop.set()
        self._thread.join(timeout=2.0)
        if not self._drained and not self._thread.is_alive():
            # what reached the bus before the stop is captured too, however late this thread ran
            self._drained = True
            while (msg := self._bus.recv(timeout=0.0)) is not None:
                self.frames.append(self._captured(msg))
        self._bus.shutdown()
        return self.frames

    def kinds(self) -> list[str]:
        return [classify(f.arbitration_id, f.data) for f in list(self.frames)]

    def __enter__(self) -> BusCapture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
