"""Protocol registry routes of the JSON API, and the protocol document's JSON Schema."""

import json
import re
from typing import Any, Literal

from flask import Blueprint, current_app, request
from pydantic import ConfigDict, Field
from sqlmodel import SQLModel

from protocols import services
from protocols.document import content_hash, protocol_json_schema
from protocols.models import ProtocolVersion, ProtocolVersionRead
from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.core.errors import InvalidInput

bp = Blueprint("protocols_api", __name__, url_prefix=API_PREFIX)


class ProtocolSubmission(SQLModel):
    """A protocol document: a JSON object, or YAML/JSON text; `reason` for edits and amendments."""

    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    document: dict[str, Any] | str
    format: Literal["yaml", "json"] | None = None
    reason: str | None = Field(default=None, max_length=2000)


class LockRequest(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    password: str = Field(min_length=1, max_length=256)
    meaning: Literal["approval"] = "approval"


class ValidationResult(SQLModel):
    valid: bool
    content_hash: str


class Change(SQLModel):
    path: str
    kind: str
    old: Any = None
    new: Any = None


def _source(body: ProtocolSubmission) -> services.Source:
    if isinstance(body.document, dict):
        return services.Source(json.dumps(body.document), "json")
    return services.Source(body.document, body.format)


def read(version: ProtocolVersion, code: str, *, with_document: bool = False) -> ProtocolVersionRead:
    signature = services.signature_of(version, session=db.session)
    return ProtocolVersionRead(
        trial_code=code,
        version=version.version,
        status=version.status,
        content_hash=version.content_hash,
        amendment_reason=version.amendment_reason,
        created_at=version.created_at,
        created_by=version.created_by,
        locked_at=version.locked_at,
        signature=signature.manifestation if signature else None,
        document=json.loads(version.document_json) if with_document else None,
    )


@operation(
    bp,
    "/schemas/protocol.json",
    summary="JSON Schema of the protocol document",
    tag="protocols",
    public=True,
    errors=(),
)
def schema() -> Any:
    return protocol_json_schema()


@operation(
    bp,
    "/protocols/validate",
    method="POST",
    summary="Validate a protocol document; store nothing",
    tag="protocols",
    body=ProtocolSubmission,
    response=ValidationResult,
    errors=(401,),
)
def validate(body: ProtocolSubmission) -> Any:
    require_principal()
    sub = _source(body).parse()
    return ValidationResult(valid=True, content_hash=content_hash(sub.document))


@operation(
    bp,
    "/protocols",
    summary="The latest protocol version of each visible trial",
    tag="protocols",
    response=list[ProtocolVersionRead],
    errors=(401,),
)
def list_protocols() -> Any:
    rows = services.list_protocols(session=db.session, by=require_principal())
    return [read(version, trial.code) for trial, version in rows]


@operation(
    bp,
    "/protocols",
    method="POST",
    summary="Register version 1 of a trial's protocol (draft)",
    tag="protocols",
    body=ProtocolSubmission,
    response=ProtocolVersionRead,
    status=201,
    errors=(401, 403, 409),
)
def register(body: ProtocolSubmission) -> Any:
    version = services.register(_source(body), session=db.session, by=require_principal())
    return read(version, services.document_of(version).trial.code)


@operation(
    bp,
    "/protocols/<code>/versions",
    summary="Every version of a trial's protocol",
    tag="protocols",
    response=list[ProtocolVersionRead],
    errors=(401, 403, 404),
)
def versions(code: str) -> Any:
    return [read(v, code) for v in services.list_versions(code, session=db.session, by=require_principal())]


@operation(
    bp,
    "/protocols/<code>/versions/<int:number>",
    summary="One version, with its document",
    tag="protocols",
    response=ProtocolVersionRead,
    errors=(401, 403, 404),
)
def version(code: str, number: int) -> Any:
    row = services.get_version(code, number, session=db.session, by=require_principal())
    return read(row, code, with_document=True)


@operation(
    bp,
    "/protocols/<code>/versions/<int:number>",
    method="PUT",
    summary="Replace a draft's document",
    tag="protocols",
    body=ProtocolSubmission,
    response=ProtocolVersionRead,
    errors=(401, 403, 404, 409),
)
def update(code: str, number: int, body: ProtocolSubmission) -> Any:
    row = services.update_draft(
        code, number, _source(body), reason=body.reason or "", session=db.session, by=require_principal()
    )
    return read(row, code)


@operation(
    bp,
    "/protocols/<code>/amendments",
    method="POST",
    summary="Amend: a new version with a reason",
    tag="protocols",
    body=ProtocolSubmission,
    response=ProtocolVersionRead,
    status=201,
    errors=(401, 403, 404, 409),
)
def amend(code: str, body: ProtocolSubmission) -> Any:
    row = services.amend(
        code, _source(body), reason=body.reason or "", session=db.session, by=require_principal()
    )
    return read(row, code)


@operation(
    bp,
    "/protocols/<code>/versions/<int:number>/lock",
    method="POST",
    summary="Lock a draft with an approval signature (password re-entry)",
    tag="protocols",
    body=LockRequest,
    response=ProtocolVersionRead,
    errors=(401, 403, 404, 409),
)
def lock(code: str, number: int, body: LockRequest) -> Any:
    row, _signature = services.lock(
        code,
        number,
        password=body.password,
        session=db.session,
        by=require_principal(),
        lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
    )
    return read(row, code)


@operation(
    bp,
    "/protocols/<code>/diff",
    summary="Field-by-field changes between two versions",
    tag="protocols",
    response=list[Change],
    errors=(401, 403, 404, 422),
    query={"from": "the older version number", "to": "the newer version number"},
)
def diff(code: str) -> Any:
    numbers = []
    for name in ("from", "to"):
        value = request.args.get(name, "")
        if not re.fullmatch(r"[1-9][0-9]{0,8}", value):
            raise InvalidInput.field(name, "int_type", f"{name}: a version number is required")
        numbers.append(int(value))
    changes = services.diff(code, numbers[0], numbers[1], session=db.session, by=require_principal())
    return [Change(path=c.path, kind=c.kind, old=c.old, new=c.new) for c in changes]
