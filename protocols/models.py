"""Protocol versions: drafts that may be edited, and locked versions that never change again."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    event,
    inspect,
    select,
)
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.errors import Conflict


class Status(StrEnum):
    DRAFT = "draft"
    LOCKED = "locked"


class ProtocolVersion(Audited, SQLModel, table=True):
    """One version of a trial's protocol and analysis plan.

    `document_json` is the canonical serialization (`protocols.document.canonical_json`) and
    `content_hash` its SHA-256; `source_text` keeps the document as submitted, comments and all.
    Version 1 is registered; later versions are amendments with a reason.
    """

    __tablename__ = "protocol_version"
    __table_args__ = (
        UniqueConstraint("trial_id", "version"),
        CheckConstraint("status IN ('draft', 'locked')", name="status_known"),
        CheckConstraint("version >= 1", name="version_positive"),
        CheckConstraint(
            "(status = 'locked') = (locked_at IS NOT NULL AND signature_id IS NOT NULL)", name="lock_signed"
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    version: int
    status: str = Field(default=Status.DRAFT.value, sa_type=String(8))
    source_format: str = Field(sa_type=String(4))
    source_text: str = Field(sa_type=Text)
    document_json: str = Field(sa_type=Text)
    content_hash: str = Field(sa_type=String(64))
    amendment_reason: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    created_by: str = Field(sa_type=String(64))
    locked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    signature_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("signature.id"), nullable=True)
    )

    @property
    def locked(self) -> bool:
        return self.status == Status.LOCKED.value


class ProtocolVersionRead(SQLModel):
    trial_code: str
    version: int
    status: str
    content_hash: str
    amendment_reason: str | None
    created_at: datetime
    created_by: str
    locked_at: datetime | None
    signature: str | None
    document: dict[str, Any] | None = None


def _stored_status(session: OrmSession, obj: ProtocolVersion) -> str | None:
    """The status the row had before this flush, read from the database if it was never loaded."""
    state = inspect(obj)
    assert state is not None
    history = state.attrs.status.history
    if history.deleted:
        return str(history.deleted[0])
    if not history.added:
        return obj.status
    # status was set on an expired or unloaded attribute: the old value is only in the row
    table = ProtocolVersion.__table__  # type: ignore[attr-defined]
    row = session.connection().execute(select(table.c.status).where(table.c.id == obj.id)).first()
    return None if row is None else str(row[0])


# Registered first (insert=True): a refused change never reaches the audit mechanism's listener,
# so no entry describes a change that did not happen, and no reason is asked for it.
@event.listens_for(OrmSession, "before_flush", insert=True)
def _locked_versions_are_immutable(session: OrmSession, _context: Any, _instances: Any) -> None:
    """Whatever path changes a locked version, the ORM refuses it (and the database below)."""
    for obj in (*session.dirty, *session.deleted):
        if not isinstance(obj, ProtocolVersion):
            continue
        if not (obj in session.deleted or session.is_modified(obj)):
            continue
        if _stored_status(session, obj) == Status.LOCKED.value:
            raise Conflict(f"protocol version {obj.version} is locked and cannot be changed")
