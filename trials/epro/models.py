"""Self-report links: one per issued questionnaire, usable once, until it expires.

Only the SHA-256 of a link's token is stored: the token itself is shown once, when the link
is issued, and is never recorded anywhere else.
"""

import uuid
from datetime import date, datetime

from pydantic import ConfigDict
from sqlalchemy import CheckConstraint, Column, ForeignKey, String, Uuid
from sqlmodel import Field, SQLModel

from trials.assessments.models import InstrumentCode
from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow


class EproLink(Audited, SQLModel, table=True):
    """A link a participant follows to answer one questionnaire of one visit, once."""

    __tablename__ = "epro_link"
    __table_args__ = (
        CheckConstraint("instrument IN ('PHQ-9', 'PHQ-8', 'GAD-7')", name="instrument_known"),
        CheckConstraint("used_at IS NULL OR revoked_at IS NULL", name="used_or_revoked"),
        CheckConstraint("(used_at IS NULL) = (assessment_id IS NULL)", name="used_with_assessment"),
    )
    __audit_redact__ = frozenset({"token_sha256"})

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    participant_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=False, index=True)
    )
    instrument: str = Field(sa_type=String(8))
    visit_code: str = Field(sa_type=String(20))
    token_sha256: str = Field(sa_type=String(64), unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    created_by: str = Field(sa_type=String(64))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    used_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    assessment_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("assessment.id"), nullable=True, unique=True)
    )


class EproLinkCreate(SQLModel):
    """Which questionnaire of which due visit the link asks for."""

    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    visit_code: str = Field(min_length=1, max_length=20)
    instrument: InstrumentCode


class EproLinkRead(SQLModel):
    id: uuid.UUID
    participant_label: str
    visit_code: str
    instrument: str
    created_at: datetime
    created_by: str
    expires_at: datetime
    state: str  # active, used, expired or revoked
    used_at: datetime | None
    assessment_id: uuid.UUID | None


class EproLinkIssued(EproLinkRead):
    """The link just issued, with its address: shown this once, never again."""

    url: str


class EproDue(SQLModel):
    """A questionnaire a link may be issued for today."""

    visit_code: str
    visit_name: str
    instrument: str
    window_first: date
    window_last: date
