"""Engagement days: one row per participant and calendar day of use of the digital therapy.

Entered through the JSON API (source ``api``) or a CSV import (source ``import``, with the
batch). Engagement carries no arm. Counts are bounded by CHECK constraints as well as by
validation: no day has more than 1,440 minutes.
"""

import uuid
from datetime import date, datetime

from pydantic import ConfigDict
from sqlalchemy import CheckConstraint, Column, Date, ForeignKey, String, UniqueConstraint, Uuid
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.validation import IsoDate

MAX_SESSIONS = 1440  # at most one session started per minute of the day
MAX_MINUTES = 1440  # the minutes of one day
MAX_MODULES = 100  # modules completed on one day; programmes have far fewer
COUNT_COLUMNS = ("sessions", "minutes", "modules_completed")
COUNT_MAXIMUM = {"sessions": MAX_SESSIONS, "minutes": MAX_MINUTES, "modules_completed": MAX_MODULES}
SOURCES = ("api", "import")


class EngagementDay(Audited, SQLModel, table=True):
    """One participant's use of the app on one day."""

    __tablename__ = "engagement_day"
    __table_args__ = (
        UniqueConstraint("participant_id", "day"),
        CheckConstraint(f"sessions BETWEEN 0 AND {MAX_SESSIONS}", name="sessions_range"),
        CheckConstraint(f"minutes BETWEEN 0 AND {MAX_MINUTES}", name="minutes_range"),
        CheckConstraint(f"modules_completed BETWEEN 0 AND {MAX_MODULES}", name="modules_completed_range"),
        CheckConstraint(
            "sessions > 0 OR (minutes = 0 AND modules_completed = 0)", name="use_needs_a_session"
        ),
        CheckConstraint("source IN ('api', 'import')", name="source_known"),
        CheckConstraint("(source = 'import') = (import_batch_id IS NOT NULL)", name="import_has_batch"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    participant_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=False, index=True)
    )
    day: date = Field(sa_column=Column(Date, nullable=False))
    sessions: int
    minutes: int
    modules_completed: int
    source: str = Field(default="api", sa_type=String(8))
    # The CSV import batch (named by table: the imports package sits above this one).
    import_batch_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("import_batch.id"), nullable=True, index=True)
    )
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


# SQLModel validates bodies field by field in python mode, where a strict date would refuse its
# JSON string: a date is read from an ISO string, nothing else is coerced.
JsonDate = IsoDate  # YYYY-MM-DD only: no timestamp or number is read as a date


class EngagementDayIn(SQLModel):
    """One day of use as the API takes it; the service checks ranges and dates and names them."""

    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    day: JsonDate
    sessions: int
    minutes: int
    modules_completed: int


class EngagementSubmit(SQLModel):
    """Days of one participant, stored all or nothing. A day already recorded is corrected only
    with a `reason` (the audit trail keeps the old values)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    days: list[EngagementDayIn] = Field(min_length=1, max_length=1000)
    reason: str | None = Field(default=None, max_length=2000)


class EngagementDayRead(SQLModel):
    day: date
    sessions: int
    minutes: int
    modules_completed: int
    source: str
    created_at: datetime


class EngagementTotals(SQLModel):
    days_used: int
    sessions: int
    minutes: int
    modules_completed: int


class EngagementRead(SQLModel):
    """A participant's engagement, day by day, with totals; never an arm."""

    participant_label: str
    days: list[EngagementDayRead]
    totals: EngagementTotals
