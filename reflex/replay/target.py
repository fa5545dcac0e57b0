"""The target a replay runs: an export directory, ``builtin:NAME``, or a target block in YAML.

Any target kind works (local, http, websocket, webrtc, plugins): the block is validated with the
same union as a session's ``target`` and built through the same :class:`BuildContext`. Replay
stamps the recording's seed into kinds that take one (unless the block or ``--seed`` pins it),
so a seeded policy sees the noise it saw on the robot.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reflex.config.base import BuildContext, StrictModel
from reflex.errors import ConfigError, ConfigIssue, SessionAborted, SetupError
from reflex.ports import Observation, Target, TargetInfo
from reflex.targets.base import TargetSpec

SOURCE = "reflex replay"


@dataclass
class TargetChoice:
    spec: TargetSpec
    config_dir: Path
    source: str  # what the user passed, for messages

    @property
    def takes_seed(self) -> bool:
        return "seed" in type(self.spec).model_fields

    @property
    def pinned_seed(self) -> int | None:
        value = getattr(self.spec, "seed", None) if self.takes_seed else None
        return value if isinstance(value, int) else None


def parse_target(value: str, cwd: Path) -> TargetChoice:
    """``--target``: an export directory, ``builtin:NAME``, or a YAML file (a session file or a
    bare target block). Raises ConfigError naming the YAML path of each problem."""
    from reflex.targets.export_manifest import BUILTIN_PREFIX, MANIFEST_NAME
    from reflex.targets.local.config import LocalTargetSpec

    path = Path(value).expanduser()
    if value.startswith(BUILTIN_PREFIX):
        # unvalidated: a wrong name fails when the target loads (exit 3, the built-ins listed)
        return TargetChoice(LocalTargetSpec.model_construct(export=value), cwd, value)
    if not path.is_absolute():
        path = (cwd / path).resolve()
    if path.is_dir():
        if not (path / MANIFEST_NAME).is_file():
            raise ConfigError(SOURCE, [ConfigIssue("--target", f"{path} is a directory without {MANIFEST_NAME}")])
        return TargetChoice(LocalTargetSpec(export=str(path)), cwd, value)
    if path.is_file() and path.suffix in (".yaml", ".yml"):
        return TargetChoice(_spec_from_yaml(path), path.parent, value)
    what = "does not exist" if not path.exists() else "is neither a directory nor a .yaml file"
    raise ConfigError(
        SOURCE,
        [ConfigIssue("--target", f"'{value}' {what}: expected an export directory, builtin:NAME, or a YAML "
                     "file with a target block")],
    )


def target_from_recording(meta: Any, cwd: Path) -> tuple[TargetChoice, str]:
    """No ``--target``: the target block the recorded session ran (its export, its URL), and a
    label for the report. Relative exports resolve against the recorded config file's folder."""
    from pydantic import TypeAdapter, ValidationError

    from reflex.config.session import TargetBlock

    block = (meta.config_resolved or {}).get("target")
    if not isinstance(block, dict):
        raise ConfigError(SOURCE, [ConfigIssue("--target", "the recording names no target; pass --target")])
    try:
        spec: TargetSpec = TypeAdapter(TargetBlock).validate_python(block)
    except ValidationError as exc:
        raise ConfigError(SOURCE, [ConfigIssue("--target", f"the recording's target block is not valid today "
                                                          f"({exc.errors()[0]['msg']}); pass --target")]) from None
    config_dir = (cwd / Path(meta.config_path or ".").expanduser()).parent
    label = str(block.get("export") or block.get("url") or block.get("kind"))
    return TargetChoice(spec, config_dir.resolve(), label), label


def _spec_from_yaml(path: Path) -> TargetSpec:
    from pydantic import ValidationError

    from reflex.config.loader import _issue_from_error, interpolate_env, parse_yaml
    from reflex.config.session import TargetBlock

    class _TargetFile(StrictModel):
        target: TargetBlock  # type: ignore[valid-type]

    source = str(path)
    data, lines = parse_yaml(path.read_text(), source)
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigIssue("", "expected a mapping (a target block or a session file)", 1)])
    if "target" not in data:  # a bare block: index its lines under ``target`` like a session file's
        data = {"target": data}
        lines = {("target", *k): v for k, v in lines.items()}
    issues: list[ConfigIssue] = []
    data = interpolate_env({"target": data["target"]}, (), lines, issues)
    if issues:
        raise ConfigError(source, issues)
    try:
        spec: TargetSpec = _TargetFile.model_validate(data).target
    except ValidationError as exc:
        raise ConfigError(source, [_issue_from_error(e, lines) for e in exc.errors()]) from None
    return spec


