"""Helpers for the recording tests (no tests here): a camera whose pixels say which frame they
are, a sim robot that journals every state it reported, and each format's own reader.

* ``SeqCamera``: frame ``seq`` of camera ``code`` is a deterministic image (four flat bands whose
  red level spells ``seq`` in base 16, green = camera code), so any decoded frame can be checked
  against the frame number the recording claims, whatever the codec.
* ``TruthSim``: the journaling sim robot of ``reflex_test_plugins`` plus a line per
  ``read_state`` (position and capture time, exactly): the ground truth for recorded states.
* ``lerobot_load``: the LeRobot loader (``ledataset``, CPU torch, torchcodec) in a subprocess with
  the environment its recipe needs (FFmpeg libraries from the PyAV wheel on LD_LIBRARY_PATH, the
  torchvision op shim, Hugging Face offline), returning every item as numpy arrays.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from conftest import REPO, TESTS, json_result, subprocess_env
from reflex_test_plugins import JournalSim

from reflex.cameras.pacing import FramePacer
from reflex.ports import Frame, StateSample

BANDS = 4


# -- coded frames ------------------------------------------------------------------------------
def expected_image(code: int, seq: int, width: int, height: int) -> np.ndarray:
    image = np.empty((height, width, 3), dtype=np.uint8)
    band_w = width // BANDS
    for b in range(BANDS):
        nibble = (seq >> (4 * b)) & 0xF
        x1 = width if b == BANDS - 1 else (b + 1) * band_w
        image[:, b * band_w : x1, 0] = nibble * 16 + 8
        image[:, b * band_w : x1, 2] = 40 + 50 * b
    image[..., 1] = 30 + 40 * code
    return image


def decode_seq(image: np.ndarray) -> tuple[int, int]:
    """(seq, camera code) read back from band interiors (robust to lossy codecs)."""
    h, w = image.shape[:2]
    band_w = w // BANDS
    seq = 0
    for b in range(BANDS):
        patch = image[h // 4 : 3 * h // 4, b * band_w + band_w // 4 : b * band_w + 3 * band_w // 4, 0]
        nibble = round((float(np.median(patch)) - 8) / 16)
        seq |= max(0, min(15, nibble)) << (4 * b)
    code = round((float(np.median(image[h // 4 : 3 * h // 4, :, 1])) - 30) / 40)
    return seq, code


def assert_frame_matches(image: np.ndarray, code: int, seq: int, lossy: bool, where: str) -> None:
    h, w = image.shape[:2]
    want = expected_image(code, seq, w, h)
    got_seq, got_code = decode_seq(image)
    assert (got_seq, got_code) == (seq, code), f"{where}: pixels say frame {got_seq} of camera {got_code}"
    diff = np.abs(image.astype(np.int16) - want.astype(np.int16))
    if lossy:
        assert diff.mean() < 3.0, f"{where}: mean abs pixel error {diff.mean():.2f}"
    else:
        assert int(diff.max()) == 0, f"{where}: lossless image differs by up to {int(diff.max())}"


class SeqCamera:
    """Plugin camera (``kind: test_record_support:SeqCamera``); optional journal of every frame."""

    def __init__(self, name: str, code: int = 0, width: int = 128, height: int = 96, fps: float = 30.0,
                 journal: str | None = None) -> None:
        self.name = name
        self._code = code
        self._size = (width, height)
        self._pacer = FramePacer(fps)
        self._journal = Path(journal) if journal else None
        self._seq = 0
        self._frame: Frame | None = None

    def start(self) -> None:
        self._render(time.monotonic())

    def latest(self) -> Frame | None:
        now = time.monotonic()
        if self._frame is None or self._pacer.due(now):
            self._render(now)
        return self._frame

    def stop(self) -> None:
        self._frame = None

    def _render(self, now: float) -> None:
        self._seq += 1
        self._frame = Frame(expected_image(self._code, self._seq, *self._size), t_capture=now, seq=self._seq)
        if self._journal is not None:
            with self._journal.open("a") as fh:
                fh.write(json.dumps({"camera": self.name, "seq": self._seq, "t": now}) + "\n")
        self._pacer.rendered(now)


class TruthSim(JournalSim):
    """Journals ``read_state`` too: every state the runner could have recorded, exactly."""

    def read_state(self, step: int | None = None) -> StateSample:
        sample = super().read_state(step)
        self._write("read_state", position=[float(x) for x in sample.position], t_capture=sample.t_capture)
        return sample


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            break  # a line torn by kill -9
    return out


# -- sessions --------------------------------------------------------------------------------
CAMERAS = {"top": 0, "wrist": 1}


def record_session(tmp_path: Path, formats: list[str], mode: str = "apply_actions", max_steps: int = 90,
                   rate: float = 30.0, **overrides: Any) -> tuple[Path, Path, Path, Path]:
    """A session file on TruthSim + two SeqCameras; returns (config, record dir, hw journal, cam journal)."""
    journal = tmp_path / "hw.jsonl"
    cam_journal = tmp_path / "cams.jsonl"
    cameras = {
        name: {"kind": "test_record_support:SeqCamera",
               "config": {"code": code, "width": 128, "height": 96, "fps": 30.0, "journal": str(cam_journal)}}
        for name, code in CAMERAS.items()
    }
    session: dict[str, Any] = {
        "mode": mode,
        "control_rate_hz": rate,
        "max_steps": max_steps,
        "task": "stack the red cube",
        "target": {"kind": "local", "export": "builtin:demo"},
        "hardware": {"kind": "test_record_support:TruthSim", "config": {"journal": str(journal)}},
        "cameras": cameras,
        "safety": {"max_delta": 0.05},
        "record": {"enabled": True, "formats": formats, "dir": str(tmp_path / "rec")},
    }
    session.update(overrides)
    path = tmp_path / "session.yaml"
    path.write_text(yaml.safe_dump(session, sort_keys=False))
    return path, tmp_path / "rec", journal, cam_journal


def run_cli_proc(args: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reflex", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=subprocess_env(**env), cwd=REPO,
    )


def result_after(
    proc: subprocess.Popen[str], act: Callable[[], None], timeout_s: float = 120
) -> tuple[dict[str, Any], str]:
    """Does ``act`` to a running ``reflex connect --json`` (say, a signal to it or to its recording
    process) and returns its result and stderr once it has ended; it never outlives the test."""
    try:
        act()
        stdout, stderr = proc.communicate(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return json_result(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)), stderr


# -- LeRobot loader (ledataset) in a subprocess ----------------------------------------------
def lerobot_reader_env(work: Path) -> dict[str, str]:
    """Environment for the loader recipe: FFmpeg 7 from PyAV's wheel under standard sonames."""
    import av

    libs = Path(av.__file__).resolve().parent.parent / "av.libs"
    links = work / "ffmpeg-libs"
    links.mkdir(parents=True, exist_ok=True)
    for lib in libs.glob("lib*.so*"):
        stem = lib.name.split("-")[0]  # libavutil-a63ffd27.so.59.39.100 -> libavutil
        parts = lib.name.split(".so.")
        if len(parts) == 2 and stem in ("libavutil", "libavcodec", "libavformat", "libavdevice",
                                         "libavfilter", "libswscale", "libswresample"):
            link = links / f"{stem}.so.{parts[1].split('.')[0]}"
            if not link.exists():
                link.symlink_to(lib)
    env = subprocess_env(
        LD_LIBRARY_PATH=os.pathsep.join([str(links), str(libs), os.environ.get("LD_LIBRARY_PATH", "")]),
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(work / "hf-home"),
        TOKENIZERS_PARALLELISM="false",
    )
    return env


