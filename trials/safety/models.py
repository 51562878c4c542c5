"""Safety events, in-app notifications and the outbox an SMTP relay drains.

Notifications and outbox messages are about a safety event, or (sent by trials.events through
`services.send`) an adverse event or an emergency unblinding.

A safety event is never deleted: the ORM refuses it (below) and a database trigger (migration
0004) refuses it underneath. Safety events carry no arm and are never hidden by blinding.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import ConfigDict
from sqlalchemy import CheckConstraint, Column, ForeignKey, String, Text, Uuid, event
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.errors import Conflict


class Kind(StrEnum):
    ITEM9_POSITIVE = "item9_positive"
    ITEM9_MISSING = "item9_missing"
    DETERIORATION = "deterioration"


class EventStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


KIND_TEXT = {
    Kind.ITEM9_POSITIVE: "PHQ-9 item 9 (thoughts of self-harm) answered positively",
    Kind.ITEM9_MISSING: "PHQ-9 item 9 (thoughts of self-harm) not answered",
    Kind.DETERIORATION: "reliable deterioration of the PHQ-9 total over baseline",
}


class SafetyEvent(Audited, SQLModel, table=True):
    """A safety signal raised by an assessment; open until a clinician records the follow-up."""

    __tablename__ = "safety_event"
    __table_args__ = (
        CheckConstraint("kind IN ('item9_positive', 'item9_missing', 'deterioration')", name="kind_known"),
        CheckConstraint("status IN ('open', 'closed')", name="status_known"),
        CheckConstraint("(status = 'closed') = (followed_up_at IS NOT NULL)", name="closed_followed_up"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    site_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("site.id"), nullable=False, index=True))
    participant_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=False, index=True)
    )
    # The assessment that raised it (named by table: safety does not import assessments).
    assessment_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("assessment.id"), nullable=False, index=True)
    )
    kind: str = Field(sa_type=String(20))
    item9: int | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    due_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    status: str = Field(default=EventStatus.OPEN.value, sa_type=String(8))
    followed_up_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    followed_up_by: str | None = Field(default=None, sa_type=String(64))
    risk_assessment_done: bool | None = None
    referral: str | None = Field(default=None, sa_type=Text)
    escalated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


# A notification or e-mail is about at most one record: a safety event, an adverse event or an
# emergency unblinding. The last two are named by table (trials.events sits above safety and
# notifies through it).
_ABOUT_AT_MOST_ONE = (
    "(CASE WHEN safety_event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN adverse_event_id IS NULL THEN 0 ELSE 1 END)"
    " + (CASE WHEN emergency_unblinding_id IS NULL THEN 0 ELSE 1 END) <= 1"
)


class Notification(Audited, SQLModel, table=True):
    """An in-app notification to one user about one safety event, adverse event or emergency
    unblinding."""

    __database_lock_exempt__ = True  # a message, not trial data (and emergencies must reach people)
    __tablename__ = "notification"
    __table_args__ = (CheckConstraint(_ABOUT_AT_MOST_ONE, name="about_at_most_one_record"),)
    __audit_exclude__ = frozenset({"read_at"})
    __audit_reason_required__ = False

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False))
    user_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("user_account.id"), nullable=False, index=True)
    )
    safety_event_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("safety_event.id"), nullable=True, index=True)
    )
    adverse_event_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("adverse_event.id"), nullable=True, index=True)
    )
    emergency_unblinding_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("emergency_unblinding.id"), nullable=True, index=True),
    )
    subject: str = Field(sa_type=String(200))
    body: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    read_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))


class OutboxMessage(Audited, SQLModel, table=True):
    """An e-mail waiting for the SMTP relay; `sent_at` is set when the relay has sent it."""

    __database_lock_exempt__ = True  # a message, not trial data (and emergencies must reach people)
    __tablename__ = "outbox_message"
    __table_args__ = (CheckConstraint(_ABOUT_AT_MOST_ONE, name="about_at_most_one_record"),)
    __audit_exclude__ = frozenset({"sent_at"})
    __audit_reason_required__ = False

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False))
    user_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("user_account.id"), nullable=False))
    safety_event_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("safety_event.id"), nullable=True)
    )
    adverse_event_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("adverse_event.id"), nullable=True)
    )
    emergency_unblinding_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("emergency_unblinding.id"), nullable=True)
    )
    to: str = Field(sa_type=String(254))
    subject: str = Field(sa_type=String(200))
    body: str = Field(sa_type=Text)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True, index=True))


class FollowUp(SQLModel):
    """A clinician's follow-up of a safety event; `notes` go on the audit entry as its reason."""

    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    risk_assessment_done: bool
    referral: str | None = Field(default=None, max_length=2000)
    notes: str | None = Field(default=None, max_length=2000)


class SafetyEventRead(SQLModel):
    id: uuid.UUID
    participant_label: str
    site_code: str
    kind: str
    item9: int | None
    created_at: datetime
    due_at: datetime
    status: str
    overdue: bool
    followed_up_at: datetime | None
    followed_up_by: str | None
    risk_assessment_done: bool | None
    referral: str | None
    escalated_at: datetime | None


# Registered first (insert=True): a refused delete never reaches the audit mechanism's listener.
@event.listens_for(OrmSession, "before_flush", insert=True)
def _safety_events_are_never_deleted(session: OrmSession, _context: Any, _instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, SafetyEvent):
            raise Conflict("safety events cannot be deleted")
