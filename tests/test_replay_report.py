"""``reflex replay --plots``: readable for long sessions (windows), limits and units drawn, no
empty charts, a readable header, progress reported while replaying and plotting."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

pytest.importorskip("matplotlib")

SAMPLE = REPO / "recordings" / "sim_demo"


def _replay(progress: list[tuple[str, int, int]] | None = None):  # type: ignore[no-untyped-def]
    from reflex.replay.runner import ReplayOptions, replay

    options = ReplayOptions(fmt="jsonl", on_progress=(lambda *a: progress.append(a)) if progress is not None else None)
    return replay([SAMPLE], "builtin:demo", options, cwd=REPO)


def _not_blank(path: Path) -> None:
    from PIL import Image

    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"))
    assert img.format == "PNG" and pixels.std() > 10 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50


def test_long_sessions_are_split_into_windows_with_limits_and_no_empty_chart(tmp_path: Path) -> None:
    from reflex.replay.plots import write_plots

    progress: list[tuple[str, int, int]] = []
    report = _replay(progress)
    plots = write_plots(report, tmp_path, window_s=0.5, on_progress=lambda *a: progress.append(a))
    [episode] = plots["episodes"]
    duration = episode["windows"][-1][1]
    assert len(episode["joints"]) == math.ceil(duration / 0.5) >= 4  # one figure per window
    spans = episode["windows"]
    assert spans[0][0] == 0 and all(a[1] == pytest.approx(b[0]) for a, b in itertools.pairwise(spans))
    for name in episode["joints"]:
        _not_blank(tmp_path / name)
    # the same policy reproduces the recording: nothing to chart, said in words instead
    assert episode["errors"] is None and not list(tmp_path.glob("*_errors.png"))
    page = (tmp_path / "report.html").read_text()
    assert "no difference on any joint" in page
    # limits and units of the recorded robot, from the hardware block the recording names
    assert episode["limits"]["left_joint1"] == [pytest.approx(-2.61799), pytest.approx(3.14159), "rad"]
    assert episode["limits"]["left_gripper"][2] == "normalized"
    assert "<td>rad</td>" in page and "-2.618 … 3.142" in page
    # a readable header: sentences, not a JSON dict
    header = page[page.index("<h1>"):page.index("<h2>")]
    assert "{" not in header and "steps/s" in header and "replayed in" in header
    # progress: replaying then plotting, counting up to the total
    replaying = [p for p in progress if p[0].startswith("replaying")]
    plotting = [p for p in progress if p[0] == "plotting"]
    assert replaying[-1][1] == replaying[-1][2] > 0
    assert [p[1] for p in plotting] == list(range(1, plotting[-1][2] + 1))


def test_windows_are_capped_and_grow_instead(tmp_path: Path) -> None:
    from reflex.replay.plots import MAX_WINDOWS, windows

    report = _replay()
    spans = windows(report.results[0], window_s=0.01)
    assert len(spans) == MAX_WINDOWS
    assert spans[-1][1] > 0.01 * MAX_WINDOWS


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    from test_live_status import run_on_pty

    code, out = run_on_pty(["replay", "recordings/sim_demo", "--no-batch", "--plots", str(tmp_path / "p")])
    assert code == 0, out
    assert "replaying recordings/sim_demo" in out and "plotting" in out and "3/3" in out
    import subprocess
    import sys

    from conftest import subprocess_env

    piped = subprocess.run([sys.executable, "-m", "reflex", "replay", "recordings/sim_demo", "--plots",
                            str(tmp_path / "q")], capture_output=True, text=True, cwd=REPO, env=subprocess_env())
    assert piped.returncode == 0 and "replaying" not in piped.stderr and "plotting" not in piped.stderr
