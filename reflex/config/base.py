"""Building blocks shared by every config model: strict models, kind unions, plugin loading."""

from __future__ import annotations

import importlib
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

if TYPE_CHECKING:
    from collections.abc import Callable

    from reflex.config.stop import StopConfig
    from reflex.ports import Hardware

PLUGIN_TAG = "plugin"
PLUGIN_PATTERN = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"


class StrictModel(BaseModel):
    """Every config model forbids unknown keys (a typo is an error, never a silent default) and
    non-finite numbers (``.nan`` / ``.inf`` would switch a limit off or poison a pose)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass
class BuildContext:
    """What a kind needs to build its runtime object from its config."""

    config_dir: Path
    mode: str = "dry_run"
    control_rate_hz: float = 30.0
    api_key: str | None = None
    verbose: bool = False
    session_id: str = ""
    hardware: Hardware | None = None  # set before cameras are built
    # safety.max_delta (one number or one per joint, in action units): hardware that slews or
    # clamps commands itself keeps every command it sends within this of the measured position
    max_delta: float | list[float] | None = None
    stop: StopConfig | None = None  # safety.stop, for connectors that can choose how they stop
    signals: Callable[[], int] | None = None  # how many Ctrl-C / SIGTERM so far (interruptible stages)
    extras: dict[str, Any] = field(default_factory=dict)

    def resolve_path(self, value: str | Path) -> Path:
        """Paths in a config file are relative to the file, not to the working directory."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.config_dir / path).resolve()


class PluginLoadError(ImportError):
    """A plugin path that cannot be loaded, whatever the reason (exit 2 when found in a config)."""


def load_object(dotted: str) -> Any:
    """Import ``package.module:Name``. Any failure (missing module, a syntax error in it, an
    exception while it runs) is a :class:`PluginLoadError` naming the module, the file and line
    where it failed, and the first line of the error."""
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):  # the plugin module itself is missing
            raise PluginLoadError(f"cannot import plugin module '{module_name}': {exc}") from exc
        raise PluginLoadError(f"cannot import plugin module '{module_name}': {_where(exc)}{exc}") from exc
    except (Exception, SystemExit) as exc:  # plugin code may raise anything while importing
        raise PluginLoadError(
            f"cannot import plugin module '{module_name}': {_where(exc)}{type(exc).__name__}: "
            f"{_first_line(exc)}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError as exc:
        raise PluginLoadError(f"module '{module_name}' has no attribute '{attr}'") from exc


def _where(exc: BaseException) -> str:
    """``file:line: `` of the error: the offending line of a SyntaxError, else the innermost frame
    outside the import machinery."""
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}: "
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith("<frozen")]
    return f"{frames[-1].filename}:{frames[-1].lineno}: " if frames else ""


def _first_line(exc: BaseException) -> str:
    text = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc)
    lines = text.strip().splitlines()
    first = lines[0] if lines else ""
    return first if len(first) <= 200 else first[:197] + "..."


def kind_of(value: Any) -> str | None:
    """Discriminator: built-in kinds by name, anything with ``module:Class`` is a plugin."""
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    if not isinstance(kind, str):
        return None
    return PLUGIN_TAG if ":" in kind else kind


def kind_union(specs: list[type[BaseModel]], plugin: type[BaseModel] | None) -> Any:
    """An ``Annotated`` union discriminated on ``kind`` (with a plugin fallback)."""
    members: list[Any] = [Annotated[s, Tag(_literal_kind(s))] for s in specs]
    if plugin is not None:
        members.append(Annotated[plugin, Tag(PLUGIN_TAG)])
    return Annotated[Union[tuple(members)], Discriminator(kind_of)]  # noqa: UP007


def kind_names(specs: list[type[BaseModel]]) -> list[str]:
    return [_literal_kind(s) for s in specs]


def _literal_kind(spec: type[BaseModel]) -> str:
    annotation = spec.model_fields["kind"].annotation
    args: tuple[Any, ...] = tuple(getattr(annotation, "__args__", ()))
    if len(args) != 1 or not isinstance(args[0], str):
        raise TypeError(f"{spec.__name__}.kind must be a single Literal string")
    return str(args[0])


PluginKind = Annotated[
    str, Field(pattern=PLUGIN_PATTERN, description="Dotted path 'package.module:Class'.")
]
