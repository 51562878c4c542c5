"""Participants, pseudonymous and site-prefixed."""

import uuid
from datetime import date, datetime
from enum import StrEnum

from pydantic import ConfigDict
from sqlalchemy import CheckConstraint, Column, Date, ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.validation import PLAIN_TEXT, IsoDate


class Status(StrEnum):
    SCREENED = "screened"  # eligible, not yet consented
    SCREEN_FAILED = "screen_failed"
    ENROLLED = "enrolled"


class Participant(Audited, SQLModel, table=True):
    """A person screened for a trial, known by a pseudonymous label such as ``LDS-0007``."""

    __tablename__ = "participant"
    __table_args__ = (
        UniqueConstraint("trial_id", "label"),
        CheckConstraint("status IN ('screened', 'screen_failed', 'enrolled')", name="status_known"),
        CheckConstraint("(status = 'enrolled') = (consent_date IS NOT NULL)", name="enrolled_consented"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    site_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("site.id"), nullable=False, index=True))
    label: str = Field(sa_type=String(24))
    status: str = Field(sa_type=String(16))
    screened_on: date = Field(sa_column=Column(Date, nullable=False))
    age_years: int
    screening_phq9: int
    eligible: bool
    # JSON list of {"rule", "message"}: what a screen failure failed (feeds the CONSORT diagram).
    screen_failure_reasons: str | None = Field(default=None, sa_type=Text)
    consent_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


class ParticipantCounter(SQLModel, table=True):
    """The last label number used per trial and site; incremented under a row lock."""

    __tablename__ = "participant_counter"

    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), primary_key=True))
    site_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("site.id"), primary_key=True))
    last_number: int = 0


class ScreeningCreate(SQLModel):
    """A screening visit's answers to the protocol's eligibility rules."""

    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    site_code: str = Field(max_length=20)
    # SQLModel validates bodies field by field in python mode, where a strict date would refuse
    # its JSON string: a date is read from an ISO string, nothing else is coerced.
    screened_on: IsoDate
    age_years: int = Field(ge=0, le=120)
    screening_phq9: int = Field(ge=0, le=27)
    inclusion_met: bool
    exclusion_present: bool


class ParticipantRead(SQLModel):
    label: str
    site_code: str
    status: str
    screened_on: date
    eligible: bool
    screen_failure_reasons: list[dict[str, str]]
    consent_date: date | None
    randomized_at: datetime | None = None
    arm_code: str | None = None  # only for those the protocol does not blind


class ParticipantIdentity(Audited, SQLModel, table=True):
    """A participant's direct identifiers, each encrypted at rest (Fernet); all optional.

    Trial data stays pseudonymous: nothing else refers to these values, and the audit trail
    records that a field changed without its value. Only the staff of the participant's site
    may read them (`trials.participants.identifiers`).
    """

    __tablename__ = "participant_identity"
    __audit_redact__ = frozenset({"full_name_ciphertext", "email_ciphertext", "phone_ciphertext"})

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    participant_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=False, unique=True)
    )
    full_name_ciphertext: str | None = Field(default=None, sa_type=Text)
    email_ciphertext: str | None = Field(default=None, sa_type=Text)
    phone_ciphertext: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))


IDENTIFIER_FIELDS = ("full_name", "email", "phone")


class IdentifiersUpdate(SQLModel):
    """A participant's identifiers as they should be stored: an omitted or null field is
    stored as absent. Changing stored identifiers needs a reason."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)  # type: ignore[assignment]
    full_name: str | None = Field(
        default=None, min_length=1, max_length=200, schema_extra={"pattern": PLAIN_TEXT}
    )
    email: str | None = Field(
        default=None, max_length=254, schema_extra={"pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"}
    )
    phone: str | None = Field(
        default=None, min_length=3, max_length=32, schema_extra={"pattern": r"^\+?[0-9][0-9 ()./-]*[0-9]$"}
    )
    reason: str | None = Field(default=None, max_length=2000)


class IdentifiersRead(SQLModel):
    participant_label: str
    full_name: str | None
    email: str | None
    phone: str | None
    updated_at: datetime | None
