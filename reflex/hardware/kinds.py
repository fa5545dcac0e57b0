"""The built-in hardware kinds. A new kind adds its spec class here."""

from __future__ import annotations

from reflex.hardware.base import HardwareSpec
from reflex.hardware.replay.config import ReplayHardwareSpec
from reflex.hardware.sim.config import SimHardwareSpec
from reflex.hardware.subprocess.config import SubprocessHardwareSpec
from reflex.hardware.yam.config import YamBimanualSpec

BUILTIN_HARDWARE: list[type[HardwareSpec]] = [SimHardwareSpec]
BUILTIN_HARDWARE.append(SubprocessHardwareSpec)
BUILTIN_HARDWARE.append(YamBimanualSpec)
BUILTIN_HARDWARE.append(ReplayHardwareSpec)
