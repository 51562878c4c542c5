"""Database lock routes of the JSON API: lock and unlock a trial's database (sponsor only)."""

from datetime import datetime
from typing import Any

from flask import Blueprint
from pydantic import ConfigDict, Field
from sqlmodel import SQLModel

from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.dblock import services

bp = Blueprint("dblock_api", __name__, url_prefix=API_PREFIX)


class ReasonBody(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    reason: str | None = Field(default=None, max_length=2000)


class DatabaseLockRead(SQLModel):
    """A trial's lock state after a lock or unlock; `reason` is the act's reason."""

    trial_code: str
    locked: bool
    locked_at: datetime | None = None
    locked_by: str | None = None
    reason: str


@operation(
    bp,
    "/trials/<code>/database-lock",
    method="POST",
    summary="Lock the trial's database: no entry or change of its data until unlocked (sponsor)",
    tag="database lock",
    body=ReasonBody,
    response=DatabaseLockRead,
    status=201,
    errors=(401, 403, 404, 409, 422),
)
def lock_database(code: str, body: ReasonBody) -> Any:
    row = services.lock_database(code, reason=body.reason, session=db.session, by=require_principal())
    return DatabaseLockRead(
        trial_code=code, locked=True, locked_at=row.locked_at, locked_by=row.locked_by, reason=row.reason
    )


@operation(
    bp,
    "/trials/<code>/database-unlock",
    method="POST",
    summary="Unlock the trial's database, with a reason (sponsor)",
    tag="database lock",
    body=ReasonBody,
    response=DatabaseLockRead,
    errors=(401, 403, 404, 409, 422),
)
def unlock_database(code: str, body: ReasonBody) -> Any:
    services.unlock_database(code, reason=body.reason, session=db.session, by=require_principal())
    return DatabaseLockRead(trial_code=code, locked=False, reason=(body.reason or "").strip())
