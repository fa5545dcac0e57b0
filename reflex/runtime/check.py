"""``reflex connect --check``: probe everything that can be probed without moving anything.

One row per item, each with what was found:

- ``config``: the file is valid;
- ``target``: built and connected (an export loaded, a remote server reached and its metadata
  read), then compared with the robot (one rule: :mod:`reflex.runtime.target_fit`);
- ``hardware``: connected read-only and one state read (CAN channels opened and every motor's
  status read, a subprocess connector asked for one observation); never enabled, never applied,
  never homed: ``connect`` and ``read_state`` are what ``dry_run`` calls;
- ``cameras.NAME``: every declared camera (configured, or brought by the hardware) delivers a
  frame: its size and age;
- ``record``: the recording directory can be written, how much space is free, each format's
  library imports.

Every wait is bounded by the config: a camera's first frame by ``safety.first_chunk_timeout_s``,
an shm publisher by the camera's ``wait_s``, a connector by its command timeouts, a remote target by
its connect timeout. Anything unreachable makes the check fail with exit code 3 (``EXIT_SETUP``).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reflex.config.base import BuildContext
from reflex.errors import EXIT_OK, EXIT_SETUP
from reflex.ports import Camera, CameraProvider, Hardware, TargetInfo
from reflex.recording.formats import FORMATS
from reflex.runtime.target_fit import RobotSide, describe, target_mismatches

FRAME_POLL_S = 0.01
MIN_FREE_BYTES = 512 * 2**20  # less free space than this is reported as a failure


@dataclass
class Item:
    item: str
    status: str  # ok | fail | skip
    detail: str

    def as_dict(self) -> dict[str, str]:
        return {"item": self.item, "status": self.status, "detail": self.detail}


def _error(exc: BaseException) -> str:
    text = str(exc)
    return text if type(exc).__name__ in ("SetupError", "ConfigError") else f"{type(exc).__name__}: {text}"


class Probe:
    def __init__(self, config: Any, path: Path, api_key: str | None) -> None:
        self.config = config
        self.path = path
        # dry_run whatever the file says: nothing here may prepare motion
        self.ctx = BuildContext(
            config_dir=path.resolve().parent, mode="dry_run", control_rate_hz=config.control_rate_hz,
            api_key=api_key,
        )
        self.items: list[Item] = [Item("config", "ok", f"valid ({config.mode}, {config.control_rate_hz:g} Hz)")]
        self.info: TargetInfo | None = None
        self.hardware: Hardware | None = None
        self.cameras: dict[str, Camera] = {}

    def add(self, item: str, status: str, detail: str) -> None:
        self.items.append(Item(item, status, detail))

    # -- target ------------------------------------------------------------------------------
    def target(self) -> None:
        try:
            target = self.config.target.build(self.ctx)
        except Exception as exc:
            self.add("target", "fail", _error(exc))
            return
        try:
            self.info = target.connect()
            self.add("target", "ok", describe(self.info))
        except Exception as exc:
            self.add("target", "fail", f"{self.config.target.kind}: unreachable: {_error(exc)}")
        finally:
            with contextlib.suppress(Exception):
                target.close()

    # -- hardware ----------------------------------------------------------------------------
    def hardware_probe(self) -> None:
        cfg = self.config
        try:
            hardware = cfg.hardware.build(self.ctx)
            self.ctx.hardware = hardware
            hardware.connect()  # read-only by contract: no torque, no motion
        except Exception as exc:
            self.add("hardware", "fail", f"{cfg.hardware.kind}: {_error(exc)}")
            return
        self.hardware = hardware
        try:
            state = hardware.read_state()
        except Exception as exc:
            self.add("hardware", "fail", f"{cfg.hardware.kind}: connected, but reading the state failed: {_error(exc)}")
            return
        layout = hardware.layout
        age_ms = (time.monotonic() - state.t_capture) * 1e3
        position = ", ".join(f"{v:+.3f}" for v in state.position)
        note = _motor_note(state)
        self.add("hardware", "fail" if "IN FAULT" in note else "ok",
                 f"{cfg.hardware.kind}: {layout.dim} joints read {age_ms:.0f} ms ago ({position}){note}")
        if isinstance(hardware, CameraProvider):
            with contextlib.suppress(Exception):
                self.cameras.update(hardware.cameras())

    # -- cameras -----------------------------------------------------------------------------
    def cameras_probe(self) -> None:
        cfg = self.config
        provided = set(self.cameras)
        started: dict[str, Camera] = {}
        for name, spec in cfg.cameras.items():
            try:
                camera = spec.build(name, self.ctx)
                camera.start()
            except Exception as exc:
                self.add(f"cameras.{name}", "fail", f"{spec.kind}: {_error(exc)}")
                continue
            started[name] = camera
            self.cameras[name] = camera
        deadline = time.monotonic() + cfg.safety.first_chunk_timeout_s
        try:
            for name, camera in self.cameras.items():
                spec = cfg.cameras.get(name)
                origin = "from the hardware" if name in provided else (spec.kind if spec is not None else "")
                frame = self._first_frame(camera, name in provided, deadline)
                if frame is None:
                    why = ("the hardware's observation did not carry it" if name in provided else
                           f"no frame within safety.first_chunk_timeout_s ({cfg.safety.first_chunk_timeout_s:g} s)")
                    self.add(f"cameras.{name}", "fail", f"{origin}: declared but never sent: {why}")
                    continue
                h, w = frame.image.shape[:2]
                age_ms = (time.monotonic() - frame.t_capture) * 1e3
                detail = f"{origin}: {w}x{h} frame, {age_ms:.0f} ms old"
                expected = (getattr(spec, "width", None), getattr(spec, "height", None))
                if (expected[0] is not None and expected[0] != w) or (expected[1] is not None and expected[1] != h):
                    self.add(f"cameras.{name}", "fail", f"{detail}; the config expects {expected[0]}x{expected[1]}")
                else:
                    self.add(f"cameras.{name}", "ok", detail)
        finally:
            for camera in started.values():
                with contextlib.suppress(Exception):
                    camera.stop()

    def _first_frame(self, camera: Camera, provided: bool, deadline: float) -> Any:
        while True:
            frame = camera.latest()
            if frame is not None:
                return frame
            if provided and self.hardware is not None:
                # a connector's cameras arrive with its observations: ask for one more (read-only)
                with contextlib.suppress(Exception):
                    self.hardware.read_state()
                frame = camera.latest()
                return frame
            if time.monotonic() >= deadline:
                return None
            time.sleep(FRAME_POLL_S)

    # -- target against the robot --------------------------------------------------------------
    def fit(self) -> None:
        if self.info is None:
            return
        layout = self.hardware.layout if self.hardware is not None else self.config.hardware.layout()
        # every declared camera counts here: one that failed has its own row already
        cameras = set(self.cameras) | set(self.config.cameras) if self.hardware is not None else None
        robot = RobotSide(layout.names if layout is not None else None, cameras, layout=layout)
        problems = target_mismatches(self.info, robot)
        # a second "target" row: what the target declares against the robot that was found
        if problems:
            self.add("target", "fail", "; ".join(problems))
        elif layout is not None:
            self.add("target", "ok", f"policy fits the robot's {layout.dim} joints"
                     + (f" and cameras {', '.join(sorted(cameras))}" if cameras else ""))

    # -- recording -----------------------------------------------------------------------------
    def record(self, record_dir: str | None, no_record: bool) -> None:
        cfg = self.config
        if no_record or not cfg.record.enabled:
            self.add("record", "skip", "recording off")
            return
        missing = []
        for name in cfg.record.formats:
            module = FORMATS[name].partition(":")[0]
            try:
                importlib.import_module(module)
            except ImportError as exc:
                missing.append(f"format '{name}' unavailable ({exc}); install its extra")
        explicit = record_dir or cfg.record.dir
        if explicit:
            where = Path(explicit).expanduser().resolve()
        else:
            root = os.environ.get("REFLEX_RECORDINGS_DIR")
            where = Path(root).expanduser() if root else Path.home() / ".reflex" / "recordings"
        existing = where
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not os.access(existing, os.W_OK):
            self.add("record", "fail", f"{where}: {existing} is not writable")
            return
        free = shutil.disk_usage(existing).free
        detail = (f"{', '.join(cfg.record.formats)} into {where}" + ("" if where.exists() else " (will be created)")
                  + f"; {free / 2**30:.1f} GiB free")
        if missing:
            self.add("record", "fail", detail + "; " + "; ".join(missing))
        elif free < MIN_FREE_BYTES:
            self.add("record", "fail", detail + f"; less than {MIN_FREE_BYTES // 2**20} MiB free")
        else:
            self.add("record", "ok", detail)

    def close(self) -> None:
        if self.hardware is not None:
            with contextlib.suppress(Exception):
                self.hardware.close()


def _motor_note(state: Any) -> str:
    """Motor status words read from the bus (CAN robots report them in the state's extras)."""
    statuses = (getattr(state, "extras", None) or {}).get("status")
    if not isinstance(statuses, list) or not statuses:
        return ""
    from collections import Counter

    from reflex.can.faults import MotorStatus, is_fault, status_text

    def label(code: int) -> str:
        try:
            return status_text(MotorStatus(code))
        except ValueError:
            return status_text(code)

    counts = Counter(int(s) for s in statuses)
    faults = sum(n for code, n in counts.items() if is_fault(code))
    summary = ", ".join(f"{n} {label(code)}" for code, n in sorted(counts.items()))
    return f"; {len(statuses)} motors answered: {summary}" + (f"; {faults} IN FAULT" if faults else "")


def check_session_file(
    path: Path, api_key: str | None = None, record_dir: str | None = None, no_record: bool = False
) -> dict[str, Any]:
    """Probe the session's parts read-only; raises ConfigError when the file itself is invalid."""
    from reflex.config.loader import load_session_config

    config = load_session_config(path)
    probe = Probe(config, path, api_key)
    try:
        probe.target()
        probe.hardware_probe()
        probe.cameras_probe()
        probe.fit()
    finally:
        probe.close()
    probe.record(record_dir, no_record)
    items = probe.items
    errors = [f"{i.item}: {i.detail}" for i in items if i.status == "fail"]
    checks: dict[str, str] = {}
    for i in items:  # the first row of each item (a second "target" row is the fit)
        checks.setdefault(i.item, i.detail)
    return {
        "ok": not errors,
        "config": str(path),
        "mode": config.mode,
        "items": [i.as_dict() for i in items],
        "checks": checks,
        "errors": errors,
        "exitCode": EXIT_OK if not errors else EXIT_SETUP,
    }
