"""Read a session YAML file into a :class:`SessionConfig`, or fail with every problem located.

Errors name the YAML path (``hardware.config.left.channel``), the line, what was expected and
what came. ``${VAR}`` / ``${VAR:-default}`` in string values is replaced from the environment
(for secrets); an unset variable without a default is an error at its path.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from yaml import MappingNode, SequenceNode

from reflex.config.base import PLUGIN_TAG, PluginLoadError, load_object
from reflex.config.bounds import bounded_values, dotted
from reflex.config.yaml_bounded import MAX_BYTES, YamlProblem, load_bounded_yaml
from reflex.errors import ConfigError, ConfigIssue

ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Path_ = tuple[str | int, ...]
_UNION_MEMBER = re.compile(r"(float|int|str|bool|list\[\w+\]|tuple\[[\w, .]+\]|function-\w+\[.*\])")


def load_session_config(path: Path) -> Any:
    """Parse, interpolate and validate ``path``. Raises :class:`ConfigError`."""
    from reflex.config.session import SessionConfig

    source = str(path)
    if path.is_dir():
        raise ConfigError(source, [ConfigIssue("", f"{path} is a directory; expected a YAML session file")])
    if not path.is_file():
        what = "config file not found" if not path.exists() else "not a regular file"
        raise ConfigError(source, [ConfigIssue("", f"{what}: {path}")])
    if path.stat().st_size > MAX_BYTES:
        raise ConfigError(source, [ConfigIssue("", f"the file is larger than {MAX_BYTES // 1024} KiB; "
                                               "a session file is a page of YAML")])
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [ConfigIssue("", f"cannot read file: {exc}")]) from exc
    data, lines = parse_yaml(text, source)
    issues: list[ConfigIssue] = []
    data = interpolate_env(data, (), lines, issues)
    if not isinstance(data, dict):
        issues.append(ConfigIssue("", f"expected a mapping at the top level, got {_type_name(data)}", 1))
    if issues:
        raise ConfigError(source, issues)
    try:
        config = SessionConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _unique([_issue_from_error(e, lines) for e in exc.errors()])) from None
    issues = check_ranges(config, lines) + check_plugins(config, lines)
    if issues:
        raise ConfigError(source, issues)
    return config


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Path_, int]]:
    """The data and a map from each key path to its 1-based line number (bounded, no duplicates)."""
    try:
        data, node = load_bounded_yaml(text)
    except YamlProblem as exc:
        raise ConfigError(source, [ConfigIssue(format_path(exc.path), exc.message, exc.line)]) from None
    lines: dict[Path_, int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _index_lines(node: Any, path: Path_, lines: dict[Path_, int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            key_path = (*path, key)
            _index_lines(value_node, key_path, lines)
            # the key's own line wins over its value's (a block value starts on the next line)
            lines[key_path] = key_node.start_mark.line + 1
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def interpolate_env(value: Any, path: Path_, lines: dict[Path_, int], issues: list[ConfigIssue]) -> Any:
    if isinstance(value, dict):
        return {k: interpolate_env(v, (*path, k), lines, issues) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, (*path, i), lines, issues) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        issues.append(
            ConfigIssue(format_path(path), f"environment variable {name} is not set", _line(lines, path))
        )
        return ""

    return ENV_PATTERN.sub(substitute, value)


def check_ranges(config: Any, lines: dict[Path_, int]) -> list[ConfigIssue]:
    """Values outside their field's sensible range, unless the expert override names the field."""
    block = config.expert_override
    allowed = set(block.allow) if block is not None else set()
    values = bounded_values(config)
    issues = []
    for value in values:
        if value.inside or value.field in allowed:
            continue
        issues.append(ConfigIssue(
            format_path(value.path),
            f"{value.value:g} is outside the sensible range ({value.describe_range()}): {value.why}. "
            f"To go beyond it on purpose, list '{value.field}' in expert_override.allow with a reason",
            _line(lines, value.path),
        ))
    if block is not None:
        known = {v.field for v in values}
        for index, name in enumerate(block.allow):
            if name not in known:
                where = ("expert_override", "allow", index)
                issues.append(ConfigIssue(format_path(where), f"'{name}' is not a field with a sensible "
                                          "range in this config", _line(lines, where)))
    return issues


def check_plugins(config: Any, lines: dict[Path_, int]) -> list[ConfigIssue]:
    """Dotted-path kinds must import now, not when the robot is half brought up."""
    blocks: list[tuple[Path_, Any]] = [(("target",), config.target), (("hardware",), config.hardware)]
    blocks += [(("cameras", name), cam) for name, cam in config.cameras.items()]
    issues = []
    for path, block in blocks:
        if ":" in block.kind:
            try:
                load_object(block.kind)
            except PluginLoadError as exc:
                kind_path = (*path, "kind")
                issues.append(ConfigIssue(format_path(kind_path), str(exc), _line(lines, kind_path)))
    return issues