@dataclass
class ReplayTarget:
    """A connected target, with batched inference where the target allows it."""

    target: Target
    info: TargetInfo
    seed_used: int | None
    infer_ms: list[float] = field(default_factory=list)

    @property
    def batched(self) -> bool:
        return self._policy() is not None or callable(getattr(self.target, "infer_batch", None))

    def infer_many(self, observations: list[Observation], batch: bool = True) -> list[np.ndarray]:
        if not observations:
            return []
        t0 = time.perf_counter()
        out: list[np.ndarray] | None = None
        if batch and len(observations) > 1:
            out = self._batched(observations)
        if out is None:
            out = [np.asarray(self.target.infer(obs)[0], dtype=np.float64) for obs in observations]
        self.infer_ms.append((time.perf_counter() - t0) * 1e3)
        return out

    def _batched(self, observations: list[Observation]) -> list[np.ndarray] | None:
        policy = self._policy()
        if policy is not None:
            keys = self.info.image_keys
            shapes = {(k, obs.images[k].image.shape) for obs in observations for k in keys if k in obs.images}
            if len(shapes) != len(keys) or any(k not in obs.images for obs in observations for k in keys):
                return None  # ragged batch: one at a time
            states = np.stack([obs.state.position for obs in observations])
            images = {k: np.stack([obs.images[k].image for obs in observations]) for k in keys}
            chunks = policy.predict_batch(states, images, [obs.step for obs in observations],
                                          [obs.task for obs in observations],
                                          prefixes=[obs.prefix for obs in observations])
            return [np.asarray(c, dtype=np.float64) for c in chunks]
        infer_batch = getattr(self.target, "infer_batch", None)
        if callable(infer_batch):
            results = infer_batch(observations)
            return [np.asarray(r[0] if isinstance(r, tuple) else r, dtype=np.float64) for r in results]
        return None

    def _policy(self) -> Any:
        from reflex.targets.local.target import LocalTarget

        return self.target.policy if isinstance(self.target, LocalTarget) else None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing after replay: nothing left to protect
            self.target.close()


class TargetPool:
    """One connected target per seed: episodes recorded with different seeds each get theirs."""

    def __init__(self, choice: TargetChoice, seed_override: int | None, api_key: str | None, verbose: bool) -> None:
        self.choice = choice
        self.seed_override = seed_override
        self.ctx = BuildContext(config_dir=choice.config_dir, api_key=api_key, verbose=verbose)
        self._targets: dict[int | None, ReplayTarget] = {}

    def seed_for(self, recorded_seed: int | None) -> int | None:
        """The seed replay asks the target for, or None when the target keeps its own."""
        if not self.choice.takes_seed:
            return None
        if self.seed_override is not None:
            return self.seed_override
        if self.choice.pinned_seed is not None:
            return self.choice.pinned_seed
        return recorded_seed

    def get(self, recorded_seed: int | None) -> ReplayTarget:
        seed = self.seed_for(recorded_seed)
        if seed not in self._targets:
            self._targets[seed] = self._open(seed)
        return self._targets[seed]

    def _open(self, seed: int | None) -> ReplayTarget:
        spec = self.choice.spec
        if seed is not None and self.choice.takes_seed:
            spec = spec.model_copy(update={"seed": seed})
        try:
            target = spec.build(self.ctx)
            info = target.connect()
        except (SessionAborted, SetupError):
            raise
        except Exception as exc:
            raise SetupError(
                f"target ({self.choice.source})", f"could not be loaded or reached: {type(exc).__name__}: {exc}"
            ) from exc
        return ReplayTarget(target, info, seed)

    def close(self) -> None:
        for target in self._targets.values():
            target.close()
        self._targets.clear()
