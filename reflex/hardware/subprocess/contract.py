"""The subprocess connector contract, version 1: every message as a strict pydantic model.

The same models validate every message at run time and generate the published JSON Schemas
(``schemas/connector/*.schema.json``), so the documentation cannot drift from what is enforced.

Direction Reflex -> connector: requests (``hello``, ``observe``, ``enable``, ``apply``,
``safe_stop``, ``reset`` (optional, episodes), ``close``, and ``setup`` / ``teardown`` for the per-call setup commands).
Direction connector -> Reflex: the handshake (reply to ``hello``), the observation (reply to
``observe``), an acknowledgement for everything else, or an error reply.
Numbers must be finite; unknown keys are errors; robot-specific data goes in ``extras``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from reflex.schemas import dumps

CONTRACT_VERSION: Final = 1
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE_ID = "https://reflex.dev/schemas/connector/"

Mode = Literal["dry_run", "apply_actions"]
Seconds = Annotated[float, Field(description="CLOCK_MONOTONIC seconds (Python: time.monotonic()).")]


class ContractModel(BaseModel):
    """Strict: no type coercion ("1.0" is not a number), no NaN/Inf, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def _unique(names: list[str], what: str) -> list[str]:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} must be unique; repeated: {dupes}")
    if any(not n for n in names):
        raise ValueError(f"{what} must be non-empty strings")
    return names


# ---------------------------------------------------------------------------------------------
# Requests: Reflex -> connector (stdin)
# ---------------------------------------------------------------------------------------------


class RequestBase(ContractModel):
    v: Literal[1] = Field(description="Contract version.")
    id: int = Field(ge=1, description="Request number; a persistent connector echoes it in its reply.")
    session_id: str = Field(description="Identifier of the Reflex session.")
    t_sent: Seconds = Field(description="When Reflex sent the request (monotonic seconds).")


class HelloRequest(RequestBase):
    """First line a persistent connector receives; it answers with its handshake."""

    op: Literal["hello"]
    mode: Mode = Field(description="dry_run never sends enable/apply; apply_actions may.")
    control_rate_hz: float = Field(gt=0, description="Rate at which observe/apply will be called.")
    reflex_version: str


class SetupRequest(RequestBase):
    """stdin of ``setup_command`` (per-call, once before anything else)."""

    op: Literal["setup"]
    mode: Mode


class TeardownRequest(RequestBase):
    """stdin of ``teardown_command`` (per-call, once at the very end, also after errors)."""

    op: Literal["teardown"]
    mode: Mode


class ObserveRequest(RequestBase):
    op: Literal["observe"]
    step: int | None = Field(
        ge=0, description="Control step the observation is for (null: the read-only probe at connect)."
    )


class EnableRequest(RequestBase):
    """apply_actions only, after the policy answered: power the motors, hold the current pose."""

    op: Literal["enable"]


class ApplyRequest(RequestBase):
    """One action to execute now (per-step execution)."""

    op: Literal["apply"]
    step: int = Field(ge=0)
    chunk_id: int | None = Field(description="Action chunk the action comes from (null if unknown).")
    t_target: Seconds | None = Field(description="When the action should take effect (monotonic).")
    action: list[float] = Field(description="One value per declared joint, in declared order.")


class SafeStopRequest(RequestBase):
    """Stop moving now and hold (or release) safely. Sent once per incident, with the reason."""

    op: Literal["safe_stop"]
    step: int | None = Field(description="Control step of the incident (null before the loop).")
    reason: str
    mode: Mode


class ResetRequest(RequestBase):
    """Optional (episodes with ``reset.kind: command``, apply_actions only): the episode that just
    ended is over; bring the robot and scene back for the next one, then reply. Only sent to a
    connector that declares it (``can_reset`` in the handshake, or ``reset_command`` per call)."""

    op: Literal["reset"]
    episode: int = Field(ge=0, description="Index of the episode that just ended.")
    mode: Mode


class CloseRequest(RequestBase):
    """Last line a persistent connector receives: reply, then exit with code 0."""

    op: Literal["close"]


Request = Annotated[
    Union[  # noqa: UP007
        HelloRequest,
        SetupRequest,
        ObserveRequest,
        EnableRequest,
        ApplyRequest,
        SafeStopRequest,
        ResetRequest,
        CloseRequest,
        TeardownRequest,
    ],
    Field(discriminator="op"),
]

# ---------------------------------------------------------------------------------------------
# Replies: connector -> Reflex (stdout)
# ---------------------------------------------------------------------------------------------


class ReplyBase(ContractModel):
    id: int | None = Field(
        None, description="The request's id. Required in persistent mode, optional per call."
    )


class CameraDeclaration(ContractModel):
    """A camera the connector provides. Inline cameras arrive in observation ``images``."""

    name: str = Field(min_length=1, description="Camera name (the policy's image key).")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    source: Literal["inline", "shm"] = Field(
        "inline",
        description="inline: images come in each observation; shm: Reflex reads the shared-memory "
        "segment named by shm_name (/dev/shm/reflex_cam_<shm_name>).",
    )
    shm_name: str | None = Field(None, description="Segment name for source 'shm' (default: name).")


