"""docs/safety.md and docs/yam.md describe what is built: the defaults and bounds they state are
the config models' own, their examples validate, and the simulated-bus command runs as written."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import REPO, subprocess_env

from reflex.config.stop import StopConfig
from reflex.hardware.yam.config import YamBimanualConfig
from reflex.runtime.stalls import DEFAULT_COMMAND_GAP_S


def text(doc: str) -> str:
    """The doc with every run of whitespace made one space (table rows and wrapped lines alike)."""
    return re.sub(r"\s+", " ", (REPO / "docs" / doc).read_text())


def bound(model: Any, field: str, which: str) -> float:
    for m in model.model_fields[field].metadata:
        value = getattr(m, which, None)
        if value is not None:
            return float(value)
    raise AssertionError(f"{field} has no {which} bound")


def default(model: Any, field: str) -> Any:
    return model.model_fields[field].default


def test_yam_doc_states_the_built_defaults_and_bounds() -> None:
    doc = text("yam.md")
    y = YamBimanualConfig
    assert f"| `watchdog_ms` | {default(y, 'watchdog_ms'):g} |" in doc
    assert f"From {bound(y, 'watchdog_ms', 'ge'):g} to {bound(y, 'watchdog_ms', 'le'):g}." in doc
    assert f"| `limit_margin` | {default(y, 'limit_margin'):g} |" in doc
    assert f"At most {bound(y, 'limit_margin', 'le'):g}. |" in doc
    assert f"| `max_speed` | {default(y, 'max_speed')} |" in doc
    assert default(y, "max_jerk") is None
    assert f"| `max_accel`, `max_jerk` | {default(y, 'max_accel')}, none |" in doc
    assert f"(rad/s^2, at most {bound(y, 'max_accel', 'le'):g})" in doc
    gripper = f"| `gripper_max_speed`, `gripper_max_accel` | {default(y, 'gripper_max_speed')}, " \
              f"{default(y, 'gripper_max_accel')} |"
    assert gripper in doc
    assert f"(rad/s at most {bound(y, 'gripper_max_speed', 'le'):g}, rad/s^2 at most " \
           f"{bound(y, 'gripper_max_accel', 'le'):g})" in doc
    assert f"| `runner_timeout_s` | {default(y, 'runner_timeout_s')} |" in doc
    assert "`reply_budget_ms` | half a control period" in doc and default(y, "reply_budget_ms") is None
    gravity = default(y.model_fields["sim"].annotation, "gravity")  # type: ignore[arg-type]
    assert gravity[1] > 0 and gravity[2] > 0, "the YAM sim has gravity on shoulder and elbow by default"


def test_safety_doc_states_the_built_stop_and_stall_defaults() -> None:
    doc = text("safety.md")
    s = StopConfig
    assert f"| `mode` | `{default(s, 'mode')}` | `hold`, `damp`, `disable` |" in doc
    assert "| `hold` (default) |" in doc
    assert f"| `hold_s` | {default(s, 'hold_s')} s | 0 to {bound(s, 'hold_s', 'le'):g} |" in doc
    assert f"| `hold_stiffness` | {default(s, 'hold_stiffness')} (of each joint's kp) | above 0, at most " \
           f"{bound(s, 'hold_stiffness', 'le'):g} |" in doc
    assert f"| `damp_s` | {default(s, 'damp_s')} s | 0 to {bound(s, 'damp_s', 'le'):g} |" in doc
    assert default(s, "damp_kd") is None and f"0 to {bound(s, 'damp_kd', 'le'):g} Nm s/rad |" in doc
    assert f"| `ramp_s` | {default(s, 'ramp_s')} s (mode `disable` only) | 0 to {bound(s, 'ramp_s', 'le'):g} |" in doc
    assert f"(default {DEFAULT_COMMAND_GAP_S * 1e3:g} ms, well under a YAM motor's " \
           f"{default(YamBimanualConfig, 'watchdog_ms'):g} ms watchdog; at most 1000 ms)" in doc
    assert "missed_reply_budget" not in doc  # no such field


def yaml_blocks(doc: str) -> list[Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", (REPO / "docs" / doc).read_text(), re.S)
    return [yaml.safe_load(b) for b in blocks]


def test_safety_doc_examples_validate() -> None:
    from reflex.config.session import SafetyConfig

    stops = [b["safety"]["stop"] for b in yaml_blocks("safety.md") if "stop" in (b.get("safety") or {})]
    assert stops
    for stop in stops:
        assert SafetyConfig.model_validate({"stop": stop}).stop == StopConfig.model_validate(stop)


def test_yam_doc_simulated_bus_command_runs_as_written(tmp_path: Path) -> None:
    doc = (REPO / "docs" / "yam.md").read_text()
    prefix = "reflex connect --config configs/yam_bimanual_sim"
    (line,) = [ln.split("#")[0].strip() for ln in doc.splitlines() if ln.startswith(prefix)]
    args = shlex.split(line)[1:]
    env = subprocess_env(PYTHONPATH=str(REPO), REFLEX_RECORDINGS_DIR=str(tmp_path / "recordings"))
    proc = subprocess.run([sys.executable, "-m", "reflex", *args], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-2000:])
    result = json.loads(proc.stdout)
    assert result["ok"] is True and result["mode"] == "dry_run"
    assert result["motorsPowered"] is False and result["leftToWatchdog"] == []
