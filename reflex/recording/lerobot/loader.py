"""LeRobot's own dataset loader, importable wherever the ``readers`` extra is installed.

``from reflex.recording.lerobot.loader import LeRobotDataset`` is LeRobot's class itself (from
``lerobot-dataset``'s ``ledataset``, or from a full ``lerobot`` install), after the two fixes a CPU
torch needs; nothing of the dataset format is reimplemented here:

* torchvision's wheels on PyPI are CUDA builds: on CPU torch their compiled ops do not load, and
  ``import torchvision`` then dies registering fake kernels for ``torchvision::nms``
  ("operator torchvision::nms does not exist"). Declaring those op schemas first lets the Python
  parts import; the loader uses no detection op.
* torchcodec decodes with FFmpeg shared libraries under their standard names (``libavutil.so.59``
  ...), which a machine may not have. Then video frames are decoded with PyAV, whose wheel carries
  FFmpeg (the recorder wrote the videos with it): the frames nearest the requested timestamps,
  LeRobot's tolerance check, float32 ``(N, C, H, W)`` in [0, 1], as LeRobot's decoders return.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

_shim_library: Any = None  # keeps the torchvision schema declarations alive


def torchvision_ops_load() -> bool:
    """Whether torchvision's compiled ops load on the installed torch (without importing it)."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    for lib in Path(next(iter(spec.submodule_search_locations))).glob("_C*.so"):
        try:
            torch.ops.load_library(str(lib))
            return True
        except (OSError, RuntimeError):
            return False
    return False


def declare_torchvision_ops() -> None:
    """Declare the op schemas torchvision's Python code registers fake kernels for."""
    global _shim_library
    if _shim_library is not None:
        return
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _shim_library = lib


def torchcodec_loads() -> bool:
    try:
        importlib.import_module("torchcodec.decoders")
    except Exception:  # torchcodec raises RuntimeError listing every FFmpeg it tried
        return False
    return True


def decode_video_frames_pyav(
    video_path: Path | str, timestamps: Sequence[float], tolerance_s: float, backend: str | None = None
) -> Any:
    """The frames of ``video_path`` nearest ``timestamps`` (seconds), as LeRobot returns them."""
    import av
    import numpy as np
    import torch

    first, last = min(timestamps), max(timestamps)
    frames: list[np.ndarray] = []
    times: list[float] = []
    with av.open(str(video_path)) as container:
        stream = container.streams.video[0]
        assert stream.time_base is not None
        container.seek(int(first / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base)
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(t)
            if t >= last:
                break
    if not frames:
        raise AssertionError(f"no frame decoded from {video_path} for timestamps {list(timestamps)}")
    query = np.asarray(timestamps, dtype=np.float64)
    loaded = np.asarray(times)
    nearest = np.abs(query[:, None] - loaded[None, :]).argmin(axis=1)
    error = np.abs(query - loaded[nearest])
    if not np.all(error < tolerance_s):
        raise AssertionError(
            f"query timestamps {query[error >= tolerance_s]} have no frame within {tolerance_s=} in {video_path}"
        )
    chosen = np.stack([frames[i] for i in nearest])
    return torch.from_numpy(chosen).permute(0, 3, 1, 2).contiguous().to(torch.float32) / 255


def _dataset_module() -> ModuleType:
    for name in ("ledataset.datasets.lerobot_dataset", "lerobot.datasets.lerobot_dataset"):
        if importlib.util.find_spec(name.split(".")[0]) is not None:
            return importlib.import_module(name)
    raise ImportError(
        "LeRobot's dataset loader is not installed: pip install torch==2.13.0 && pip install 'reflex-runtime[readers]'"
    )


def _prepare() -> ModuleType:
    if importlib.util.find_spec("torchvision") is not None and not torchvision_ops_load():
        declare_torchvision_ops()
    module = _dataset_module()
    if not torchcodec_loads():
        module.decode_video_frames = decode_video_frames_pyav  # type: ignore[attr-defined]
    return module


_module = _prepare()
LeRobotDataset = _module.LeRobotDataset
LeRobotDatasetMetadata = _module.LeRobotDatasetMetadata
