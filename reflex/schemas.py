"""Every JSON Schema the project publishes, rendered as text (path relative to ``schemas/``).

Areas with their own schemas add a renderer to ``RENDERERS``: a "module:function" returning
``{relative_path: text}``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from typing import Any

RENDERERS: list[str] = [
    "reflex.hardware.subprocess.contract:render_schemas",
    "reflex.serve.schemas:render_schemas",
]


def dumps(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


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
