"""Bytes <-> contract messages. Decoding is strict and every failure says exactly what was wrong."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from reflex.hardware.subprocess.contract import Ack, ErrorReply
from reflex.hardware.subprocess.errors import ContractViolation, NonFiniteNumber, excerpt

M = TypeVar("M", bound=BaseModel)
MAX_ERRORS = 4


def encode(message: BaseModel) -> bytes:
    """One compact JSON line (keys in declaration order, so shell scripts can pattern-match)."""
    return message.model_dump_json().encode() + b"\n"


def _reject_constant(name: str) -> Any:
    raise NonFiniteNumber(f"{name} is not allowed (JSON has no NaN/Infinity; numbers must be finite)")


def reply_id_despite_nan(raw: bytes) -> Any:
    """The ``id`` of a line that only failed on NaN/Infinity (None if it has none)."""
    data = json.loads(raw)
    return data.get("id") if isinstance(data, dict) else None


def decode_object(raw: bytes, what: str) -> dict[str, Any]:
    """Parse one JSON object. ``what`` names the output in errors ("stdout", "line")."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ContractViolation(f"{what} is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise ContractViolation(f"{what} is empty, expected a JSON object")
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise ContractViolation(
                f"{what} is partial JSON (ended after {len(text)} bytes: {exc.msg}): {excerpt(text)}"
            ) from None
        raise ContractViolation(
            f"{what} is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {excerpt(text)}"
        ) from None
    if not isinstance(data, dict):
        raise ContractViolation(f"{what} must be a JSON object, got {type(data).__name__}: {excerpt(text)}")
    return data


def _loc(loc: tuple[Any, ...], data: Any) -> tuple[str, bool]:
    """A dotted path for an error location, and whether it lies on the union branch matching the
    actual data. Union members appear in ``loc`` as tags: type names like 'list[float]' for the
    state union, the ``encoding`` value for the image union; they are not part of the path."""
    parts: list[str] = []
    node = data
    on_branch = True
    tagged: object = None  # the node whose union tag was already skipped
    for item in loc:
        if isinstance(item, str) and "[" in item:
            expected = {"list": list, "dict": dict}.get(item.split("[")[0])
            if expected is not None and not isinstance(node, expected):
                on_branch = False
            continue
        if isinstance(node, dict) and node.get("encoding") == item and tagged is not node:
            tagged = node
            continue
        parts.append(str(item))
        if isinstance(node, dict):
            node = node.get(item)
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            node = node[item]
        else:
            node = None
    return ".".join(parts) or "<root>", on_branch


def describe(exc: ValidationError, data: Any) -> str:
    """A short, human explanation of a validation error, naming missing/unexpected keys."""
    missing: list[str] = []
    unexpected: list[str] = []
    other: list[str] = []
    for err in exc.errors():
        where, on_branch = _loc(err["loc"], data)
        if not on_branch:
            continue
        if err["type"] == "missing":
            missing.append(where)
        elif err["type"] == "extra_forbidden":
            unexpected.append(where)
        else:
            got = err.get("input")
            got_text = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
            other.append(f"{where}: {err['msg'].lower()}{got_text}")
    parts = []
    if missing:
        parts.append(f"missing key(s) {', '.join(missing)}")
    if unexpected:
        parts.append(f"unexpected key(s) {', '.join(unexpected)} (put robot-specific data in 'extras')")
    parts.extend(dict.fromkeys(other))
    if not parts:  # every error was on another union branch: report the first as-is
        first = exc.errors()[0]
        parts.append(f"{_loc(first['loc'], data)[0]}: {first['msg'].lower()}")
    shown = parts[:MAX_ERRORS]
    if len(parts) > MAX_ERRORS:
        shown.append(f"and {len(parts) - MAX_ERRORS} more")
    return "; ".join(shown)


def validate(model: type[M], data: dict[str, Any], what: str) -> M:
    """Validate ``data`` as ``model``; a reply of the form ``{"ok": false, "error": ...}`` raises
    :class:`ContractViolation` carrying the connector's own error text."""
    if data.get("ok") is False:
        try:
            error = ErrorReply.model_validate(data)
        except ValidationError as exc:
            raise ContractViolation(f"malformed error reply: {describe(exc, data)}") from None
        raise ContractViolation(f"the connector reported an error: {error.error}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ContractViolation(f"{what} breaks the contract: {describe(exc, data)}") from None


def validate_ack(raw: bytes, what: str, empty_ok: bool) -> Ack | None:
    """An acknowledgement; per call, empty stdout counts as one."""
    if empty_ok and not raw.strip():
        return None
    return validate(Ack, decode_object(raw, what), "reply")
