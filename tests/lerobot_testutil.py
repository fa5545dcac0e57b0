"""Small randomly initialised LeRobot policies, built with LeRobot's own classes and saved with its
own ``save_pretrained`` (no hub, no pretrained backbone): the sources ``reflex export`` reads.

Run in a subprocess (``python -m lerobot_testutil KIND OUT``) so the test process never imports
torch or LeRobot.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import subprocess_env

STATE_DIM = 14
IMAGE_SHAPE = (3, 48, 64)  # small: the tests stay fast


def build_checkpoint(kind: str, out: Path, state_dim: int = STATE_DIM, camera: str = "top",
                     scheduler: str = "DDPM") -> Path:
    """Build and save a policy in a subprocess; returns the checkpoint directory."""
    code = f"import lerobot_testutil as t; t._main({kind!r}, {str(out)!r}, {state_dim}, {camera!r}, {scheduler!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env=subprocess_env())
    assert proc.returncode == 0, f"building the {kind} checkpoint failed:\n{proc.stderr[-4000:]}"
    return out


def _main(kind: str, out: str, state_dim: int, camera: str, scheduler: str) -> None:
    from reflex.export.lerobot_source import prepare_environment

    prepare_environment()
    import torch
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(0)
    image_key = f"observation.images.{camera}"
    inputs = {
        "observation.state": PolicyFeature(type=FeatureType.STATE, shape=(state_dim,)),
        image_key: PolicyFeature(type=FeatureType.VISUAL, shape=IMAGE_SHAPE),
    }
    outputs = {"action": PolicyFeature(type=FeatureType.ACTION, shape=(state_dim,))}
    common = {"input_features": inputs, "output_features": outputs, "device": "cpu", "push_to_hub": False,
              "pretrained_backbone_weights": None}
    if kind == "act":
        from lerobot.policies.act.configuration_act import ACTConfig
        from lerobot.policies.act.modeling_act import ACTPolicy

        cfg = ACTConfig(chunk_size=20, n_action_steps=20, dim_model=32, n_heads=2, dim_feedforward=64,
                        n_encoder_layers=1, n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=8, **common)
        policy = ACTPolicy(cfg)
    else:
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

        cfg = DiffusionConfig(n_obs_steps=2, horizon=16, n_action_steps=8, down_dims=(16, 32),
                              diffusion_step_embed_dim=16, n_groups=4, spatial_softmax_num_keypoints=8,
                              crop_shape=(40, 56), num_inference_steps=4, noise_scheduler_type=scheduler,
                              normalization_mapping={"VISUAL": NormalizationMode.MEAN_STD,
                                                     "STATE": NormalizationMode.MIN_MAX,
                                                     "ACTION": NormalizationMode.MIN_MAX},
                              **common)
        policy = DiffusionPolicy(cfg)
    # statistics of a 14-D YAM-like robot, so actions land in its joint ranges
    from reflex.hardware.yam_layout import yam_bimanual_layout

    layout = yam_bimanual_layout()
    lo = torch.tensor(layout.lower[:state_dim], dtype=torch.float32)
    hi = torch.tensor(layout.upper[:state_dim], dtype=torch.float32)
    centre, spread = (lo + hi) / 2, (hi - lo) / 8
    vec = {"mean": centre, "std": spread, "min": centre - 2 * spread, "max": centre + 2 * spread}
    img = {"mean": torch.tensor([0.45, 0.42, 0.40]).reshape(3, 1, 1),
           "std": torch.tensor([0.22, 0.21, 0.2]).reshape(3, 1, 1),
           "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}
    stats = {"observation.state": vec, image_key: img, "action": dict(vec)}
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)


if __name__ == "__main__":
    build_checkpoint(sys.argv[1], Path(sys.argv[2]))
