"""The LeRobot loader snippet of docs/recording.md runs as written in the `make test` environment."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO, base_session, run_cli, subprocess_env, write_session
from test_record_support import require_readers


def docs_snippet() -> str:
    text = (REPO / "docs" / "recording.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "LeRobotDataset(" in b]
    assert len(blocks) == 1, "docs/recording.md has one LeRobot loader snippet"
    return blocks[0]


def test_the_recording_docs_lerobot_snippet_runs_as_written(tmp_path: Path) -> None:
    require_readers("av", "torch", "torchvision")
    session = base_session(max_steps=20, control_rate_hz=30, record={"enabled": True, "formats": ["lerobot", "jsonl"]})
    out = tmp_path / "rec"
    proc = run_cli(["connect", "--config", str(write_session(tmp_path, session)), "--record", str(out), "--json"],
                   timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    snippet = docs_snippet().replace("<recording>", str(out))
    frames = out / "jsonl" / "images" / "top"  # JSONL keeps each new camera frame as an image file
    check = (
        "\nimport numpy as np\nfrom PIL import Image\n"
        "image = item['observation.images.top']\n"
        "assert tuple(image.shape[:1]) == (3,) and float(image.min()) >= 0 and float(image.max()) <= 1, image.shape\n"
        "for i in range(len(ds)):  # the first row whose frame JSONL stored\n"
        "    item = ds[i]\n"
        f"    stored = sorted(Path({str(frames)!r}).glob(f\"{{int(item['reflex.frame_seq']):08d}}.*\"))\n"
        "    if stored:\n"
        "        break\n"
        "truth = np.asarray(Image.open(stored[0]).convert('RGB'), dtype=np.float32) / 255\n"
        "got = item['observation.images.top'].numpy().transpose(1, 2, 0)\n"
        "assert got.shape == truth.shape, (got.shape, truth.shape)\n"
        "print('len', len(ds), 'error', float(np.abs(got - truth).mean()), 'state', item['observation.state'].shape)\n"
    )
    script = tmp_path / "load.py"
    script.write_text("from pathlib import Path\n" + snippet + check)
    # no LD_LIBRARY_PATH or other help: the environment `make test` builds, as a user has it
    env = subprocess_env(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    fields = run.stdout.split()
    assert fields[fields.index("len") + 1] == "20"
    assert float(fields[fields.index("error") + 1]) < 0.03, "the decoded frame is the recorded one (both lossy)"
