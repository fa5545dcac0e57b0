"""Reading untrusted YAML with every dimension bounded, and duplicate keys refused.

PyYAML accepts a repeated key silently (the last one wins), which let a file that says
``mode: dry_run`` at the top run in ``apply_actions`` because of a later line. Its composer also
recurses once per nesting level and aliases expand into exponentially large trees in any code that
walks the data. So the text is first scanned as a flat event stream (no recursion, nothing built):

* nesting deeper than :data:`MAX_DEPTH` levels is refused;
* the size of the tree once every alias is expanded is counted (an anchor remembers the size of its
  node) and refused above :data:`MAX_NODES` — a "billion laughs" file stops after a few events;

and only then composed into nodes, where every mapping is checked for a key written twice.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_BYTES = 1024 * 1024  # a session file is a page of text; 1 MiB leaves room for long comments
MAX_DEPTH = 64  # the deepest real block (cameras.<name>.config.<field>[i]) is under 10
MAX_NODES = 100_000  # scalars + collections after expanding aliases; real files have a few hundred
_LOADER: Any = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader


class YamlProblem(Exception):
    """What is wrong and on which 1-based line (None: the whole file)."""

    def __init__(self, message: str, line: int | None = None, path: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.path = path  # the YAML path, when known


def load_bounded_yaml(text: str) -> tuple[Any, yaml.Node | None]:
    """The data and its node tree (for line numbers). Raises :class:`YamlProblem`."""
    if len(text.encode("utf-8", errors="replace")) > MAX_BYTES:
        raise YamlProblem(f"the file is larger than {MAX_BYTES // 1024} KiB; a session file is a page of YAML")
    try:
        _scan_events(text)
        node = yaml.compose(text, Loader=_LOADER)
        if node is not None:
            _check_duplicates(node)
        data = yaml.load(text, Loader=_LOADER) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        if "nesting depth" in problem:  # libyaml >= 0.2.5 (PyYAML 6.0.4) stops deep flow nesting while scanning
            raise YamlProblem(f"nesting deeper than {MAX_DEPTH} levels", line) from None
        raise YamlProblem(f"invalid YAML: {problem}", line) from None
    return data, node


def _scan_events(text: str) -> None:
    """Depth and alias-expanded size, from the event stream (linear time, constant stack)."""
    sizes: list[int] = []  # expanded size of each open collection
    anchors_of_open: list[str | None] = []
    anchored: dict[str, int] = {}
    total = 0
    for event in yaml.parse(text, Loader=_LOADER):
        line = event.start_mark.line + 1 if event.start_mark is not None else 0
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            if len(sizes) >= MAX_DEPTH:
                raise YamlProblem(f"nesting deeper than {MAX_DEPTH} levels", line)
            sizes.append(1)
            anchors_of_open.append(event.anchor)
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            size = sizes.pop()
            anchor = anchors_of_open.pop()
            if anchor is not None:
                anchored[anchor] = size
            if sizes:
                sizes[-1] += size
            else:
                total += size
            _check_total(total + sum(sizes), line)
            continue
        if isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                anchored[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            size = anchored.get(event.anchor or "", 1)
        else:
            continue
        if sizes:
            sizes[-1] += size
        else:
            total += size
        _check_total(total + sum(sizes), line)


def _check_total(count: int, line: int) -> None:
    if count > MAX_NODES:
        raise YamlProblem(
            f"the document expands to more than {MAX_NODES} values (aliases included): "
            "a session file never needs that many",
            line,
        )


def _check_duplicates(root: yaml.Node) -> None:
    """Every mapping, at any depth: a key written twice is an error naming both lines."""
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:  # an alias: the same node object, already checked
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    stack.append((value_node, path))
                    continue
                stack.append((value_node, (*path, key_node.value)))
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if key in first:
                    raise YamlProblem(
                        f"duplicate key (first on line {first[key]}, again on line {line}); a repeated "
                        "key would silently replace the first value",
                        line,
                        (*path, key_node.value),
                    )
                first[key] = line
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
