#!/usr/bin/env python3
"""A simulated bimanual arm speaking the Reflex connector contract v1, persistent protocol.

Standard library only, so it runs under any ``python3``: copy it and replace the ``SimArm``
class with calls into your robot's SDK. Protocol (docs/connector-contract.md): read one JSON
request per line on stdin, write exactly one JSON reply line per request on stdout (echoing
``id``), log to stderr only.

    python3 connectors/sim_arm.py [--no-camera] [--time-constant 0.05] [--outcomes success,failure]

It also answers the optional ``reset`` request between episodes (``can_reset``): the arm is put
back home, and ``--outcomes`` (cycled per episode) stands in for a success detector.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import struct
import sys
import time
import zlib
from typing import Any

ARM = ["joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "gripper"]
NAMES = [f"{side}_{joint}" for side in ("left", "right") for joint in ARM]
ARM_LOWER = [-2.61799, 0.0, 0.0, -1.69297, -1.5708, -2.0944, 0.0]
ARM_UPPER = [3.14159, 3.66519, 3.14159, 1.5708, 1.5708, 2.0944, 1.0]
LOWER = ARM_LOWER * 2
UPPER = ARM_UPPER * 2
HOME = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0] * 2
CAMERA_W, CAMERA_H = 128, 96
CAMERA = {"name": "top", "width": CAMERA_W, "height": CAMERA_H}
MAX_VELOCITY = 3.0  # joint units per second


def log(message: str) -> None:
    print(f"sim_arm: {message}", file=sys.stderr, flush=True)


class SimArm:
    """First-order joint dynamics towards the command, with a speed limit and hard stops."""

    def __init__(self, time_constant_s: float) -> None:
        self.q = list(HOME)
        self.command: list[float] | None = None
        self.enabled = False
        self.tau = time_constant_s
        self.t = time.monotonic()

    def advance(self, now: float) -> None:
        dt = now - self.t
        self.t = now
        target = self.command
        if dt <= 0 or target is None or not self.enabled:
            return
        alpha = 1.0 - math.exp(-dt / self.tau)
        limit = MAX_VELOCITY * dt
        for i, goal in enumerate(target):
            step = max(-limit, min(limit, (goal - self.q[i]) * alpha))
            self.q[i] = max(LOWER[i], min(UPPER[i], self.q[i] + step))

    def hold(self) -> None:
        self.command = list(self.q)


def render_png(q: list[float], width: int, height: int) -> bytes:
    """Joint bars (left arm blue, right arm orange), like Reflex's sim camera, as a PNG file."""
    n = len(q)
    bar_w = max(1, width // n)
    tops = []
    for i, value in enumerate(q):
        span = UPPER[i] - LOWER[i] or 1.0
        level = min(1.0, max(0.0, (value - LOWER[i]) / span))
        tops.append(height - round(level * (height - 1)) - 1)
    background = bytes([24, 24, 24])
    colours = [bytes([60, 120, 230]) if i < n // 2 else bytes([240, 150, 40]) for i in range(n)]
    pad = background * (width - n * bar_w)
    rows = []
    for row in range(height):
        parts = []
        for i in range(n):
            lit = row >= tops[i]
            parts.append((colours[i] if lit else background) * max(1, bar_w - 1))
            parts.append(background * (bar_w - max(1, bar_w - 1)))
        rows.append(b"\x00" + b"".join(parts) + pad)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 1)) + chunk(b"IEND", b""))


class Connector:
    def __init__(self, arm: SimArm, camera: bool, outcomes: list[str] | None = None) -> None:
        self.arm = arm
        self.camera = camera
        self.outcomes = outcomes or []
        self._png_cache: tuple[tuple[int, ...], str] | None = None

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.get("op")
        now = time.monotonic()
        self.arm.advance(now)
        if op == "hello":
            if req.get("v") != 1:
                raise ValueError(f"this connector speaks contract v1, Reflex sent v{req.get('v')}")
            log(f"hello from Reflex {req.get('reflex_version')} ({req.get('mode')})")
            return {
                "v": 1, "robot": "sim_arm", "state_names": NAMES, "lower": LOWER, "upper": UPPER,
                "cameras": [CAMERA] if self.camera else [], "can_apply": True,
                "can_reset": True,
            }
        if op == "observe":
            reply: dict[str, Any] = {"state": [round(v, 9) for v in self.arm.q], "timestamp": now}
            if self.camera:
                reply["images"] = {"top": {"encoding": "png", "data": self._image(), "timestamp": now}}
            return reply
        if op == "enable":
            self.arm.hold()  # take over where the arm is: never jump on enable
            self.arm.enabled = True
            return {"ok": True}
        if op == "apply":
            self.arm.command = list(req["action"])
            return {"ok": True}
        if op == "safe_stop":
            log(f"safe stop at step {req.get('step')}: {req.get('reason')}")
            self.arm.hold()
            self.arm.enabled = False
            return {"ok": True}
        if op == "reset":  # between episodes: the arm's own controller puts it home
            self.arm.q = list(HOME)
            self.arm.hold()
            reply = {"ok": True}
            if self.outcomes:
                reply["outcome"] = self.outcomes[req["episode"] % len(self.outcomes)]
            log(f"reset after episode {req['episode']}")
            return reply
        if op == "close":
            return {"ok": True}
        raise ValueError(f"unknown op {op!r}")

    def _image(self) -> str:
        key = tuple(int(v * 200) for v in self.arm.q)  # re-encode only when a bar visibly moves
        if self._png_cache is None or self._png_cache[0] != key:
            png = render_png(self.arm.q, CAMERA_W, CAMERA_H)
            self._png_cache = (key, base64.b64encode(png).decode("ascii"))
        return self._png_cache[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-camera", action="store_true", help="Do not declare/send camera 'top'.")
    parser.add_argument("--time-constant", type=float, default=0.05, help="Joint lag in seconds.")
    parser.add_argument("--outcomes", default="", help="Comma-separated outcomes reset replies report.")
    args = parser.parse_args()
    outcomes = [o for o in args.outcomes.split(",") if o]
    connector = Connector(SimArm(args.time_constant), camera=not args.no_camera, outcomes=outcomes)
    for line in sys.stdin:
        if not line.strip():
            continue
        req_id, op = None, None
        try:
            req = json.loads(line)
            req_id, op = req.get("id"), req.get("op")
            reply = connector.handle(req)
        except Exception as exc:  # report, keep serving: Reflex decides what an error means
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        reply["id"] = req_id
        sys.stdout.write(json.dumps(reply, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        if op == "close":
            break
    log("bye")
    return 0


if __name__ == "__main__":
    sys.exit(main())
