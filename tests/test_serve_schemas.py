"""The committed schemas/serve/*.schema.json match the models, and the models match the server."""

from __future__ import annotations

import json
from pathlib import Path

from reflex.serve.request import REQUEST_FIELDS
from reflex.serve.schemas import render_schemas, schema_documents, write_schemas

REPO = Path(__file__).resolve().parent.parent


def test_committed_serve_schemas_are_up_to_date() -> None:
    for rel, text in render_schemas().items():
        path = REPO / "schemas" / rel
        assert path.is_file(), f"{path} missing: run `reflex schema`"
        assert path.read_text() == text, f"{path} is stale: run `reflex schema`"


def test_write_schemas_writes_every_document(tmp_path: Path) -> None:
    written = write_schemas(tmp_path / "serve")
    assert sorted(p.name for p in written) == sorted(schema_documents())
    for path in written:
        assert json.loads(path.read_text())["$schema"].startswith("https://json-schema.org/")


def test_request_schema_lists_exactly_the_fields_the_server_accepts() -> None:
    schema = schema_documents()["act_request.schema.json"]
    assert set(schema["properties"]) == set(REQUEST_FIELDS)
    assert schema["additionalProperties"] is False and schema["required"] == ["state"]
