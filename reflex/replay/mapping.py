"""Which keys of a dataset not recorded by Reflex feed which policy inputs.

A LeRobot dataset made by anyone, or an MCAP with Foxglove ``JointStates`` and
``CompressedImage``/``RawImage`` topics, carries states, camera frames and demonstrated actions
under names its author chose. A mapping names them; every field has a default that fits
LeRobot's usual names, so most LeRobot datasets need none:

* ``state``: the state vector (LeRobot feature, default ``observation.state``; MCAP
  ``foxglove.JointStates`` topic, default the one whose name holds ``state``);
* ``action``: the demonstrated actions (default ``action``; MCAP: the ``JointStates`` topic whose
  name holds ``action`` or ``command``);
* ``cameras``: camera name -> feature or topic (default: every ``observation.images.<name>``
  feature; MCAP: every image topic, named after its topic);
* ``task``: one task text for every frame (default: the dataset's own task of each frame);
* ``joint_names``: names of the state/action dimensions (default: the feature's ``names``);
* ``fps``: MCAP only, the frame rate (default: the state topic's median rate).

Given as ``--map KEY=VALUE`` (repeatable; ``camera.NAME=KEY`` adds a camera) or ``--map FILE.yaml``,
or as ``hardware.config.mapping`` of the replay hardware.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from reflex.config.base import StrictModel
from reflex.errors import ConfigError, ConfigIssue

LEROBOT_STATE = "observation.state"
LEROBOT_ACTION = "action"
LEROBOT_IMAGE_PREFIX = "observation.images."
MAX_MAP_FILE_BYTES = 64 * 1024


class DatasetMapping(StrictModel):
    state: str | None = Field(None, description="State vector: LeRobot feature or MCAP JointStates topic.")
    action: str | None = Field(None, description="Demonstrated actions: LeRobot feature or MCAP JointStates topic.")
    cameras: dict[str, str] | None = Field(
        None, description="Camera name -> LeRobot image/video feature or MCAP image topic (default: all)."
    )
    task: str | None = Field(None, description="Task text for every frame (default: the dataset's own task).")
    joint_names: list[str] | None = Field(None, description="Names of the state/action dimensions.")
    fps: float | None = Field(None, gt=0, le=10_000, description="MCAP: frame rate (default: the state topic's).")


def parse_map_args(values: list[str], cwd: Path, where: str = "--map") -> DatasetMapping | None:
    """``--map`` values: ``KEY=VALUE`` pairs and/or YAML files, merged left to right."""
    if not values:
        return None
    data: dict[str, Any] = {}
    for value in values:
        if "=" in value:
            key, _, text = value.partition("=")
            key = key.strip()
            if key.startswith("camera."):
                data.setdefault("cameras", {})[key[len("camera.") :]] = text
            elif key == "joint_names":
                data[key] = [n.strip() for n in text.split(",") if n.strip()]
            elif key == "fps":
                try:
                    data[key] = float(text)
                except ValueError:
                    raise ConfigError(where, [ConfigIssue(value, "fps must be a number")]) from None
            else:
                data[key] = text
            continue
        data.update(_from_yaml(cwd / Path(value).expanduser(), where))
    try:
        return DatasetMapping.model_validate(data)
    except ValidationError as exc:
        issues = [ConfigIssue(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()]
        raise ConfigError(where, issues) from None


def _from_yaml(path: Path, where: str) -> dict[str, Any]:
    from reflex.config.loader import parse_yaml

    if not path.is_file():
        raise ConfigError(where, [ConfigIssue(str(path), "expected KEY=VALUE or a YAML mapping file")])
    if path.stat().st_size > MAX_MAP_FILE_BYTES:
        raise ConfigError(where, [ConfigIssue(str(path), f"larger than {MAX_MAP_FILE_BYTES} bytes")])
    data, _ = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if isinstance(data, dict) and isinstance(data.get("mapping"), dict):
        data = data["mapping"]
    if not isinstance(data, dict):
        raise ConfigError(where, [ConfigIssue(str(path), "expected a mapping (state, action, cameras, task)")])
    return data
