"""Audit trail pages and API: admins see every entry, monitors the entries of their trials."""

from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from flask import Blueprint, Response, render_template, request, stream_with_context
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import SQLModel

from trials.core.accounts.auth import permission_required, require_principal
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.api import API_PREFIX, operation
from trials.core.audit import services
from trials.core.db import db
from trials.core.errors import InvalidInput, field_errors
from trials.core.validation import NO_CONTROL

bp = Blueprint("audit", __name__, template_folder="templates")
api_bp = Blueprint("audit_api", __name__, url_prefix=API_PREFIX)

PAGE_SIZE = 100


_TEXT = Annotated[str, Field(max_length=200, pattern=NO_CONTROL)]


class FilterArgs(BaseModel):
    """The audit filter's query parameters; unknown ones are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")
    username: _TEXT | None = None
    table: _TEXT | None = None
    record_id: _TEXT | None = None
    action: _TEXT | None = None
    since: date | None = None
    until: date | None = None
    page: Annotated[str, Field(pattern=r"^[1-9][0-9]{0,6}$")] = "1"


def _filter(principal: Principal) -> tuple[services.AuditFilter, int]:
    try:
        args = FilterArgs.model_validate({k: v for k, v in request.args.items() if v != ""})
    except ValidationError as exc:
        raise InvalidInput("the filter is not valid", errors=field_errors(exc)) from None
    authorize(principal, Permission.VIEW_AUDIT, session=db.session)
    flt = services.AuditFilter(
        username=args.username,
        table_name=args.table,
        record_id=args.record_id,
        action=args.action,
        since=datetime.combine(args.since, time(), UTC) if args.since else None,
        until=datetime.combine(args.until, time.max, UTC) if args.until else None,
        trial_ids=principal.trial_ids_with(Permission.VIEW_AUDIT),
    )
    return flt, int(args.page)


@bp.get("/audit")
@permission_required(Permission.VIEW_AUDIT)
def entries() -> Any:
    flt, page = _filter(require_principal())
    rows, total = services.list_entries(
        flt, session=db.session, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    pages = max(1, -(-total // PAGE_SIZE))
    return render_template(
        "audit/entries.html", rows=rows, total=total, page=page, pages=pages, args=request.args
    )


@bp.get("/audit/export.csv")
@permission_required(Permission.VIEW_AUDIT)
def export() -> Any:
    flt, _page = _filter(require_principal())
    services.record_event(
        db.session, "audit_export", detail=request.query_string.decode("ascii", "replace") or None
    )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    # The export event is committed before the body streams: the response is a success.
    # The request's session is committed and closed before the body streams: use a new one.
    session_factory = db.state.session_factory

    def rows() -> Any:
        with session_factory() as session:
            yield from services.export_csv(flt, session=session)

    return Response(
        stream_with_context(rows()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )


class AuditEntryRead(SQLModel):
    seq: int
    occurred_at: datetime
    username: str
    printed_name: str
    role: str | None
    channel: str
    action: str
    table_name: str | None
    record_id: str | None
    field: str | None
    old_value: str | None
    new_value: str | None
    reason: str | None
    hash: str


class AuditPage(SQLModel):
    total: int
    page: int
    entries: list[AuditEntryRead]


class ChainReportRead(SQLModel):
    ok: bool
    entries_checked: int
    broken_seq: int | None
    broken_id: str | None
    problem: str | None


_QUERY = {
    "username": "entries by this user",
    "table": "table name",
    "record_id": "record id",
    "action": "insert, update, delete, sign_in, ...",
    "since": "from this date (UTC)",
    "until": "to this date (UTC), inclusive",
    "page": "page number, 100 entries a page",
}


@operation(
    api_bp,
    "/audit",
    summary="Audit entries, newest first (admin; monitors: their trials)",
    tag="audit",
    response=AuditPage,
    errors=(401, 403, 422),
    query=_QUERY,
)
def api_entries() -> Any:
    flt, page = _filter(require_principal())
    rows, total = services.list_entries(
        flt, session=db.session, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return AuditPage(
        total=total,
        page=page,
        entries=[AuditEntryRead.model_validate(r, from_attributes=True) for r in rows],
    )


@operation(
    api_bp,
    "/audit/verify",
    summary="Recompute the hash chain (admin, monitor)",
    tag="audit",
    response=ChainReportRead,
)
def api_verify() -> Any:
    # Checking the chain only reads, and reveals no entry: admins and monitors may run it.
    principal = require_principal()
    authorize(principal, Permission.VIEW_AUDIT, session=db.session)
    report = services.verify_chain(db.session.connection())
    return ChainReportRead.model_validate(report, from_attributes=True)
