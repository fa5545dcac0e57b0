"""Loading a LeRobot checkpoint directory (as ``save_pretrained`` writes it) offline, on CPU torch.

Three traps of LeRobot 0.4.4 on this stack are handled here, once:

* PyPI's torchvision 0.28 is a CUDA build: on CPU torch its C ops do not load and ``import
  torchvision`` dies registering fake kernels for two ops nobody defined. Declaring those two
  op schemas first lets the pure-Python parts (ResNet, crops) import. Never done when the ops load.
* A path that does not exist is taken for a hub repo id, and a ``pretrained_backbone_weights``
  entry downloads ImageNet weights that the checkpoint then overwrites: the hub is switched off
  and the backbone entry cleared before building the model.
* ``from_pretrained`` loads with ``strict=False`` by default: we pass ``strict=True``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reflex.export import ExportError

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
PIPELINES = {"policy_preprocessor.json": "normalizer_processor", "policy_postprocessor.json": "unnormalizer_processor"}
SUPPORTED = ("act", "diffusion")
MAX_JSON_BYTES = 1 << 20
_shim: Any = None


def prepare_environment() -> None:
    """Hub off, torchvision importable on CPU torch. Call before importing lerobot."""
    global _shim
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.pop("LEROBOT_HOME", None)  # deprecated name: lerobot refuses to import with it set
    if _shim is not None or "torchvision" in sys.modules:
        return
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return
    libs = sorted(Path(next(iter(spec.submodule_search_locations))).glob("_C*.so"))
    try:
        for lib in libs:
            torch.ops.load_library(str(lib))
        return
    except OSError:
        pass
    _shim = torch.library.Library("torchvision", "DEF")  # kept alive: the schemas live with it
    _shim.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _shim.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


@dataclass
class LeRobotCheckpoint:
    path: Path
    policy_type: str
    config: Any
    policy: Any
    pre: Any
    post: Any
    sha256: str
    versions: dict[str, str]


def checkpoint_sha256(path: Path) -> str:
    """SHA-256 over the directory's files: sorted relative names and their contents."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def check_files(path: Path) -> str:
    """The checkpoint's policy type, after checking every file an export needs is there."""
    if not path.is_dir():
        raise ExportError(f"{path}: not a directory (give a LeRobot checkpoint saved with save_pretrained; "
                          "hub ids are not fetched)")
    config = _read_json(path / CONFIG, "the policy config")
    if not (path / WEIGHTS).is_file():
        raise ExportError(f"{path / WEIGHTS} not found (the policy weights)")
    for name, step in PIPELINES.items():
        pipeline = _read_json(path / name, "the pre/post-processor holding the normalisation statistics")
        steps = pipeline.get("steps") if isinstance(pipeline, dict) else None
        entry = next((s for s in steps or [] if isinstance(s, dict) and s.get("registry_name") == step), None)
        if entry is None:
            raise ExportError(f"{path / name}: has no '{step}' step (the normalisation statistics)")
        state_file = entry.get("state_file")
        if not isinstance(state_file, str) or not (path / state_file).is_file():
            raise ExportError(
                f"{path / str(state_file)} not found: the normalisation statistics of {name}. "
                "Save the checkpoint with the policy's pre/post-processors "
                "(preprocessor.save_pretrained(dir) and postprocessor.save_pretrained(dir))"
            )
    policy_type = config.get("type") if isinstance(config, dict) else None
    if policy_type not in SUPPORTED:
        raise ExportError(f"{path / CONFIG}: policy type {policy_type!r} is not supported; "
                          f"supported: {', '.join(SUPPORTED)}")
    return str(policy_type)


def load_checkpoint(path: Path) -> LeRobotCheckpoint:
    """Load policy and pipelines from ``path`` with LeRobot's own classes, offline and strictly."""
    policy_type = check_files(path)
    sha = checkpoint_sha256(path)
    prepare_environment()
    try:
        import lerobot
        import torch
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.factory import get_policy_class, make_pre_post_processors
    except ImportError as exc:
        raise ExportError(f"exporting needs LeRobot and torch: pip install 'reflex-runtime[export]' "
                          f"(see docs/export.md) ({exc})") from exc
    with contextlib.redirect_stdout(sys.stderr):  # LeRobot prints progress to stdout
        cfg = PreTrainedConfig.from_pretrained(str(path))
        if getattr(cfg, "pretrained_backbone_weights", None):
            cfg.pretrained_backbone_weights = None  # the checkpoint holds the trained backbone
        cfg.device = "cpu"
        policy = get_policy_class(cfg.type).from_pretrained(str(path), config=cfg, strict=True)
        policy.eval()
        pre, post = make_pre_post_processors(cfg, pretrained_path=str(path))
    import onnx

    versions = {"torch": torch.__version__, "lerobot": getattr(lerobot, "__version__", "?"),
                "onnx": onnx.__version__}
    return LeRobotCheckpoint(path, policy_type, cfg, policy, pre, post, sha, versions)


def normalizer_stats(ckpt: LeRobotCheckpoint) -> tuple[dict[str, dict[str, Any]], dict[str, str], float]:
    """(stats per feature as lists, normalisation mode per feature type, eps) from the pipelines."""
    step = next(s for s in ckpt.pre.steps if type(s).__name__ == "NormalizerProcessorStep")
    stats = {key: {k: v.detach().cpu().double().numpy().tolist() for k, v in values.items()}
             for key, values in step._tensor_stats.items()}
    post = next(s for s in ckpt.post.steps if type(s).__name__ == "UnnormalizerProcessorStep")
    for key, values in post._tensor_stats.items():
        stats.setdefault(key, {k: v.detach().cpu().double().numpy().tolist() for k, v in values.items()})
    modes = {str(getattr(k, "value", k)): str(getattr(v, "value", v)) for k, v in step.norm_map.items()}
    return stats, modes, float(step.eps)


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ExportError(f"{path} not found ({what})")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ExportError(f"{path}: larger than {MAX_JSON_BYTES} bytes")
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{path}: not valid JSON ({exc})") from exc
