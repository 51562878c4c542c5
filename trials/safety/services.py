"""Raising safety events from an assessment's values, notifying, follow-up and escalation.

The assessments service calls `raise_events` with plain values inside the transaction that
stores the assessment: the event, its notifications and its outbox messages commit with it or
not at all. This package does not import assessments.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlmodel import Session, col, select

from trials.core.accounts.models import Role, RoleGrant, Site, Trial, User
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.db import new_id, utcnow
from trials.core.errors import Conflict, NotFound
from trials.participants.models import Participant
from trials.participants.services import trial_by_code, visible_site_ids
from trials.safety.models import (
    KIND_TEXT,
    EventStatus,
    FollowUp,
    Kind,
    Notification,
    OutboxMessage,
    SafetyEvent,
    SafetyEventRead,
)


def signals(
    *,
    instrument: str,
    item9: int | None,
    total: int | None,
    baseline_total: int | None,
    threshold: int,
) -> list[Kind]:
    """The safety signals of one assessment: item 9 first, independent of scoring.

    `total` and `baseline_total` are PHQ-9 totals without prorating (None when incomplete);
    a missing item 9 is a signal of its own, never read as 0.
    """
    if instrument != "PHQ-9":
        return []
    kinds = []
    if item9 is None:
        kinds.append(Kind.ITEM9_MISSING)
    elif item9 >= 1:
        kinds.append(Kind.ITEM9_POSITIVE)
    if total is not None and baseline_total is not None and total - baseline_total >= threshold:
        kinds.append(Kind.DETERIORATION)
    return kinds


def _users_with(
    role: Role, trial_id: uuid.UUID, site_id: uuid.UUID | None, *, session: Session
) -> list[User]:
    query = (
        select(User)
        .join(RoleGrant, col(RoleGrant.user_id) == col(User.id))
        .where(RoleGrant.role == role.value, RoleGrant.trial_id == trial_id, col(User.is_active).is_(True))
    )
    if site_id is not None:
        query = query.where(RoleGrant.site_id == site_id)
    return list(session.exec(query.distinct().order_by(col(User.username))).all())


def users_with_role(
    role: Role, trial_id: uuid.UUID, site_id: uuid.UUID | None = None, *, session: Session
) -> list[User]:
    """The active users holding `role` in the trial (at the site, if given), by username."""
    return _users_with(role, trial_id, site_id, session=session)


def send(
    users: list[User],
    *,
    trial_id: uuid.UUID,
    subject: str,
    body: str,
    session: Session,
    safety_event_id: uuid.UUID | None = None,
    adverse_event_id: uuid.UUID | None = None,
    emergency_unblinding_id: uuid.UUID | None = None,
) -> None:
    """One in-app notification and one outbox message per user, about at most one record."""
    about = {
        "safety_event_id": safety_event_id,
        "adverse_event_id": adverse_event_id,
        "emergency_unblinding_id": emergency_unblinding_id,
    }
    for user in users:
        ids = {"trial_id": trial_id, "user_id": user.id, **about}
        session.add(Notification.model_validate({**ids, "subject": subject, "body": body}))
        session.add(
            OutboxMessage.model_validate(
                {**ids, "to": user.email or user.username, "subject": subject, "body": body}
            )
        )


def notify(users: list[User], event: SafetyEvent, subject: str, body: str, *, session: Session) -> None:
    """One in-app notification and one outbox message per user about a safety event."""
    send(
        users, trial_id=event.trial_id, subject=subject, body=body, session=session, safety_event_id=event.id
    )


def _message(event: SafetyEvent, trial: Trial, label: str, site_code: str) -> tuple[str, str]:
    return _message_text(Kind(event.kind), event.item9, event.due_at, trial.code, label, site_code)


def _message_text(
    kind: Kind, item9: int | None, due_at: datetime, trial_code: str, label: str, site_code: str
) -> tuple[str, str]:
    subject = f"[{trial_code}] Safety event for participant {label}: {kind.value}"
    lines = [
        f"Trial {trial_code}, site {site_code}, participant {label}.",
        f"{KIND_TEXT[kind]}" + (f" (item 9 = {item9})." if item9 is not None else "."),
        f"Record the follow-up (risk assessment, referral) by {due_at.isoformat()} (UTC).",
    ]
    return subject, "\n".join(lines)


def raise_events(
    *,
    trial_id: uuid.UUID,
    site_id: uuid.UUID,
    participant_id: uuid.UUID,
    participant_label: str,
    assessment_id: uuid.UUID,
    kinds: list[Kind],
    item9: int | None,
    followup_hours: int,
    session: Session,
) -> list[SafetyEvent]:
    """Create one open event per kind, and notify the site's clinicians of each."""
    if not kinds:
        return []
    trial = session.get(Trial, trial_id)
    site = session.get(Site, site_id)
    if trial is None or site is None:  # the foreign keys make this impossible
        raise NotFound("no such trial or site")
    clinicians = _users_with(Role.CLINICIAN, trial_id, site_id, session=session)
    now = utcnow()
    events = []
    for kind in kinds:
        safety_event = SafetyEvent(
            trial_id=trial_id,
            site_id=site_id,
            participant_id=participant_id,
            assessment_id=assessment_id,
            kind=kind.value,
            item9=item9,
            created_at=now,
            due_at=now + timedelta(hours=followup_hours),
        )
        session.add(safety_event)
        session.flush()  # the notifications refer to it
        subject, body = _message(safety_event, trial, participant_label, site.code)
        notify(clinicians, safety_event, subject, body, session=session)
        events.append(safety_event)
    session.flush()
    return events