class Handshake(ReplyBase):
    """Reply to ``hello``: what the robot is. Layout and cameras here are binding for the session."""

    v: Literal[1] = Field(description="Contract version the connector speaks.")
    ok: Literal[True] | None = None
    robot: str = Field("", description="Free-form robot name, for logs and recordings.")
    state_names: list[str] = Field(min_length=1, description="Joint names; their count is the dimension.")
    action_names: list[str] | None = Field(
        None, description="Must equal state_names if given (position control of the same joints)."
    )
    lower: list[float] | None = Field(None, description="Lower joint limits (apply_actions needs them).")
    upper: list[float] | None = Field(None, description="Upper joint limits (apply_actions needs them).")
    cameras: list[CameraDeclaration] = Field(default_factory=list)
    can_apply: bool = Field(True, description="False for a read-only connector (dry_run only).")
    can_reset: bool = Field(False, description="The connector answers 'reset' between episodes (optional).")
    execute_chunks: Literal[False] = Field(
        False,
        description="Reserved, must be false: Reflex sends one guarded action per control step "
        "(`apply`), never a whole chunk, so every command is checked against the measured state.",
    )

    @field_validator("state_names", "action_names")
    @classmethod
    def _names(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else _unique(names, "joint names")


class EncodedImage(ContractModel):
    encoding: Literal["jpeg", "png"]
    data: str = Field(description="Base64 of the JPEG/PNG file bytes.")
    timestamp: Seconds | None = Field(None, description="Capture time; default: the observation's.")


class RawImage(ContractModel):
    encoding: Literal["rgb8"]
    data: str = Field(description="Base64 of height*width*3 bytes, row-major RGB.")
    timestamp: Seconds | None = None


class PathImage(ContractModel):
    encoding: Literal["path"]
    path: str = Field(
        min_length=1, description="JPEG/PNG file; relative paths are from the connector's cwd."
    )
    timestamp: Seconds | None = None


ImagePayload = Annotated[Union[EncodedImage, RawImage, PathImage], Field(discriminator="encoding")]  # noqa: UP007


class Observation(ReplyBase):
    """Reply to ``observe``."""

    v: Literal[1] | None = None
    ok: Literal[True] | None = None
    state: list[float] | dict[str, float] = Field(
        description="Joint positions: a list in declared order, or a name -> value mapping with "
        "exactly the declared names."
    )
    velocity: list[float] | None = None
    effort: list[float] | None = None
    timestamp: Seconds | None = Field(
        None, description="Capture time of the state; default: when Reflex sent the request."
    )
    images: dict[str, ImagePayload] = Field(
        default_factory=dict, description="Declared inline cameras only, by name."
    )
    task: str | None = Field(None, description="Instruction override for this observation.")
    extras: dict[str, Any] = Field(default_factory=dict, description="Anything else, kept as-is.")


class Ack(ReplyBase):
    """Reply to enable/apply/safe_stop/reset/close. Per call, empty stdout also acks."""

    ok: Literal[True]
    outcome: Literal["success", "failure"] | None = Field(
        None, description="reset only: the ended episode's outcome as the robot judged it (episodes with "
        "labels: connector); omit when unknown."
    )


class ErrorReply(ReplyBase):
    """Any request may be answered with this; Reflex treats it as a failure of that hook."""

    ok: Literal[False]
    error: str = Field(description="What went wrong, for the operator.")


Reply = Annotated[Union[Ack, ErrorReply], Field(discriminator="ok")]  # noqa: UP007

# ---------------------------------------------------------------------------------------------
# Published JSON Schemas
# ---------------------------------------------------------------------------------------------

SCHEMAS: dict[str, tuple[Any, str]] = {
    "handshake": (Handshake, "Persistent connector -> Reflex: reply to 'hello'."),
    "observation": (Observation, "Connector -> Reflex: reply to 'observe'."),
    "action": (ApplyRequest, "Reflex -> connector: 'apply', one guarded action per control step."),
    "safe-stop": (SafeStopRequest, "Reflex -> connector: 'safe_stop' (stdin of safe_stop_command)."),
    "request": (Request, "Reflex -> connector: any request line."),
    "reply": (Reply, "Connector -> Reflex: acknowledgement or error reply."),
}


def schema_documents() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema document, for every published contract message."""
    docs: dict[str, dict[str, Any]] = {}
    for name, (model, description) in SCHEMAS.items():
        body = TypeAdapter(model).json_schema()
        file_name = f"{name}.schema.json"
        doc: dict[str, Any] = {
            "$schema": SCHEMA_DIALECT,
            "$id": SCHEMA_BASE_ID + file_name,
            "title": f"Reflex connector contract v{CONTRACT_VERSION}: {name}",
            "description": description,
        }
        doc.update({k: v for k, v in body.items() if k not in ("title", "description")})
        docs[file_name] = doc
    return docs


def render_schema(doc: dict[str, Any]) -> str:
    return dumps(doc)


def render_schemas() -> dict[str, str]:
    """``{"connector/<name>.schema.json": text}``: the shape ``reflex.schemas.RENDERERS`` expects."""
    return {f"connector/{name}": render_schema(doc) for name, doc in schema_documents().items()}


def write_schemas(out_dir: Path) -> list[Path]:
    """Write every contract schema as ``out_dir/<name>.schema.json`` (``reflex schema`` passes
    ``schemas/connector``). Returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for file_name, doc in schema_documents().items():
        path = out_dir / file_name
        path.write_text(render_schema(doc))
        written.append(path)
    return written
