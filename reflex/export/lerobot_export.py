"""``reflex export CHECKPOINT --out DIR`` for LeRobot ACT and Diffusion Policy checkpoints.

The graph covers what the policy's ``nn.Module`` computes: normalised state and images in,
normalised actions out. Normalisation goes into ``reflex_config.json`` and is applied by Reflex
with LeRobot's formulas. The parity gate then compares, on seeded fixtures, LeRobot's whole
pipeline in torch (its pre-processor, the policy, its post-processor) with the export as a
session runs it (:class:`OnnxPolicy`), and refuses to write the export when they differ.

Diffusion Policy's denoising loop is unrolled over its fixed timesteps with the initial noise as
an input (and, for DDPM, the per-step noise as a second input), so a run is a pure function of
its inputs: seeded, reproducible, replayable.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reflex import __version__
from reflex.export import ExportError, ParityError
from reflex.export.lerobot_source import LeRobotCheckpoint, load_checkpoint, normalizer_stats
from reflex.export.parity import Fixtures, compare, make_fixtures, run_fixtures
from reflex.targets.export_manifest import (
    MANIFEST_NAME,
    ExportManifest,
    Parity,
    Provenance,
    write_manifest,
)

OPSET = 18
STATE_KEY = "observation.state"
IMAGE_PREFIX = "observation.images."
SEED = 0


@dataclass
class ExportOptions:
    threshold: float = 1e-4
    fixtures: int = 5
    action_dt_s: float = 1 / 30
    name: str | None = None
    state_names: list[str] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)
    units: list[str] | None = None
    gripper_ranges: dict[str, list[float]] = field(default_factory=dict)
    seed: int = SEED


@dataclass
class ExportReport:
    out: Path
    manifest: ExportManifest
    export_s: float
    parity_s: float
    total_s: float


def export_lerobot(source: Path, out: Path, options: ExportOptions) -> ExportReport:
    """Export, gate, write. Raises ExportError (bad input) or ParityError (gate failed)."""
    t0 = time.perf_counter()
    ckpt = load_checkpoint(source)
    builder = _ActGraph(ckpt) if ckpt.policy_type == "act" else _DiffusionGraph(ckpt)
    manifest = builder.manifest(options)
    staging = Path(tempfile.mkdtemp(prefix=".reflex-export-", dir=out.parent if out.parent.is_dir() else None))
    try:
        t1 = time.perf_counter()
        builder.export_onnx(staging / manifest.model_file)
        write_manifest(staging, manifest)
        export_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        fixtures = make_fixtures(manifest, options.fixtures, options.seed)
        fixtures.reference = np.stack([builder.reference(fixtures, i) for i in range(len(fixtures))])
        parity = gate(staging, manifest, fixtures, options.threshold,
                      f"LeRobot {ckpt.versions['lerobot']} pre-processor + {ckpt.policy_type} policy + "
                      f"post-processor, torch {ckpt.versions['torch']} CPU")
        parity_s = time.perf_counter() - t2
        manifest = manifest.model_copy(update={"parity": parity})
        write_manifest(staging, manifest)
        _place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportReport(out, manifest, export_s, parity_s, time.perf_counter() - t0)


def gate(export_dir: Path, manifest: ExportManifest, fixtures: Fixtures, threshold: float, reference: str) -> Parity:
    """Run the fixtures through the export as a session would; raise ParityError over threshold."""
    from reflex.policy.onnx_policy import OnnxPolicy

    assert fixtures.reference is not None
    fixture_path = export_dir / "fixtures" / "fixtures.npz"
    fixtures.save(fixture_path)
    policy = OnnxPolicy(export_dir, providers=["cpu"])
    results = compare(fixtures.reference, run_fixtures(policy, fixtures))
    worst = max(r.max_abs for r in results)
    parity = Parity(threshold=threshold, fixtures_file="fixtures/fixtures.npz", reference=reference,
                    providers=list(policy.providers), max_abs=worst, results=results)
    if not worst <= threshold:
        lines = ", ".join(f"#{r.fixture} {r.max_abs:.3g}" for r in results)
        raise ParityError(f"parity gate failed: max_abs {worst:.3g} > threshold {threshold:g} ({lines}); "
                          "nothing was written")
    return parity


def _place(staging: Path, out: Path) -> None:
    """Move the finished export into ``out`` (refusing to mix it into an unrelated directory)."""
    if out.exists():
        if not out.is_dir():
            raise ExportError(f"{out}: exists and is not a directory")
        if any(out.iterdir()) and not (out / MANIFEST_NAME).is_file():
            raise ExportError(f"{out}: not empty and not an export; choose an empty or new directory")
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging), str(out))


# -- graphs ----------------------------------------------------------------------------------------
class _Graph:
    """What both policies share: features, manifest, export and the LeRobot reference."""

    def __init__(self, ckpt: LeRobotCheckpoint) -> None:
        self.ckpt = ckpt
        cfg = ckpt.config
        if getattr(cfg, "env_state_feature", None) is not None:
            raise ExportError(f"{ckpt.path}: policies with observation.environment_state are not supported yet")
        if cfg.robot_state_feature is None:
            raise ExportError(f"{ckpt.path}: the policy has no {STATE_KEY} input; Reflex feeds the joint state")
        self.state_dim = int(cfg.robot_state_feature.shape[0])
        self.action_dim = int(cfg.action_feature.shape[0])
        self.image_keys = list(cfg.image_features)
        self.cameras = [_camera_name(k) for k in self.image_keys]
        self.stats, self.modes, self.eps = normalizer_stats(ckpt)

    history = 1
    chunk_length = 0

    def noise_inputs(self) -> list[dict[str, Any]]:
        return []

    def manifest(self, options: ExportOptions) -> ExportManifest:
        cfg = self.ckpt.config
        inputs: list[dict[str, Any]] = [{"name": "state", "role": "state", "history": self.history}]
        for key, camera in zip(self.image_keys, self.cameras, strict=True):
            _, h, w = cfg.image_features[key].shape
            inputs.append({"name": f"image_{camera}", "role": "image", "camera": camera, "height": int(h),
                           "width": int(w), "history": self.history})
        inputs += self.noise_inputs()
        images = {cam: s for key, cam in zip(self.image_keys, self.cameras, strict=True)
                  if (s := self._stats(key, "VISUAL")) is not None}
        for cam, s in images.items():
            for k in ("mean", "std", "min", "max"):
                if s.get(k) is not None:
                    s[k] = list(np.asarray(s[k], dtype=np.float64).reshape(-1))
            values = s.get("mean") if s.get("mean") is not None else s.get("min")
            if values is None or len(values) != 3:
                raise ExportError(f"{self.ckpt.path}: image stats of '{cam}' are not per-channel (3 values)")
        return ExportManifest.model_validate({
            "name": options.name or f"lerobot-{self.ckpt.policy_type}-{self.ckpt.path.name}",
            "description": f"LeRobot {self.ckpt.policy_type} policy exported by reflex export.",
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "chunk_length": self.chunk_length,
            "action_dt_s": options.action_dt_s,
            "state_names": options.state_names,
            "action_names": options.action_names,
            "inputs": inputs,
            "output": "actions",
            "normalization": {"state": self._stats(STATE_KEY, "STATE"), "action": self._stats("action", "ACTION"),
                              "images": images},
            "action_semantics": {"kind": "absolute", "units": options.units,
                                 "gripper_ranges": options.gripper_ranges},
            "seed": options.seed if self.noise_inputs() else None,
            "provenance": Provenance(
                source_kind="lerobot", source=str(self.ckpt.path), policy_type=self.ckpt.policy_type,
                checkpoint_sha256=self.ckpt.sha256, exporter=f"reflex {__version__}", opset=OPSET,
                versions=self.ckpt.versions,
            ).model_dump(),
        })

    def _stats(self, key: str, feature_type: str) -> dict[str, Any] | None:
        mode = self.modes.get(feature_type, "IDENTITY")
        values = self.stats.get(key)
        if mode == "IDENTITY" or values is None:
            return None
        if mode == "MEAN_STD":
            return {"mode": "mean_std", "mean": _flat(values["mean"]), "std": _flat(values["std"]), "eps": self.eps}
        bounds = {"MIN_MAX": ("min", "max"), "QUANTILES": ("q01", "q99"), "QUANTILE10": ("q10", "q90")}.get(mode)
        if bounds is None or any(b not in values for b in bounds):
            raise ExportError(f"{self.ckpt.path}: normalisation mode {mode} of {key} is not supported "
                              f"or its statistics are missing")
        return {"mode": "min_max", "min": _flat(values[bounds[0]]), "max": _flat(values[bounds[1]]), "eps": self.eps}

    # the module exported and the LeRobot reference
    def module(self) -> Any:
        raise NotImplementedError

    def example_inputs(self) -> tuple[Any, ...]:
        import torch

        gen = torch.Generator().manual_seed(0)
        lead = (1, self.history) if self.history > 1 else (1,)
        args = [torch.randn(*lead, self.state_dim, generator=gen)]
        for key in self.image_keys:
            args.append(torch.rand(*lead, *self.ckpt.config.image_features[key].shape, generator=gen))
        return tuple(args)

    def input_names(self) -> list[str]:
        return ["state", *[f"image_{c}" for c in self.cameras], *[n["name"] for n in self.noise_inputs()]]

    def export_onnx(self, path: Path) -> None:
        import torch

        module = self.module().eval()
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                module, self.example_inputs(), str(path), input_names=self.input_names(), output_names=["actions"],
                opset_version=OPSET, dynamo=True, external_data=False, optimize=True, verbose=False,
            )

    def lerobot_batch(self, fixtures: Fixtures, i: int) -> dict[str, Any]:
        """LeRobot's pre-processor on fixture ``i`` (raw state, uint8 images -> float [0, 1])."""
        import torch

        obs: dict[str, Any] = {STATE_KEY: torch.from_numpy(fixtures.state[i].astype(np.float32))}
        for key, camera in zip(self.image_keys, self.cameras, strict=True):
            pixels = fixtures.images[camera][i].astype(np.float32) / np.float32(255.0)
            obs[key] = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        with torch.no_grad():
            return dict(self.ckpt.pre(obs))

    def reference(self, fixtures: Fixtures, i: int) -> np.ndarray:
        raise NotImplementedError