def format_path(path: Path_) -> str:
    return dotted(path)


def _issue_from_error(error: Any, lines: dict[Path_, int]) -> ConfigIssue:
    loc = _strip_tags(tuple(error["loc"]))
    kind = error["type"]
    came = error.get("input")
    if kind == "union_tag_invalid":
        expected = error["ctx"]["expected_tags"].replace(f"'{PLUGIN_TAG}'", "a plugin 'package.module:Class'")
        message = f"unknown kind '{error['ctx']['tag']}'; expected one of {expected}"
        loc = (*loc, "kind")
    elif kind == "union_tag_not_found":
        message = "missing 'kind'"
    elif kind == "extra_forbidden":
        message = f"unknown field (value {_short(came)})" + did_you_mean(tuple(error["loc"]))
    elif kind == "string_pattern_mismatch" and loc and loc[-1] == "kind":
        message = f"'{came}' is not a plugin path; expected 'package.module:Class' or a built-in kind"
    elif kind == "missing":
        message = "required field is missing"
    else:
        message = f"{error['msg'].removeprefix('Value error, ')} (got {_short(came)})"
    return ConfigIssue(format_path(loc), message, _line(lines, loc))


def _unique(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    """One issue per path: a value failing every member of a union (``float | list[float]``)
    is one problem, reported as the first member saw it."""
    seen: set[str] = set()
    out = []
    for issue in issues:
        if issue.path not in seen:
            seen.add(issue.path)
            out.append(issue)
    return out



def did_you_mean(raw_loc: tuple[Any, ...]) -> str:
    """``; did you mean 'max_delta'?`` from the field names valid where the unknown key sits."""
    import difflib

    from reflex.config.session import SessionConfig

    names = sorted(fields_at(SessionConfig, raw_loc[:-1]))
    key = str(raw_loc[-1]) if raw_loc else ""
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.6)
    if close:
        return f"; did you mean '{close[0]}'?"
    if names:
        return f"; expected one of {', '.join(names)}"
    return "; check the spelling against the reference"


def fields_at(root: type[BaseModel], raw_loc: tuple[Any, ...]) -> set[str]:
    """The field names of the model(s) at a pydantic error location (tags and dict keys skipped)."""
    models: list[type[BaseModel]] = [root]
    for part in raw_loc:
        inside = [m for m in models if part in m.model_fields]
        if inside:
            models = [c for m in inside for c in _models_in(m.model_fields[part].annotation)]
            continue
        tagged = [m for m in models if _kind_literal(m) == part]
        if tagged:  # a union tag in the location
            models = tagged
        # otherwise a dict key or list index: the models stay
    return {name for m in models for name in m.model_fields}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Model classes reachable inside an annotation (unions, Optional, list, dict values, Annotated)."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    out: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        out.extend(_models_in(arg))
    return out


def _kind_literal(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("kind")
    args: tuple[Any, ...] = tuple(getattr(field.annotation, "__args__", ())) if field is not None else ()
    return args[0] if len(args) == 1 and isinstance(args[0], str) else None


def _strip_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """pydantic puts the union tag into the location (``hardware.sim.config``): drop it."""
    out: list[Any] = []
    for i, part in enumerate(loc):
        after_union_field = i > 0 and loc[i - 1] in {"target", "hardware"} and len(out) == 1
        in_camera = len(out) == 2 and out[0] == "cameras" and i == 2
        if (after_union_field or in_camera) and isinstance(part, str) and _looks_like_tag(part):
            continue
        if isinstance(part, str) and _UNION_MEMBER.fullmatch(part):
            continue  # pydantic names the union member it tried: 'float', 'list[float]'
        out.append(part)
    return tuple(out)


def _looks_like_tag(part: str) -> bool:
    from reflex.cameras.kinds import BUILTIN_CAMERAS
    from reflex.config.base import kind_names
    from reflex.hardware.kinds import BUILTIN_HARDWARE
    from reflex.targets.kinds import BUILTIN_TARGETS

    tags = {PLUGIN_TAG}
    for specs in (BUILTIN_CAMERAS, BUILTIN_HARDWARE, BUILTIN_TARGETS):
        tags.update(kind_names(specs))  # type: ignore[arg-type]
    return part in tags


def _line(lines: dict[Path_, int], path: Path_) -> int | None:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type_name(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
