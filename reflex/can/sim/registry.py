"""Simulated buses running in this process, by channel name.

A test that wants to inject faults starts a :class:`SimMotorBus` itself; a connector whose config
names the same ``sim:`` channel then attaches to it instead of starting a second one (two
simulators on one channel would answer every frame twice).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reflex.can.sim.bus import SimMotorBus

SIM_PREFIX = "sim:"
_LOCK = threading.Lock()
_RUNNING: dict[str, SimMotorBus] = {}


def is_sim_channel(channel: str) -> bool:
    return channel.startswith(SIM_PREFIX)


def register(sim: SimMotorBus) -> None:
    with _LOCK:
        if sim.channel in _RUNNING and _RUNNING[sim.channel] is not sim:
            raise RuntimeError(f"a simulated bus already runs on channel '{sim.channel}'")
        _RUNNING[sim.channel] = sim


def unregister(sim: SimMotorBus) -> None:
    with _LOCK:
        if _RUNNING.get(sim.channel) is sim:
            del _RUNNING[sim.channel]


def running(channel: str) -> SimMotorBus | None:
    with _LOCK:
        return _RUNNING.get(channel)