class _ActGraph(_Graph):
    def __init__(self, ckpt: LeRobotCheckpoint) -> None:
        super().__init__(ckpt)
        self.chunk_length = int(ckpt.config.chunk_size)

    def module(self) -> Any:
        import torch

        model = self.ckpt.policy.model

        class ActCore(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, state: Any, *images: Any) -> Any:
                batch = {STATE_KEY: state}
                if images:
                    batch["observation.images"] = list(images)
                return self.model(batch)[0]

        return ActCore()

    def reference(self, fixtures: Fixtures, i: int) -> np.ndarray:
        import torch

        batch = self.lerobot_batch(fixtures, i)
        with torch.no_grad():
            chunk = self.ckpt.policy.predict_action_chunk(batch)
            out = self.ckpt.post(chunk)
        return np.asarray(out[0].double().numpy())


class _DiffusionGraph(_Graph):
    def __init__(self, ckpt: LeRobotCheckpoint) -> None:
        super().__init__(ckpt)
        cfg = ckpt.config
        self.history = int(cfg.n_obs_steps)
        self.horizon = int(cfg.horizon)
        self.chunk_length = int(cfg.n_action_steps)
        model = ckpt.policy.diffusion
        self.scheduler = model.noise_scheduler
        self.kind = type(self.scheduler).__name__
        if self.kind not in ("DDPMScheduler", "DDIMScheduler"):
            raise ExportError(f"{ckpt.path}: noise scheduler {self.kind} is not supported")
        self.scheduler.set_timesteps(model.num_inference_steps)
        self.timesteps = [int(t) for t in self.scheduler.timesteps]

    def noise_inputs(self) -> list[dict[str, Any]]:
        inputs = [{"name": "noise", "role": "noise", "shape": [self.horizon, self.action_dim]}]
        if self.kind == "DDPMScheduler":
            inputs.append({"name": "step_noise", "role": "noise",
                           "shape": [len(self.timesteps), self.horizon, self.action_dim]})
        return inputs

    def example_inputs(self) -> tuple[Any, ...]:
        import torch

        gen = torch.Generator().manual_seed(1)
        extra = [torch.randn(1, *n["shape"], generator=gen) for n in self.noise_inputs()]
        return (*super().example_inputs(), *extra)

    def module(self) -> Any:
        import torch

        graph = self
        model = self.ckpt.policy.diffusion
        n_images = len(self.image_keys)

        class DiffusionSampler(torch.nn.Module):
            """LeRobot's generate_actions with the loop over Python-int timesteps, so the
            scheduler's branches are resolved while tracing and the graph is fixed."""

            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, state: Any, *rest: Any) -> Any:
                images, noises = rest[:n_images], rest[n_images:]
                batch: dict[str, Any] = {STATE_KEY: state}
                if images:
                    batch["observation.images"] = torch.stack(list(images), dim=2)
                cond = self.model._prepare_global_conditioning(batch)
                sample = noises[0]
                step_noise = noises[1] if len(noises) > 1 else None
                with graph.scheduler_patched(step_noise, static=True):
                    for t in graph.timesteps:
                        timestep = torch.full(sample.shape[:1], t, dtype=torch.long)
                        eps = self.model.unet(sample, timestep, global_cond=cond)
                        sample = graph.scheduler.step(eps, t, sample).prev_sample
                start = graph.history - 1
                return sample[:, start : start + graph.chunk_length]

        return DiffusionSampler()

    @contextlib.contextmanager
    def scheduler_patched(self, step_noise: Any, static: bool) -> Iterator[None]:
        """DDPM's per-step noise from ``step_noise`` (B, steps, horizon, A), in order; with
        ``static`` the previous-timestep lookup is plain Python (diffusers' uses ``nonzero``)."""
        import diffusers.schedulers.scheduling_ddpm as ddpm

        sched = self.scheduler
        saved_randn = ddpm.randn_tensor
        calls = iter(range(len(self.timesteps)))

        def next_noise(shape: Any, **_: Any) -> Any:
            if step_noise is None:
                raise RuntimeError("the scheduler asked for noise the export does not provide")
            return step_noise[:, next(calls)]

        setattr(ddpm, "randn_tensor", next_noise)  # noqa: B010 (patched module-wide, restored below)
        following = dict(zip(self.timesteps, [*self.timesteps[1:], -1], strict=True))
        if static:
            sched.previous_timestep = lambda t: following[int(t)]
        try:
            yield
        finally:
            ddpm.randn_tensor = saved_randn
            if static:
                del sched.previous_timestep

    def reference(self, fixtures: Fixtures, i: int) -> np.ndarray:
        import torch

        pre = self.lerobot_batch(fixtures, i)
        n = self.history
        batch = {STATE_KEY: pre[STATE_KEY][:, None].repeat(1, n, 1)}
        if self.image_keys:
            cams = torch.stack([pre[k] for k in self.image_keys], dim=1)  # (1, n_cams, 3, H, W)
            batch["observation.images"] = cams[:, None].repeat(1, n, 1, 1, 1, 1)
        noise = torch.from_numpy(fixtures.noise["noise"][i : i + 1])
        step = fixtures.noise.get("step_noise")
        step_noise = torch.from_numpy(step[i : i + 1]) if step is not None else None
        model = self.ckpt.policy.diffusion
        with torch.no_grad(), self.scheduler_patched(step_noise, static=False):
            actions = model.generate_actions(batch, noise=noise)
            out = self.ckpt.post(actions)
        return np.asarray(out[0].double().numpy())


def _camera_name(key: str) -> str:
    if key.startswith(IMAGE_PREFIX):
        return key[len(IMAGE_PREFIX):]
    return key.rsplit(".", 1)[-1]


def _flat(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The exporter prints progress and warnings on stdout; keep stdout for our result."""
    import sys
    import warnings

    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
