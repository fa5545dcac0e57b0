"""``reflex doctor``: is this machine ready to run a session? Every check says what it found and,
when it fails, the fix.

Checks: Python and package versions, installed extras, ONNX Runtime providers (and whether the
CUDA / TensorRT libraries they need load), CAN interfaces (present, up, bitrate), ``/dev/shm``
space, video devices, the clock source, whether the loop may run real-time. With a session file, also everything
``reflex connect --check`` probes, plus the CAN channels that file names.

Statuses: ``pass``; ``fail`` (exit 1); ``warn`` (works, but worth knowing; exit 0); ``info`` (an
optional part that is absent; exit 0).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reflex import __version__

if TYPE_CHECKING:
    from reflex.config.loop import RealtimeConfig

DIST = "reflex-runtime"
CORE = {"numpy": "numpy", "pydantic": "pydantic", "PyYAML": "yaml", "typer": "typer", "rich": "rich",
        "pillow": "PIL"}
# the two ONNX Runtime builds (extras `cpu` and `gpu`): both install the module `onnxruntime`
ORT_DISTS = ("onnxruntime", "onnxruntime-gpu")
ORT_EXTRAS = {"cpu": ORT_DISTS[0], "gpu": ORT_DISTS[1]}
# extra -> the modules it brings (present when all import)
EXTRAS = {
    "can": ["can"],
    "serve": ["aiohttp", "msgpack", "aiortc", "av", "simplejpeg"],
    "websocket": ["websockets", "msgpack"],
    "http": ["msgpack", "simplejpeg"],
    "webrtc": ["aiortc", "av", "aiohttp", "msgpack"],
    "video": ["av"],
    "mcap": ["mcap", "mcap_protobuf", "foxglove_schemas_protobuf"],
    "rerun": ["rerun"],
    "lerobot": ["pyarrow", "av"],
    "plots": ["matplotlib"],
    "tensorrt": ["tensorrt"],
    "export": ["onnx", "torch"],
}
# libraries the GPU execution providers load at session creation
GPU_LIBRARIES = {
    "CUDAExecutionProvider": ["libcudart.so.12", "libcublas.so.12", "libcudnn.so.9"],
    "TensorrtExecutionProvider": ["libnvinfer.so.10", "libnvinfer_plugin.so.10"],
}
ARPHRD_CAN = "280"
SHM_MIN_FREE = 256 * 2**20
GOOD_CLOCKS = ("tsc", "arch_sys_counter", "kvm-clock")


@dataclass
class Check:
    id: str
    name: str
    status: str  # pass | fail | warn | info
    found: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "status": self.status, "found": self.found, "fix": self.fix}


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def check_python() -> Check:
    v = sys.version_info
    found = f"Python {platform.python_version()} ({sys.executable}) on {platform.platform()}; reflex {__version__}"
    if v < (3, 10):
        return Check("python", "Python version", "fail", found, "install Python 3.10 or newer")
    return Check("python", "Python version", "pass", found)


def check_packages() -> Check:
    missing, found = [], []
    for dist, module in CORE.items():
        version = _version(dist) or _version(dist.lower())
        if version is None and not _available(module):
            missing.append(dist)
        else:
            found.append(f"{dist} {version or '(found)'}")
    if missing:
        return Check("packages", "core packages", "fail", "missing " + ", ".join(missing),
                     f"pip install {DIST} (it brings {', '.join(missing)})")
    return Check("packages", "core packages", "pass", ", ".join(found))


def check_extras() -> list[Check]:
    out = []
    for extra, dist in ORT_EXTRAS.items():  # same module, told apart by distribution
        if _version(dist) is None:
            out.append(Check(f"extra.{extra}", f"extra [{extra}]", "info", f"not installed (no {dist})",
                             f"pip install '{DIST}[{extra}]' if you need it (only one of cpu, gpu)"))
        else:
            out.append(Check(f"extra.{extra}", f"extra [{extra}]", "pass", "installed"))
    for extra, modules in EXTRAS.items():
        absent = [m for m in modules if not _available(m)]
        if absent:
            out.append(Check(f"extra.{extra}", f"extra [{extra}]", "info", f"not installed (no {', '.join(absent)})",
                             f"pip install '{DIST}[{extra}]' if you need it"))
        else:
            out.append(Check(f"extra.{extra}", f"extra [{extra}]", "pass", "installed"))
    return out


def _loadable(library: str) -> str | None:
    """None when ``library`` loads, else why not."""
    try:
        ctypes.CDLL(library)
        return None
    except OSError as exc:
        return str(exc).split(":")[-1].strip() or "not found"


def check_onnxruntime() -> list[Check]:
    if not _available("onnxruntime"):
        return [Check("ort", "ONNX Runtime", "fail", "onnxruntime is not installed",
                      f"pip install '{DIST}[cpu]' (or '{DIST}[gpu]' on an NVIDIA machine)")]
    installed = [d for d in ORT_DISTS if _version(d) is not None]
    if len(installed) > 1:
        return [Check("ort", "ONNX Runtime", "fail", "both onnxruntime and onnxruntime-gpu are installed: they "
                      "provide the same module and the one installed last wins",
                      "pip uninstall -y onnxruntime onnxruntime-gpu, then install one: "
                      f"pip install '{DIST}[cpu]' or '{DIST}[gpu]'")]
    import onnxruntime as ort

    providers = ort.get_available_providers()
    names = ", ".join(p.removesuffix("ExecutionProvider") for p in providers)
    out = [Check("ort", "ONNX Runtime", "pass", f"onnxruntime {ort.__version__}; providers {names}")]
    gpu = [p for p in providers if p in GPU_LIBRARIES]
    if not gpu:
        out.append(Check("ort.gpu", "GPU providers", "info", "CPU only (no CUDA or TensorRT provider in this build)",
                         f"on a machine with an NVIDIA GPU: pip install '{DIST}[gpu]'"))
    for provider in gpu:
        problems = [f"{lib}: {why}" for lib in GPU_LIBRARIES[provider] if (why := _loadable(lib)) is not None]
        short = provider.removesuffix("ExecutionProvider")
        if problems:
            out.append(Check(f"ort.{short.lower()}", f"{short} libraries", "fail", "; ".join(problems),
                             "install the CUDA 12 / cuDNN 9 / TensorRT 10 runtime libraries and put them on the "
                             "loader path (LD_LIBRARY_PATH); without them ONNX Runtime falls back to the CPU"))
        else:
            out.append(Check(f"ort.{short.lower()}", f"{short} libraries", "pass",
                             "loadable: " + ", ".join(GPU_LIBRARIES[provider])))
    return out


def can_interfaces(net: Path = Path("/sys/class/net")) -> dict[str, dict[str, Any]]:
    """CAN network interfaces: name -> {up, bitrate}."""
    found: dict[str, dict[str, Any]] = {}
    if not net.is_dir():
        return found
    for dev in sorted(net.iterdir()):
        try:
            if (dev / "type").read_text().strip() != ARPHRD_CAN:
                continue
            state = (dev / "operstate").read_text().strip()
            flags = int((dev / "flags").read_text().strip(), 16)
        except OSError:
            continue
        found[dev.name] = {"up": state == "up" or bool(flags & 0x1), "bitrate": _bitrate(dev.name)}
    return found


def _bitrate(name: str) -> int | None:
    ip = shutil.which("ip")
    if ip is None:
        return None
    try:
        out = subprocess.run([ip, "-details", "-json", "link", "show", "dev", name], capture_output=True,
                             text=True, timeout=5)
        info = json.loads(out.stdout)[0]["linkinfo"]["info_data"]
        return int(info["bittiming"]["bitrate"])
    except (OSError, ValueError, KeyError, IndexError, TypeError, subprocess.SubprocessError):
        return None


def check_can(wanted: list[str], present: dict[str, dict[str, Any]] | None = None) -> list[Check]:
    """Every CAN interface present; with a session file, the channels it names must be up."""
    present = can_interfaces() if present is None else present
    out = []
    for name, info in present.items():
        rate = f", {info['bitrate']} bit/s" if info["bitrate"] else ""
        if info["up"]:
            out.append(Check(f"can.{name}", f"CAN {name}", "pass", f"up{rate}"))
        else:
            status = "fail" if name in wanted else "warn"
            out.append(Check(f"can.{name}", f"CAN {name}", status, f"present but down{rate}",
                             f"sudo ip link set {name} up type can bitrate 1000000"))
    for name in wanted:
        if name not in present:
            out.append(Check(f"can.{name}", f"CAN {name}", "fail", "named by the session file but not present",
                             f"plug in the adapter and bring it up: sudo ip link set {name} up type can bitrate "
                             "1000000 (`ip link` lists the interfaces)"))
    if not present and not wanted:
        out.append(Check("can", "CAN interfaces", "info", "none present",
                         "only needed for CAN robots (YAM): connect the adapter, then "
                         "sudo ip link set can0 up type can bitrate 1000000"))
    return out


def check_shm(path: Path = Path("/dev/shm")) -> Check:
    if not path.is_dir():
        return Check("shm", "/dev/shm", "fail", "missing", "shared-memory cameras need /dev/shm (a tmpfs)")
    usage = shutil.disk_usage(path)
    found = f"{usage.free / 2**20:.0f} MiB free of {usage.total / 2**20:.0f} MiB"
    if usage.free < SHM_MIN_FREE:
        return Check("shm", "/dev/shm", "fail", found,
                     "make /dev/shm larger (docker: --shm-size=1g; else mount -o remount,size=1G /dev/shm)")
    if not os.access(path, os.W_OK):
        return Check("shm", "/dev/shm", "fail", found + ", not writable", "run as a user that can write /dev/shm")
    return Check("shm", "/dev/shm", "pass", found)


def check_video(dev: Path = Path("/dev")) -> Check:
    devices = sorted(str(p) for p in dev.glob("video*"))
    if not devices:
        return Check("video", "video devices", "info", "none (/dev/video*)",
                     "only needed for v4l2 cameras: plug in the camera (docker: --device /dev/video0)")
    unreadable = [d for d in devices if not os.access(d, os.R_OK | os.W_OK)]
    if unreadable:
        return Check("video", "video devices", "warn", f"{', '.join(devices)}; no access to {', '.join(unreadable)}",
                     "add yourself to the 'video' group: sudo usermod -aG video $USER (then log in again)")
    return Check("video", "video devices", "pass", ", ".join(devices))


def check_clock(base: Path = Path("/sys/devices/system/clocksource/clocksource0")) -> Check:
    info = time.get_clock_info("monotonic")
    resolution = f"monotonic resolution {info.resolution * 1e9:.0f} ns"
    try:
        current = (base / "current_clocksource").read_text().strip()
        available = (base / "available_clocksource").read_text().split()
    except OSError:
        return Check("clock", "clock source", "info", f"unknown on this system; {resolution}")
    found = f"{current} (available: {', '.join(available)}); {resolution}"
    if current not in GOOD_CLOCKS:
        better = next((c for c in GOOD_CLOCKS if c in available), None)
        fix = (f"echo {better} | sudo tee {base / 'current_clocksource'}" if better
               else "a slow clock source (hpet, acpi_pm) makes every timestamp costly; check the BIOS / kernel")
        return Check("clock", "clock source", "warn", found, fix)
    return Check("clock", "clock source", "pass", found)


REALTIME_FIX = ("give the runtime CAP_SYS_NICE (sudo setcap cap_sys_nice+ep on the real python3 binary; docker: "
                "--cap-add SYS_NICE) or an rtprio limit (/etc/security/limits.conf: @robot - rtprio 98); "
                "see docs/performance.md")


def check_realtime(config: RealtimeConfig | None = None) -> Check:
    """May the control loop run SCHED_FIFO (``loop.realtime``)? Tried once on this thread and
    undone. Without a session asking for it, the answer is information (the default priority)."""
    from reflex.config.loop import RealtimeConfig
    from reflex.errors import SetupError
    from reflex.runtime.realtime import RealtimeThread

    probe = RealtimeThread(config or RealtimeConfig(), warn=lambda _message: None)
    with contextlib.suppress(SetupError):  # required: true and refused: the reason is what matters
        probe.check()
    asked = probe.config
    assert asked is not None
    pinned = "" if asked.cpu is None else f" on CPU {asked.cpu}"
    if probe.granted:
        found = f"SCHED_FIFO priority {asked.priority}{pinned} allowed"
        return Check("realtime", "real-time loop", "pass" if config is not None else "info",
                     found + ("" if config is not None else " (loop.realtime not set)"))
    reason = probe.reason or "refused"
    if config is None:
        return Check("realtime", "real-time loop", "info", f"not allowed: {reason}", REALTIME_FIX)
    status = "fail" if asked.required else "warn"
    return Check("realtime", "real-time loop", status, f"loop.realtime refused: {reason}"
                 + ("" if asked.required else " (the loop would run in the normal class)"), REALTIME_FIX)


def _session_channels(config: Any) -> list[str]:
    """Real CAN interfaces a session file names (``sim:`` channels are simulated)."""
    channels: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "channel" and isinstance(value, str) and not value.startswith("sim:"):
                    channels.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config.hardware.model_dump(mode="json"))
    return channels


def run_doctor(config_path: Path | None = None, api_key: str | None = None) -> dict[str, Any]:
    """Every check (and, with a session file, its ``--check`` rows); exit code 0 or 1."""
    checks: list[Check] = [check_python(), check_packages(), *check_extras(), *check_onnxruntime()]
    session: dict[str, Any] | None = None
    channels: list[str] = []
    realtime: RealtimeConfig | None = None
    if config_path is not None:
        from reflex.config.loader import load_session_config
        from reflex.errors import ConfigError
        from reflex.runtime.check import check_session_file

        try:
            loaded = load_session_config(config_path)
            channels = _session_channels(loaded)
            realtime = loaded.loop.realtime
            session = check_session_file(config_path, api_key=api_key)
        except ConfigError as exc:
            problems = "; ".join(str(i) for i in exc.issues)
            checks.append(Check("session.config", "session file", "fail", problems,
                                f"fix {config_path} (see docs/config-reference.md)"))
    checks += [*check_can(channels), check_shm(), check_video(), check_clock(), check_realtime(realtime)]
    if session is not None:
        seen: set[str] = set()
        for item in session["items"]:
            status = {"ok": "pass", "fail": "fail"}.get(item["status"], "info")
            ident = f"session.{item['item']}"
            if ident in seen:  # the second "target" row: the target against the robot found
                ident += ".fit"
            seen.add(ident)
            checks.append(Check(ident, f"session {item['item']}", status, item["detail"],
                                _session_fix(item) if status == "fail" else ""))
    failed = [c for c in checks if c.status == "fail"]
    return {
        "ok": not failed,
        "exitCode": 1 if failed else 0,
        "reflexVersion": __version__,
        "config": None if config_path is None else str(config_path),
        "checks": [c.as_dict() for c in checks],
        "failed": [c.id for c in failed],
    }


def _session_fix(item: dict[str, str]) -> str:
    name, detail = item["item"], item["detail"]
    if name == "target":
        if "unreachable" in detail:
            return "start the server (e.g. `reflex serve EXPORT_DIR`) or fix target.url; then run doctor again"
        return "use an export that fits this robot, or fix the hardware block (names, joints, cameras)"
    if name == "hardware":
        if "CAN" in detail or "channel" in detail:
            return "power the arms, connect the CAN adapter and bring it up (see the CAN rows above)"
        return "check the robot is powered and reachable; `reflex connect FILE --check -v` shows driver logs"
    if name.startswith("cameras."):
        if "publish" in detail:
            return detail[detail.index("start a publisher"):] if "start a publisher" in detail else \
                "start the camera's publisher: reflex camera publish NAME --source ..."
        return "make the camera (or the connector) deliver frames of the declared size"
    if name == "record":
        return "choose a writable record.dir with free space, or install the format's extra"
    return "see the detail"
