"""One rule for what a target declares: ``connect``, ``connect --check`` and ``replay`` agree.

Every row is one target (a plugin wrapping the real demo policy, declaring what the row says)
run three ways against the same 14-joint robot with camera ``top``: a real ``apply_actions``
session on the sim robot, ``--check`` on the same file, and ``reflex replay`` of the committed
sample recording (same joints, same camera). Undeclared facts never block; declared and
different always block, before the motors are enabled; an undeclared action width is caught on
the first chunk (``--check`` cannot infer, so it passes and says the width is unknown).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import base_session, write_session
from replay_testutil import SAMPLE, replay_cli

from reflex.config.loader import load_session_config
from reflex.runtime.check import check_session_file
from reflex.runtime.session import RunOptions, Session

pytestmark = pytest.mark.timeout(120)
JOINTS = [f"{side}_{j}" for side in ("left", "right") for j in (*(f"joint{i}" for i in range(1, 7)), "gripper")]
PLUGIN = "reflex_test_plugins:DeclaringTarget"

# (id, what the target declares, width of its chunks, blocked by a declared mismatch, blocked on the first chunk)
ROWS: list[tuple[str, dict[str, Any], int, bool, bool]] = [
    ("nothing declared", {}, 14, False, False),
    ("zeros from an old plugin", {"state_dim": 0, "action_dim": 0}, 14, False, False),
    ("state and action match", {"state_dim": 14, "action_dim": 14}, 14, False, False),
    ("only state declared, matches", {"state_dim": 14}, 14, False, False),
    ("state differs", {"state_dim": 7}, 14, True, False),
    ("action differs", {"action_dim": 8}, 14, True, False),
    ("state undeclared, action differs", {"state_dim": None, "action_dim": 8, "image_keys": ["top"]}, 14, True,
     False),
    ("names match", {"action_names": JOINTS}, 14, False, False),
    ("names differ", {"action_names": [f"j{i}" for i in range(14)]}, 14, True, False),
    ("camera present", {"image_keys": ["top"]}, 14, False, False),
    ("camera missing", {"image_keys": ["wrist"]}, 14, True, False),
    ("width undeclared, first chunk too narrow", {}, 8, False, True),
    ("width undeclared, first chunk too wide", {"state_dim": 14}, 16, False, True),
]


def _session_file(tmp_path: Path, declared: dict[str, Any], width: int) -> Path:
    target = {"kind": PLUGIN, "config": {**declared, "width": width}}
    return write_session(
        tmp_path, base_session(mode="apply_actions", max_steps=3, target=target), "fit.yaml"
    )


@pytest.mark.parametrize(("declared", "width", "declared_block", "chunk_block"),
                         [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_connect_check_and_replay_apply_one_rule(
    tmp_path: Path, declared: dict[str, Any], width: int, declared_block: bool, chunk_block: bool
) -> None:
    path = _session_file(tmp_path, declared, width)

    session = Session(load_session_config(path), path, RunOptions(no_record=True))
    result = session.run()
    check = check_session_file(path)
    code, payload, out = replay_cli(str(SAMPLE), "--target", str(path))

    blocked = declared_block or chunk_block
    # connect: a block is a setup error before any motor was enabled; otherwise a clean session
    assert result.ok is (not blocked), result.errors
    assert session.enabled is (not blocked)
    if blocked:
        assert result.setup_failed and result.safe_stops == 0 and result.steps == 0, result.errors
        (error,) = result.errors
        assert error.startswith("target: ")
        if chunk_block:
            assert "first chunk rejected" in error and "expected (horizon, 14)" in error
    # --check: the same verdict on every declared fact; an undeclared width is reported as unknown
    assert check["ok"] is (not declared_block), check
    if declared_block:
        assert any(e.startswith("target: policy") for e in check["errors"]), check
        assert _same_reason(check["errors"][0], result.errors[0])
    if "action_dim" not in declared or not declared["action_dim"]:
        assert "action ?-D" in check["checks"]["target"]
    # replay: refuses exactly what connect refuses, with the same reason
    assert (code == 0) is (not blocked), out
    if blocked:
        assert code == 3 and _same_reason(payload["errors"][0], result.errors[0]), (payload, result.errors)


def _same_reason(a: str, b: str) -> bool:
    """Both name the same declared fact (the robot side is called hardware or the recording)."""
    for key in ("declares state", "declares action", "action names", "camera(s)", "expected (horizon, 14)"):
        if key in a or key in b:
            return key in a and key in b
    return False
