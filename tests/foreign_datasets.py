"""Datasets Reflex did not record, written by the ecosystem's own writers.

* ``write_lerobot``: LeRobot's ``LeRobotDataset.create`` / ``add_frame`` / ``save_episode`` (the
  ``ledataset`` package, in a subprocess with the loader recipe's environment), with a video
  feature (``top``) and an image feature (``wrist``);
* ``write_mcap``: the plain ``mcap`` writer with Foxglove protobuf schemas (``JointStates`` for
  state and action, ``CompressedImage`` PNG and ``RawImage`` rgb8 for two cameras).

Values are smooth and inside the demo policy's joint ranges, so its chunks are meaningful.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from test_record_support import TESTS, lerobot_reader_env

JOINTS = [f"{side}_{j}" for side in ("left", "right") for j in
          ("joint1", "joint2", "joint3", "joint4", "joint5", "joint6", "gripper")]
H, W = 96, 128  # the demo policy's image size
MID = np.array([0.26, 1.83, 1.57, -0.06, 0.0, 0.0, 0.5] * 2)


def state_at(ep: int, k: int) -> np.ndarray:
    return MID + 0.2 * np.sin(0.3 * k + ep + np.arange(14) * 0.4)


def action_at(ep: int, k: int) -> np.ndarray:
    return state_at(ep, k + 1) + 0.01 * np.cos(np.arange(14) + k)


def image_at(ep: int, k: int, camera: str) -> np.ndarray:
    value = (40 + 15 * k + 30 * ep + (60 if camera == "wrist" else 0)) % 250
    image = np.full((H, W, 3), value, dtype=np.uint8)
    image[:, : W // 2, 0] = 255 - value  # not flat: the red channel differs on the left half
    return image


def task_of(ep: int) -> str:
    return ["pick the red cube", "stack the blocks", "open the drawer"][ep % 3]


def write_lerobot(root: Path, work: Path, episodes: int = 2, frames: int = 12, fps: int = 50) -> Path:
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import foreign_datasets as f; "
        f"f._lerobot_main({str(root)!r}, {episodes}, {frames}, {fps})"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=lerobot_reader_env(work), cwd=work)
    assert proc.returncode == 0, f"LeRobot writer failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return root


def _lerobot_main(root: str, episodes: int, frames: int, fps: int) -> None:
    from reflex.recording.lerobot.loader import LeRobotDataset  # LeRobot's own class, CPU-torch fixes applied

    vector = {"dtype": "float32", "shape": (14,), "names": JOINTS}
    camera = {"dtype": "video", "shape": (H, W, 3), "names": ["height", "width", "channels"]}
    features = {
        "observation.state": vector, "action": vector,
        "observation.images.top": camera, "observation.images.wrist": {**camera, "dtype": "image"},
    }
    ds = LeRobotDataset.create("local/foreign", fps=fps, root=root, features=features, robot_type="yam_bimanual",
                               use_videos=True, vcodec="h264")
    for ep in range(episodes):
        for k in range(frames):
            ds.add_frame({
                "observation.state": state_at(ep, k).astype(np.float32),
                "action": action_at(ep, k).astype(np.float32),
                "observation.images.top": image_at(ep, k, "top"),
                "observation.images.wrist": image_at(ep, k, "wrist"),
                "task": task_of(ep),
            })
        ds.save_episode()
    ds.finalize()


def write_mcap(path: Path, frames: int = 30, fps: int = 50, action_topic: str = "/action") -> Path:
    """One episode: state and action ``JointStates``, ``top`` as PNG ``CompressedImage``, ``wrist`` as
    ``RawImage`` rgb8; cameras logged 1 ms after the state of their tick."""
    import io

    from foxglove_schemas_protobuf.CompressedImage_pb2 import CompressedImage
    from foxglove_schemas_protobuf.JointState_pb2 import JointState
    from foxglove_schemas_protobuf.JointStates_pb2 import JointStates
    from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
    from mcap_protobuf.writer import Writer
    from PIL import Image

    t0 = 1_700_000_000_000_000_000
    period = 1_000_000_000 // fps
    with path.open("wb") as fh, Writer(fh) as writer:
        for k in range(frames):
            t = t0 + k * period
            for topic, values in (("/joint_states", state_at(0, k)), (action_topic, action_at(0, k))):
                msg = JointStates(joints=[JointState(name=n, position=float(v)) for n, v in zip(JOINTS, values,
                                                                                                strict=True)])
                msg.timestamp.FromNanoseconds(t)
                writer.write_message(topic, msg, log_time=t, publish_time=t)
            png = io.BytesIO()
            Image.fromarray(image_at(0, k, "top")).save(png, format="PNG")
            top = CompressedImage(frame_id="top", data=png.getvalue(), format="png")
            writer.write_message("/camera/top/image", top, log_time=t + 1_000_000, publish_time=t + 1_000_000)
            wrist = image_at(0, k, "wrist")
            raw = RawImage(frame_id="wrist", width=W, height=H, encoding="rgb8", step=W * 3, data=wrist.tobytes())
            writer.write_message("/camera/wrist/image_raw", raw, log_time=t + 1_000_000, publish_time=t + 1_000_000)
    return path