def lerobot_load(root: Path, work: Path, delta_action: int = 0) -> dict[str, Any]:
    """Load ``root`` with ``LeRobotDataset`` and return every item (images as uint8 HWC)."""
    out = work / "items.npz"
    code = (
        f"import sys; sys.path.insert(0, {str(TESTS)!r}); import test_record_support as s; "
        f"s._loader_main({str(root)!r}, {str(out)!r}, {delta_action})"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=lerobot_reader_env(work), cwd=work)
    assert proc.returncode == 0, f"LeRobot loader failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    with np.load(out, allow_pickle=False) as data:
        items = {k: data[k] for k in data.files}
    meta = json.loads((work / "items.json").read_text())
    return {"arrays": items, **meta}


def _loader_main(root: str, out: str, delta_action: int) -> None:
    # the project's loader entry: LeRobot's class with the CPU-torch fixes; torchcodec decodes here
    # (this environment points it at PyAV's FFmpeg), so frames are compared bit for bit
    from reflex.recording.lerobot.loader import LeRobotDataset, LeRobotDatasetMetadata

    meta = LeRobotDatasetMetadata("local/reflex", root=root)
    kwargs: dict[str, Any] = {}
    if delta_action:
        kwargs["delta_timestamps"] = {"action": [k / meta.fps for k in range(delta_action)]}
    ds = LeRobotDataset("local/reflex", root=root, video_backend="torchcodec", **kwargs)
    arrays: dict[str, list[np.ndarray]] = {}
    tasks: list[str] = []
    for i in range(len(ds)):
        item = ds[i]
        for key, value in item.items():
            if key == "task":
                tasks.append(value)
                continue
            arr = value.numpy()
            if key.startswith("observation.images."):
                arr = np.clip(np.round(arr.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)
            arrays.setdefault(key, []).append(arr)
    np.savez(out, **{k: np.stack(v) for k, v in arrays.items()})  # type: ignore[arg-type]
    Path(out).with_name("items.json").write_text(json.dumps({
        "len": len(ds), "tasks": tasks, "fps": meta.fps, "features": list(meta.features),
        "camera_keys": list(meta.camera_keys), "num_episodes": meta.total_episodes,
    }))


def require_readers(*modules: str) -> None:
    """Readers come from the ``readers`` extra: skip without them, except in CI (where a missing
    reader is an install bug, not a reason to test less)."""
    import importlib.util

    import pytest

    wanted = modules or ("ledataset", "torch", "torchvision", "torchcodec")
    missing = [m for m in wanted if importlib.util.find_spec(m) is None]
    if missing:
        message = f"LeRobot loader not installed ({missing}): pip install torch==2.13.0 && pip install -e .[readers]"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


# -- ground truth ------------------------------------------------------------------------------
class Truth:
    """What really happened, from the robot's and cameras' own journals."""

    def __init__(self, hw_journal: Path, cam_journal: Path) -> None:
        entries = read_lines(hw_journal)
        self.states = {e["t_capture"]: np.array(e["position"]) for e in entries if e["call"] == "read_state"}
        self.applied = {e["step"]: np.array(e["action"]) for e in entries if e["call"] == "apply"}
        self.calls = [e["call"] for e in entries]
        self.frames = {(e["camera"], e["seq"]): e["t"] for e in read_lines(cam_journal)}

    def state_at(self, t_capture: float, where: str) -> np.ndarray:
        assert t_capture in self.states, f"{where}: no state was read at t={t_capture!r}"
        return self.states[t_capture]


def jsonl_records(rec_dir: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for obj in read_lines(rec_dir / "jsonl" / "steps.jsonl"):
        out.setdefault(obj["type"], []).append(obj)
    return out


# -- MCAP / Rerun readers ------------------------------------------------------------------------
def mcap_decoders() -> list[Any]:
    from mcap.decoder import DecoderFactory
    from mcap_protobuf.decoder import DecoderFactory as ProtobufDecoderFactory

    class JsonDecoderFactory(DecoderFactory):
        def decoder_for(self, message_encoding: str, schema: Any) -> Any:
            return json.loads if message_encoding == "json" else None

    return [ProtobufDecoderFactory(), JsonDecoderFactory()]


def mcap_messages(path: Path, seeking: bool = True) -> tuple[dict[str, list[tuple[Any, Any]]], str]:
    """topic -> [(message record, decoded)], and the error that ended reading ('' if none)."""
    from mcap.reader import NonSeekingReader, make_reader

    out: dict[str, list[tuple[Any, Any]]] = {}
    error = ""
    with path.open("rb") as fh:
        reader = (make_reader(fh, validate_crcs=True, decoder_factories=mcap_decoders()) if seeking
                  else NonSeekingReader(fh, validate_crcs=True, decoder_factories=mcap_decoders()))
        try:
            for _, channel, message, decoded in reader.iter_decoded_messages(log_time_order=False):
                out.setdefault(channel.topic, []).append((message, decoded))
        except Exception as exc:
            if seeking:
                raise
            error = f"{type(exc).__name__}: {exc}"
    return out, error


def rerun_table(path: Path, complete: bool = True, index: str | None = "step") -> Any:
    """The recording as one Arrow table (one row per index value), read by Rerun's own reader."""
    import warnings

    import rerun as rr

    require_readers("datafusion")  # rerun-sdk[catalog]: the dataframe reader
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = rr.chunk.RrdReader(path)
        store = reader.store().stream().collect() if complete else reader.stream().collect()
    return store.reader(index=index, fill_latest_at=False).to_arrow_table()


def rerun_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``rerun`` CLI that ships in the rerun-sdk wheel (next to this Python)."""
    exe = Path(sys.executable).with_name("rerun")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "rerun_cli"]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)


def decode_jpeg(data: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(bytes(data))).convert("RGB"))


# -- synthetic records for recorder/hub unit tests ---------------------------------------------
JOINTS = ("j1", "j2", "j3")


def make_meta(cameras: tuple[str, ...] = ("top",), rate: float = 30.0, task: str = "pick") -> Any:
    from reflex.ports import SessionMeta, TargetInfo

    t0 = time.monotonic()
    target = TargetInfo(kind="local", action_dim=3, state_dim=3, chunk_length=4, action_dt=1 / rate,
                        model_hash="abc123", seed=11)
    return SessionMeta(
        session_id="session_test", config_path="session.yaml", config_resolved={"hardware": {"kind": "sim"}},
        config_hash="cafe", mode="apply_actions", software_version="0.1.0", control_rate_hz=rate,
        joint_names=JOINTS, camera_names=cameras, task=task, target=target, t_start_wall=time.time(),
        t_start_mono=t0,
    )


def make_step(step: int, cameras: dict[str, tuple[int, int]] | None = None, action: bool = True,
              applied: bool = True, task: str = "pick", t0: float = 1000.0) -> Any:
    """Step ``step`` with new frames for ``cameras`` ({name: (code, seq)}), 128x96 coded images."""
    from reflex.ports import GuardEvent, StepRecord

    t = t0 + step / 30
    frames = {name: Frame(expected_image(code, seq, 128, 96), t_capture=t - 0.005, seq=seq)
              for name, (code, seq) in (cameras or {}).items()}
    return StepRecord(
        step=step, t_tick=t, state=StateSample(np.array([step, -step, 0.5]) * 0.01, t_capture=t - 0.002),
        frames=frames, action=np.array([step, 1.0, -1.0]) * 0.01 if action else None, applied=applied,
        chunk_id=1 + step // 4, chunk_index=float(step % 4), chunk_age_s=0.01 * (step % 4),
        guard_events=[GuardEvent("clamp_delta", ("j1",))] if step % 5 == 0 else [], task=task, timing_ms={},
    )
