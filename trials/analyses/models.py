"""The trial's unblinding: once recorded, arm-level results are released.

Recorded once per trial, never changed or deleted (the ORM refuses it here; database triggers
refuse it underneath). It is written while the database is locked (unblinding requires it), so
the lock does not apply to it.
"""

import uuid
from datetime import datetime

from pydantic import ConfigDict
from sqlalchemy import Column, ForeignKey, String, Text, Uuid
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.written_once import refuse_changes


class TrialUnblinding(Audited, SQLModel, table=True):
    """Who unblinded the trial, when, why, and under which locked plan and database lock."""

    __tablename__ = "trial_unblinding"
    __database_lock_exempt__ = True

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, unique=True))
    protocol_version_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("protocol_version.id"), nullable=False)
    )
    protocol_sha256: str = Field(sa_type=String(64))
    database_locked_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    unblinded_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    unblinded_by: str = Field(sa_type=String(64))
    reason: str = Field(sa_type=Text)


class UnblindingBody(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    reason: str = Field(max_length=2000)


class UnblindingRead(SQLModel):
    trial_code: str
    unblinded: bool
    unblinded_at: datetime | None = None
    unblinded_by: str | None = None
    reason: str | None = None
    protocol_version: int | None = None
    protocol_sha256: str | None = None
    database_locked_at: datetime | None = None


refuse_changes(
    TrialUnblinding,
    changed="a trial's unblinding cannot be changed",
    deleted="a trial's unblinding cannot be undone",
)