@dataclass(frozen=True)
class Signals:
    """The safety signals of one assessment of a batch, for `raise_events_in_bulk`."""

    participant_id: uuid.UUID
    participant_label: str
    site_id: uuid.UUID
    assessment_id: uuid.UUID
    kinds: tuple[Kind, ...]
    item9: int | None


@dataclass(frozen=True)
class BulkEvents:
    """What `raise_events_in_bulk` created."""

    events: int
    notifications: int
    outbox_messages: int


def raise_events_in_bulk(
    *,
    trial_id: uuid.UUID,
    signals_of: Sequence[Signals],
    followup_hours: int,
    batch_table: str,
    batch_id: uuid.UUID,
    reason: str,
    session: Session,
) -> BulkEvents:
    """`raise_events` for the assessments of one batch (a CSV import): the same events, due
    times, notifications and outbox messages, written in bulk in the batch's transaction
    under one audit entry per table (`audit.bulk_insert_summarized`)."""
    wanted = [s for s in signals_of if s.kinds]
    if not wanted:
        return BulkEvents(0, 0, 0)
    trial = session.get(Trial, trial_id)
    if trial is None:  # the foreign keys make this impossible
        raise NotFound("no such trial")
    site_ids = {s.site_id for s in wanted}
    sites = {site.id: site for site in session.exec(select(Site).where(col(Site.id).in_(site_ids))).all()}
    clinicians = {
        site_id: _users_with(Role.CLINICIAN, trial_id, site_id, session=session) for site_id in site_ids
    }
    now = utcnow()
    due_at = now + timedelta(hours=followup_hours)
    # Every column of each table, None unless given (a record a message is not about, ...).
    blank: dict[type, dict[str, Any]] = {
        model: dict.fromkeys(c.name for c in cast(Any, model).__table__.columns)
        for model in (SafetyEvent, Notification, OutboxMessage)
    }
    events: list[dict[str, Any]] = []
    notifications: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    for signal in wanted:
        site = sites[signal.site_id]
        for kind in signal.kinds:
            event_id = new_id()
            events.append(
                blank[SafetyEvent]
                | {
                    "id": event_id,
                    "trial_id": trial_id,
                    "site_id": signal.site_id,
                    "participant_id": signal.participant_id,
                    "assessment_id": signal.assessment_id,
                    "kind": kind.value,
                    "item9": signal.item9,
                    "created_at": now,
                    "due_at": due_at,
                    "status": EventStatus.OPEN.value,
                }
            )
            subject, body = _message_text(
                kind, signal.item9, due_at, trial.code, signal.participant_label, site.code
            )
            for user in clinicians[signal.site_id]:
                ids = {"trial_id": trial_id, "user_id": user.id, "safety_event_id": event_id}
                notifications.append(
                    blank[Notification]
                    | ids
                    | {"id": new_id(), "subject": subject, "body": body, "created_at": now}
                )
                outbox.append(
                    blank[OutboxMessage]
                    | ids
                    | {
                        "id": new_id(),
                        "to": user.email or user.username,
                        "subject": subject,
                        "body": body,
                        "created_at": now,
                    }
                )
    for model, rows in ((SafetyEvent, events), (Notification, notifications), (OutboxMessage, outbox)):
        if rows:
            audit.bulk_insert_summarized(
                session, model, rows, batch_table=batch_table, batch_id=batch_id, reason=reason
            )
    return BulkEvents(len(events), len(notifications), len(outbox))


