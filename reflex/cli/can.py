"""``reflex can``: read-only bring-up tools for Damiao motors on a CAN bus.

* ``reflex can scan CHANNEL``: which motors answer, their ids, type, status, position and
  temperatures, with warnings (watchdog off, wrong mode).
* ``reflex can watch CHANNEL``: live state, refreshed until Ctrl-C or ``--duration``.

Both only send refresh polls and register reads (0x7FF, CMD 0xCC / 0x33): they never enable a
motor nor send an MIT command, so they are safe on a powered arm. A ``sim:<name>`` channel
starts a simulated YAM arm in this process.
"""

from __future__ import annotations

import json
import time
from typing import Any

import typer

from reflex.cli.output import fail

app = typer.Typer(help="Read-only tools for Damiao motors on a CAN bus (scan, watch).", no_args_is_help=True)

CHANNEL = typer.Argument(..., help="CAN interface (can0, can_follower_l, ...) or sim:<name> for a simulated arm.")
INTERFACE = typer.Option("socketcan", "--interface", "-i", help="python-can interface of a real channel.")
IDS = typer.Option("1-7", "--ids", help="Motor ids to look for: '1-7' or '1,2,7'.")
SIM_GRIPPER = typer.Option("linear_4310", "--sim-gripper", help="Gripper of a simulated arm (sim: channels).")


def parse_ids(text: str) -> list[int]:
    ids: list[int] = []
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            ids.extend(range(int(lo, 0), int(hi, 0) + 1) if hi else [int(lo, 0)])
    except ValueError:
        raise typer.BadParameter(f"--ids: expected e.g. '1-7' or '1,2,7', got '{text}'") from None
    if not ids or any(not 1 <= i <= 0x7FE for i in ids):
        raise typer.BadParameter(f"--ids: ids must be within 1..0x7FE, got '{text}'")
    return sorted(set(ids))


class _Bus:
    """Open the channel (starting a simulated arm for sim: channels) and clean up after."""

    def __init__(self, channel: str, interface: str, sim_gripper: str) -> None:
        try:
            import can  # noqa: F401
        except ImportError:
            fail("reflex can needs python-can: pip install 'reflex-runtime[can]'", 3)
        from reflex.can.bus import open_bus
        from reflex.can.sim.registry import is_sim_channel

        self.sim: Any = None
        self.owned = False
        if is_sim_channel(channel):
            from reflex.hardware.yam.sim import attach_or_start

            self.sim, self.owned = attach_or_start(channel, sim_gripper)
        try:
            self.bus = open_bus(channel, interface)
        except OSError as exc:
            self.close()
            fail(str(exc), 3, channel=channel)

    def close(self) -> None:
        if getattr(self, "bus", None) is not None:
            self.bus.shutdown()
        if self.sim is not None and self.owned:
            self.sim.stop()


@app.command()
def scan(
    channel: str = CHANNEL,
    interface: str = INTERFACE,
    ids: str = IDS,
    timeout_ms: float = typer.Option(20.0, "--timeout-ms", help="How long to wait for replies."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
    sim_gripper: str = SIM_GRIPPER,
) -> None:
    """List the motors that answer on CHANNEL (read-only). Exit 1 if none answers."""
    wanted = parse_ids(ids)
    handle = _Bus(channel, interface, sim_gripper)
    from reflex.can.scan import scan as run_scan

    try:
        motors = run_scan(handle.bus, wanted, timeout_ms / 1e3)
    finally:
        handle.close()
    missing = [i for i in wanted if i not in {m.esc_id for m in motors}]
    if as_json:
        typer.echo(json.dumps({"channel": channel, "motors": [m.as_dict() for m in motors], "missing": missing}))
    else:
        typer.echo(f"{channel}: {len(motors)} motor(s) answered" + (f"; no answer from {missing}" if missing else ""))
        columns = ("  id", "reply", "type    ", " position", " velocity", "  torque", "T mos", "T rot", " status")
        typer.echo(" ".join(columns))
        for m in motors:
            typer.echo(
                f"0x{m.esc_id:02X} 0x{m.mst_id:03X} {m.motor_type:<8} {m.position:9.4f} {m.velocity:9.4f} "
                f"{m.torque:8.3f} {m.t_mos:5d} {m.t_rotor:5d}  {m.status}"
            )
            for problem in m.problems:
                typer.echo(f"      warning: {problem}")
    if not motors:
        raise typer.Exit(1)


@app.command()
def watch(
    channel: str = CHANNEL,
    interface: str = INTERFACE,
    ids: str = IDS,
    hz: float = typer.Option(5.0, "--hz", min=0.1, max=100, help="Lines printed per second."),
    bus_rate: float = typer.Option(100.0, "--bus-rate", min=1, max=450, help="Refresh polls per second."),
    duration: float = typer.Option(0.0, "--duration", min=0, help="Stop after this many seconds (0: Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    sim_gripper: str = SIM_GRIPPER,
) -> None:
    """Print the live state of the motors on CHANNEL (read-only refresh polls)."""
    handle = _Bus(channel, interface, sim_gripper)
    from reflex.can.chain import ChainMotor, MotorChain
    from reflex.can.scan import identify
    from reflex.can.scan import scan as run_scan

    chain = None
    try:
        motors = run_scan(handle.bus, parse_ids(ids))
        if not motors:
            fail(f"{channel}: no motor answered", 1, as_json, channel=channel)
        chain_motors = [
            ChainMotor(
                f"motor {m.esc_id}",
                m.esc_id,
                identify((m.ranges["pmax"], m.ranges["vmax"], m.ranges["tmax"])),
                m.mst_id,
            )
            for m in motors
            if m.ranges
        ]
        chain = MotorChain(handle.bus, chain_motors, name=channel, rate_hz=bus_rate)
        chain.start()
        t0 = time.monotonic()
        while duration == 0 or time.monotonic() - t0 < duration:
            time.sleep(1.0 / hz)
            _print_state(chain, chain_motors, as_json, time.monotonic() - t0)
            if chain.fault is not None:
                fail(str(chain.fault), 1, as_json, channel=channel)
    except KeyboardInterrupt:
        pass
    finally:
        if chain is not None:
            chain.stop_thread()
        handle.close()


def _print_state(chain: Any, motors: list[Any], as_json: bool, t: float) -> None:
    from reflex.can.faults import status_text

    st = chain.state()
    if as_json:
        rows = [
            {
                "id": m.esc_id,
                "status": int(st.status[i]),
                "position": float(st.position[i]),
                "velocity": float(st.velocity[i]),
                "torque": float(st.torque[i]),
                "t_mos": int(st.t_mos[i]),
                "t_rotor": int(st.t_rotor[i]),
            }
            for i, m in enumerate(motors)
        ]
        stats = chain.stats.as_dict()
        typer.echo(json.dumps({"t": round(t, 3), "rate_hz": round(stats["rate_hz"], 1), "motors": rows}))
        return
    cells = []
    for i, m in enumerate(motors):
        flag = "" if st.status[i] == 0 else " " + status_text(st.status[i])
        cells.append(f"{m.esc_id}:{st.position[i]:+.3f}rad {st.t_mos[i]}C{flag}")
    cells_text = "  ".join(cells)
    typer.echo(f"{t:7.2f}s  {cells_text}")
