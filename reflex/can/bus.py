"""Opening a CAN bus for a channel name, and bus-load arithmetic.

A channel ``sim:<name>`` is a python-can ``virtual`` channel; any other name is opened with the
configured interface (``socketcan`` by default, as the YAM udev setup provides ``can0``,
``can_follower_l`` ...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reflex.can.sim.registry import is_sim_channel

if TYPE_CHECKING:
    import can

BITRATE = 1_000_000
BITS_PER_FRAME = 130  # 8-byte standard frame with interframe space and typical stuffing
MAX_BUS_LOAD = 1 / 1.1  # the same headroom i2rt keeps


def frame_time_s(bitrate: int = BITRATE, bits: int = BITS_PER_FRAME) -> float:
    return bits / bitrate


def bus_load(rate_hz: float, frames_per_cycle: int, bitrate: int = BITRATE, bits: int = BITS_PER_FRAME) -> float:
    """Fraction of the wire a request/reply cycle at ``rate_hz`` uses."""
    return rate_hz * frames_per_cycle * bits / bitrate


def max_rate_hz(frames_per_cycle: int, bitrate: int = BITRATE, bits: int = BITS_PER_FRAME) -> float:
    return MAX_BUS_LOAD * bitrate / (frames_per_cycle * bits)


def check_bus_load(rate_hz: float, n_motors: int, bitrate: int = BITRATE) -> float:
    """Raise if ``n_motors`` request/reply pairs at ``rate_hz`` exceed 1/1.1 of the wire."""
    load = bus_load(rate_hz, 2 * n_motors, bitrate)
    if load > MAX_BUS_LOAD:
        raise ValueError(
            f"{n_motors} motors at {rate_hz:g} Hz need {load:.0%} of a {bitrate / 1e6:g} Mbit/s bus; "
            f"the limit is {MAX_BUS_LOAD:.0%} (at most {max_rate_hz(2 * n_motors, bitrate):.0f} Hz)"
        )
    return load


def open_bus(channel: str, interface: str = "socketcan", bitrate: int = BITRATE) -> can.BusABC:
    """A python-can Bus; ``sim:`` channels are virtual (no hardware, same process only), read in
    the simulated motors' time (see :mod:`reflex.can.sim.bus`)."""
    import can

    if is_sim_channel(channel):
        from reflex.can.sim.bus import open_host_bus

        return open_host_bus(channel)
    kwargs: dict[str, Any] = {}
    if interface != "socketcan":
        kwargs["bitrate"] = bitrate  # socketcan takes its bitrate from `ip link`
    try:
        return can.Bus(interface=interface, channel=channel, **kwargs)
    except (OSError, can.CanError) as exc:
        hint = ""
        if interface == "socketcan":
            hint = f" (is the interface up? `sudo ip link set {channel} up type can bitrate {bitrate}`)"
        raise OSError(f"cannot open CAN channel '{channel}' with interface {interface}: {exc}{hint}") from exc