def events_of_assessment(assessment_id: uuid.UUID, *, session: Session) -> list[SafetyEvent]:
    return list(
        session.exec(
            select(SafetyEvent)
            .where(SafetyEvent.assessment_id == assessment_id)
            .order_by(col(SafetyEvent.created_at), col(SafetyEvent.kind))
        ).all()
    )


def list_events(code: str, *, session: Session, by: Principal) -> list[SafetyEvent]:
    """The trial's safety events; site staff see their site's. Blinding never hides them."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    query = select(SafetyEvent).where(SafetyEvent.trial_id == trial.id)
    sites = visible_site_ids(by, trial.id)
    if sites is not None:
        query = query.where(col(SafetyEvent.site_id).in_(sites))
    return list(session.exec(query.order_by(col(SafetyEvent.created_at), col(SafetyEvent.kind))).all())


def follow_up(
    code: str, event_id: uuid.UUID, data: FollowUp, *, session: Session, by: Principal, now: datetime
) -> SafetyEvent:
    """Close an open event with its follow-up; only a clinician of the event's site may."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    safety_event = session.get(SafetyEvent, event_id)
    sites = visible_site_ids(by, trial.id)
    if (
        safety_event is None
        or safety_event.trial_id != trial.id
        or (sites is not None and safety_event.site_id not in sites)
    ):
        raise NotFound(f"no safety event {event_id} in trial {code}")
    authorize(
        by, Permission.FOLLOW_UP_SAFETY, session=session, trial_id=trial.id, site_id=safety_event.site_id
    )
    if safety_event.status != EventStatus.OPEN.value:
        raise Conflict("this safety event is already closed")
    reason = (data.notes or "").strip() or "safety follow-up recorded"
    with audit.reason(session, reason, field="notes"):
        safety_event.status = EventStatus.CLOSED.value
        safety_event.followed_up_at = now
        safety_event.followed_up_by = by.username
        safety_event.risk_assessment_done = data.risk_assessment_done
        safety_event.referral = (data.referral or "").strip() or None
        session.add(safety_event)
    return safety_event


def escalate_overdue(code: str, *, session: Session, now: datetime) -> list[SafetyEvent]:
    """Escalate open events past their deadline to the trial's sponsor users (once each)."""
    trial = trial_by_code(code, session=session)
    overdue = list(
        session.exec(
            select(SafetyEvent)
            .where(
                SafetyEvent.trial_id == trial.id,
                SafetyEvent.status == EventStatus.OPEN.value,
                col(SafetyEvent.due_at) < now,
                col(SafetyEvent.escalated_at).is_(None),
            )
            .order_by(col(SafetyEvent.due_at))
        ).all()
    )
    sponsors = _users_with(Role.SPONSOR, trial.id, None, session=session)
    for safety_event in overdue:
        participant = session.get(Participant, safety_event.participant_id)
        site = session.get(Site, safety_event.site_id)
        label = participant.label if participant else "?"
        with audit.reason(session, f"follow-up overdue since {safety_event.due_at.isoformat()}: escalated"):
            safety_event.escalated_at = now
            session.add(safety_event)
        subject = f"[{trial.code}] OVERDUE safety event for participant {label}: {safety_event.kind}"
        body = (
            f"Trial {trial.code}, site {site.code if site else '?'}, participant {label}.\n"
            f"{KIND_TEXT[Kind(safety_event.kind)]}; the follow-up was due by "
            f"{safety_event.due_at.isoformat()} (UTC) and has not been recorded."
        )
        notify(sponsors, safety_event, subject, body, session=session)
    session.flush()
    return overdue


def event_read(
    safety_event: SafetyEvent, *, session: Session, now: datetime | None = None
) -> SafetyEventRead:
    participant = session.get(Participant, safety_event.participant_id)
    site = session.get(Site, safety_event.site_id)
    if participant is None or site is None:  # the foreign keys make this impossible
        raise LookupError(f"safety event {safety_event.id} has no participant or site")
    moment = now or utcnow()
    return SafetyEventRead(
        id=safety_event.id,
        participant_label=participant.label,
        site_code=site.code,
        kind=safety_event.kind,
        item9=safety_event.item9,
        created_at=safety_event.created_at,
        due_at=safety_event.due_at,
        status=safety_event.status,
        overdue=safety_event.status == EventStatus.OPEN.value and safety_event.due_at < moment,
        followed_up_at=safety_event.followed_up_at,
        followed_up_by=safety_event.followed_up_by,
        risk_assessment_done=safety_event.risk_assessment_done,
        referral=safety_event.referral,
        escalated_at=safety_event.escalated_at,
    )
