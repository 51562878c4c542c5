"""Assessments (item responses as columns of one row) and data queries.

Raw items are stored exactly as given: a missing item is NULL, never 0. Totals are derived
(`analysis.scoring`) and never stored here.
"""

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import ConfigDict
from sqlalchemy import CheckConstraint, Column, Date, ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlmodel import Field, SQLModel

from analysis.scoring import RULES
from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.validation import IsoDate
from trials.safety.models import SafetyEventRead

ITEM_COLUMNS = tuple(f"item_{n}" for n in range(1, 11))
InstrumentCode = Literal["PHQ-9", "PHQ-8", "GAD-7"]


def _item_range(n: int) -> CheckConstraint:
    return CheckConstraint(f"item_{n} IS NULL OR item_{n} BETWEEN 0 AND 3", name=f"item_{n}_range")


class Assessment(Audited, SQLModel, table=True):
    """One questionnaire of one participant, assigned to a scheduled visit."""

    __tablename__ = "assessment"
    __table_args__ = (
        UniqueConstraint("participant_id", "visit_code", "instrument"),
        CheckConstraint("instrument IN ('PHQ-9', 'PHQ-8', 'GAD-7')", name="instrument_known"),
        CheckConstraint("source IN ('site', 'participant')", name="source_known"),
        *(_item_range(n) for n in range(1, 11)),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    participant_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=False, index=True)
    )
    instrument: str = Field(sa_type=String(8))
    assessed_on: date = Field(sa_column=Column(Date, nullable=False))
    visit_code: str = Field(sa_type=String(20))
    in_window: bool
    item_1: int | None = None
    item_2: int | None = None
    item_3: int | None = None
    item_4: int | None = None
    item_5: int | None = None
    item_6: int | None = None
    item_7: int | None = None
    item_8: int | None = None
    item_9: int | None = None
    item_10: int | None = None  # PHQ-9 difficulty question: recorded, never scored
    source: str = Field(default="site", sa_type=String(12))
    entered_by: str = Field(sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    # The CSV import batch that brought the assessment in (None: entered one by one). Named by
    # table: the imports package sits above this one.
    import_batch_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("import_batch.id"), nullable=True, index=True)
    )

    def items(self) -> dict[int, int | None]:
        """Item number to response (None: missing), for the instrument's items."""
        return {n: getattr(self, f"item_{n}") for n in range(1, RULES[self.instrument].n_items + 1)}


class DataQuery(Audited, SQLModel, table=True):
    """A question about entered data for the site to resolve (an out-of-window assessment)."""

    __tablename__ = "data_query"
    __table_args__ = (CheckConstraint("status IN ('open', 'closed')", name="status_known"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    participant_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=False))
    assessment_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("assessment.id"), nullable=True, index=True)
    )
    rule: str = Field(sa_type=String(40))
    message: str = Field(sa_type=Text)
    status: str = Field(default="open", sa_type=String(8))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


# Item responses: item number (as a JSON key, "1".."10") to 0-3, or null for a missing item.
# Strict: 1.5, "two" and true are refused, never coerced; the service checks numbers and range.
Items = dict[str, int | None]


class AssessmentCreate(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    instrument: InstrumentCode
    assessed_on: IsoDate
    items: Items


class AssessmentCorrection(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    items: Items
    reason: str = Field(min_length=1, max_length=2000)


class DataQueryRead(SQLModel):
    id: uuid.UUID
    rule: str
    message: str
    status: str


class AssessmentRead(SQLModel):
    id: uuid.UUID
    participant_label: str
    instrument: str
    assessed_on: date
    visit_code: str
    in_window: bool
    items: dict[str, int | None]
    source: str
    entered_by: str
    created_at: datetime
    total: int | None
    prorated: bool
    items_answered: int
    severity: str | None
    safety_events: list[SafetyEventRead]
    data_queries: list[DataQueryRead]
