"""The subprocess connector contract: published schemas, strict decoding, config validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, base_session, write_session

from reflex.errors import ConfigError
from reflex.hardware.subprocess import codec
from reflex.hardware.subprocess.contract import (
    Ack,
    ApplyRequest,
    Handshake,
    Observation,
    SafeStopRequest,
    render_schema,
    render_schemas,
    schema_documents,
    write_schemas,
)
from reflex.hardware.subprocess.errors import ContractViolation

NAMES = [f"j{i}" for i in range(3)]


def test_committed_connector_schemas_are_up_to_date(tmp_path: Path) -> None:
    committed = REPO / "schemas" / "connector"
    written = write_schemas(tmp_path)
    assert sorted(p.name for p in written) == sorted(schema_documents())
    for path in written:
        target = committed / path.name
        assert target.is_file(), f"{target} missing: run `reflex schema`"
        assert target.read_text() == path.read_text(), f"{target} is stale: run `reflex schema`"
    for rel, text in render_schemas().items():  # the form `reflex schema` writes
        assert (REPO / "schemas" / rel).read_text() == text, f"schemas/{rel} is stale: run `reflex schema`"
    expected = {"action", "handshake", "observation", "safe-stop", "request", "reply"}
    assert {p.name.removesuffix(".schema.json") for p in committed.glob("*.schema.json")} == expected


def test_schemas_accept_and_reject_the_same_messages_as_the_runtime() -> None:
    """The JSON Schemas are generated from the runtime models; check with an independent validator."""
    jsonschema = pytest.importorskip("jsonschema")
    docs = schema_documents()
    good_obs = {"state": [0.1, 0.2], "timestamp": 12.5, "images": {"top": {"encoding": "png", "data": "AA=="}},
                "task": "pick", "extras": {"temp": 31}}
    bad_obs: list[dict[str, Any]] = [
        {"images": {}},  # missing state
        {"state": [0.1], "temperature": 3},  # unexpected key
        {"state": ["0.1"]},  # a string is not a number
        {"state": [0.1], "images": {"top": {"encoding": "bmp", "data": ""}}},  # undeclared encoding
        {"state": [0.1], "images": {"top": {"encoding": "path"}}},  # path image without a path
    ]
    validator = jsonschema.Draft202012Validator(docs["observation.schema.json"])
    assert not list(validator.iter_errors(good_obs))
    Observation.model_validate(good_obs)
    for bad in bad_obs:
        assert list(validator.iter_errors(bad)), bad
        with pytest.raises(ContractViolation):
            codec.validate(Observation, bad, "observation")

    hs = {"v": 1, "id": 1, "state_names": NAMES, "lower": [0, 0, 0], "upper": [1, 1, 1],
          "cameras": [{"name": "top", "width": 128, "height": 96}]}
    assert not list(jsonschema.Draft202012Validator(docs["handshake.schema.json"]).iter_errors(hs))
    assert list(jsonschema.Draft202012Validator(docs["handshake.schema.json"]).iter_errors({**hs, "v": 2}))
    Handshake.model_validate(hs)

    apply = ApplyRequest(v=1, op="apply", id=3, session_id="s", t_sent=1.0, step=0, chunk_id=1,
                         t_target=None, action=[0.0, 0.5, 1.0])
    stop = SafeStopRequest(v=1, op="safe_stop", id=4, session_id="s", t_sent=2.0, step=None,
                           reason="observe failed", mode="dry_run")
    for name, message in (("action", apply), ("safe-stop", stop), ("request", apply), ("request", stop)):
        data = json.loads(codec.encode(message))
        assert not list(jsonschema.Draft202012Validator(docs[f"{name}.schema.json"]).iter_errors(data))
    reply = jsonschema.Draft202012Validator(docs["reply.schema.json"])
    assert not list(reply.iter_errors({"id": 3, "ok": True}))
    assert not list(reply.iter_errors({"id": 3, "ok": False, "error": "motor 3 overheated"}))
    assert list(reply.iter_errors({"id": 3, "ok": True, "extra": 1}))


def test_rendered_schema_is_deterministic() -> None:
    first = {k: render_schema(v) for k, v in schema_documents().items()}
    second = {k: render_schema(v) for k, v in schema_documents().items()}
    assert first == second
    assert all(text.endswith("\n") for text in first.values())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", "is empty"),
        (b"hello world", "is not JSON"),
        (b'{"state": [0.1, 0.2', "partial JSON"),
        (b'{"state": [NaN]}', "NaN is not allowed"),
        (b'{"state": [Infinity]}', "Infinity is not allowed"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_decoding_names_what_was_wrong(raw: bytes, expected: str) -> None:
    with pytest.raises(ContractViolation, match=expected):
        codec.decode_object(raw, "stdout")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"images": {}}, "missing key(s) state"),
        ({"state": [1.0], "temperature": 3}, "unexpected key(s) temperature"),
        ({"state": [1.0, "x"]}, "state.1: input should be a valid number (got 'x')"),
        ({"state": {"a": True}}, "state.a: input should be a valid number (got True)"),
        ({"state": [1e999]}, "state.0: input should be a finite number"),
        ({"state": [1.0], "images": {"top": {"encoding": "png"}}}, "missing key(s) images.top.data"),
        ({"state": [1.0], "timestamp": "now"}, "timestamp: input should be a valid number"),
        ({"ok": False, "error": "gripper jammed"}, "the connector reported an error: gripper jammed"),
    ],
)
def test_validation_errors_are_short_and_precise(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ContractViolation) as info:
        codec.validate(Observation, data, "observation")
    assert expected in str(info.value)


def test_empty_stdout_acknowledges_per_call_only() -> None:
    assert codec.validate_ack(b"", "stdout", empty_ok=True) is None
    assert codec.validate_ack(b'{"ok": true}', "stdout", empty_ok=True) == Ack(ok=True)
    with pytest.raises(ContractViolation, match="is empty"):
        codec.validate_ack(b"", "line", empty_ok=False)
    with pytest.raises(ContractViolation, match="unexpected key"):
        codec.validate_ack(b'{"ok": true, "moved": 1}', "stdout", empty_ok=True)


# -- config -----------------------------------------------------------------------------------

PER_CALL: dict[str, Any] = {
    "protocol": "per_call",
    "observe_command": "bash observe.sh",
    "action_command": "bash act.sh",
    "safe_stop_command": "bash stop.sh",
    "state_names": NAMES,
    "lower": [-1, -1, -1],
    "upper": [1, 1, 1],
}


def _load(tmp_path: Path, config: dict[str, Any], mode: str = "dry_run") -> Any:
    from reflex.config.loader import load_session_config

    session = base_session(mode=mode, hardware={"kind": "subprocess", "config": config}, cameras={})
    return load_session_config(write_session(tmp_path, session))


def test_a_valid_per_call_config_declares_its_layout(tmp_path: Path) -> None:
    config = _load(tmp_path, PER_CALL, mode="apply_actions")
    layout = config.hardware.layout()
    assert layout.names == tuple(NAMES)
    assert list(layout.upper) == [1, 1, 1]
    assert config.hardware.can_apply()


@pytest.mark.parametrize(
    ("change", "mode", "expected"),
    [
        ({"action_command": None}, "apply_actions", "apply_actions needs a connector that can apply"),
        ({"safe_stop_command": None}, "apply_actions", "apply_actions needs a connector that can apply"),
        ({"observe_command": None}, "dry_run", "per_call needs observe_command"),
        ({"lower": None, "upper": None}, "dry_run", "needs state_names, lower and upper"),
        ({"upper": [1, 1]}, "dry_run", "upper has 2 entries, state_names has 3"),
        ({"lower": [2, -1, -1]}, "dry_run", "lower limit above upper limit"),
        ({"state_names": ["a", "a", "b"]}, "dry_run", "state_names must be unique"),
        ({"observe_command": "bash 'unterminated"}, "dry_run", "cannot split command"),
        ({"observe_command": ""}, "dry_run", "command is empty"),
        ({"command": "python3 arm.py"}, "dry_run", "`command` is for protocol persistent"),
        ({"protocol": "persistent", "command": "python3 arm.py"}, "dry_run",
         "observe_command, action_command are per_call fields"),
        ({"bogus": 1}, "dry_run", "bogus"),
    ],
)
def test_config_errors_name_the_problem(
    tmp_path: Path, change: dict[str, Any], mode: str, expected: str
) -> None:
    config = {k: v for k, v in {**PER_CALL, **change}.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, config, mode=mode)
    assert expected in str(info.value)
    assert "hardware" in str(info.value)


def test_persistent_config_may_leave_the_layout_to_the_handshake(tmp_path: Path) -> None:
    config = _load(tmp_path, {"protocol": "persistent", "command": "python3 arm.py"}, mode="apply_actions")
    assert config.hardware.layout() is None
    assert config.hardware.can_apply()  # decided by the handshake at connect
