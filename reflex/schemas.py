"""Every JSON Schema the project publishes, rendered as text (path relative to ``schemas/``).

Areas with their own schemas add a renderer to ``RENDERERS``: a "module:function" returning
``{relative_path: text}``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

RENDERERS: list[str] = [
    "reflex.hardware.subprocess.contract:render_schemas",
    "reflex.serve.schemas:render_schemas",
    "reflex.targets.export_manifest:render_schemas",
]


# Python spellings pydantic (< 2.14) writes for non-string discriminator values; 2.14 writes JSON's.
_JSON_SPELLING = {"True": "true", "False": "false", "None": "null"}


def canonical(node: Any) -> Any:
    """``node`` with what pydantic leaves free made canonical, so every pydantic version in our
    range writes the same bytes: discriminator mapping keys use the JSON spelling of the value
    (``true``, not Python's ``True``). Key order is fixed by ``dumps``."""
    if isinstance(node, list):
        return [canonical(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: canonical(value) for key, value in node.items()}
    mapping = out.get("discriminator", {}).get("mapping") if isinstance(out.get("discriminator"), dict) else None
    if isinstance(mapping, dict):
        out["discriminator"]["mapping"] = {_JSON_SPELLING.get(k, k): v for k, v in mapping.items()}
    return out


def bundled_dir() -> Path:
    """The schemas shipped inside the package (``reflex/bundled_schemas``, a link to ``schemas/`` in
    the repository; real files in a wheel)."""
    from importlib import resources

    return Path(str(resources.files("reflex"))) / "bundled_schemas"


def dumps(schema: dict[str, Any]) -> str:
    """The one text form of every published schema (all renderers write through it)."""
    return json.dumps(canonical(schema), indent=2, sort_keys=True) + "\n"


def session_schema() -> dict[str, Any]:
    from reflex.config.session import SessionConfig

    schema = SessionConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Reflex session config"
    return schema


def render_all() -> dict[str, str]:
    out = {"session.schema.json": dumps(session_schema())}
    for ref in RENDERERS:
        module, _, attr = ref.partition(":")
        render: Callable[[], dict[str, str]] = getattr(importlib.import_module(module), attr)
        out.update(render())
    return out
