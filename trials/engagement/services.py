"""Entering and reading engagement days: the range and date rules, shared with the CSV import.

A participant's days are entered all or nothing. A day already recorded is changed only with
a reason (the audit trail keeps the old and new values). Engagement is entered after
randomization, never dated before it or in the future, and carries no arm.
"""

from datetime import date

from sqlmodel import Session, col, select

from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from trials.engagement.models import (
    COUNT_MAXIMUM,
    EngagementDay,
    EngagementDayRead,
    EngagementRead,
    EngagementSubmit,
    EngagementTotals,
)
from trials.events.services import withdrawal_date
from trials.participants.models import Participant
from trials.participants.services import get_participant, locked_protocol, visible_site_ids
from trials.randomization.services import allocation_visible, slot_of


def count_problems(sessions: int, minutes: int, modules_completed: int) -> list[tuple[str, str, str]]:
    """(field, rule, text) for each count outside its range, and for use without a session."""
    problems = []
    for name, value in (
        ("sessions", sessions),
        ("minutes", minutes),
        ("modules_completed", modules_completed),
    ):
        if not 0 <= value <= COUNT_MAXIMUM[name]:
            problems.append((name, "range", f"{value} is outside 0-{COUNT_MAXIMUM[name]}"))
    if not problems and sessions == 0 and (minutes > 0 or modules_completed > 0):
        problems.append(
            (
                "sessions",
                "use_needs_a_session",
                "is 0 while minutes or modules completed are not: use of the app needs a session",
            )
        )
    return problems


def day_problem(
    day: date,
    *,
    consent_date: date | None,
    randomized_on: date,
    today: date,
    withdrawn_on: date | None = None,
) -> tuple[str, str] | None:
    """(rule, text) when the day is in the future, before consent or randomization, or after the
    participant's withdrawal."""
    if day > today:
        return "not_future", f"{day.isoformat()} is in the future"
    if consent_date is not None and day < consent_date:
        return (
            "not_before_consent",
            f"{day.isoformat()} is before the consent date {consent_date.isoformat()}",
        )
    if day < randomized_on:
        return (
            "not_before_randomization",
            f"{day.isoformat()} is before randomization on {randomized_on.isoformat()}",
        )
    if withdrawn_on is not None and day > withdrawn_on:
        return (
            "not_after_withdrawal",
            f"{day.isoformat()} is after the participant's withdrawal on {withdrawn_on.isoformat()}",
        )
    return None


def randomized_on(participant: Participant, *, session: Session) -> date:
    """The participant's randomization date; engagement is recorded only after it."""
    slot = slot_of(participant, session=session)
    if slot is None or slot.randomized_at is None:
        raise Conflict(f"{participant.label} is not randomized: engagement is recorded after randomization")
    return slot.randomized_at.date()


def submit_days(
    code: str, label: str, data: EngagementSubmit, *, session: Session, by: Principal, today: date
) -> list[EngagementDay]:
    """Store a participant's days, all or nothing; days already recorded need a reason."""
    participant = get_participant(code, label, session=session, by=by)
    authorize(
        by, Permission.ENTER_DATA, session=session, trial_id=participant.trial_id, site_id=participant.site_id
    )
    start = randomized_on(participant, session=session)
    withdrawn_on = withdrawal_date(participant.id, session=session)
    errors: list[FieldError] = []
    first_of: dict[date, int] = {}
    for i, entry in enumerate(data.days):
        path = f"days[{i}]"
        for name, rule, text in count_problems(entry.sessions, entry.minutes, entry.modules_completed):
            errors.append(FieldError(f"{path}.{name}", rule, f"{path}.{name}: {text}"))
        problem = day_problem(
            entry.day,
            consent_date=participant.consent_date,
            randomized_on=start,
            today=today,
            withdrawn_on=withdrawn_on,
        )
        if problem is not None:
            errors.append(FieldError(f"{path}.day", problem[0], f"{path}.day: {problem[1]}"))
        if entry.day in first_of:
            errors.append(
                FieldError(
                    f"{path}.day",
                    "duplicate_in_request",
                    f"{path}.day: {entry.day.isoformat()} is also days[{first_of[entry.day]}]",
                )
            )
        else:
            first_of[entry.day] = i
    if errors:
        raise InvalidInput("the engagement days are not valid: nothing was stored", errors=errors)
    # Entries for one participant queue on the participant's row (PostgreSQL; SQLite's
    # immediate transactions already do): two at once cannot both add the same day.
    session.exec(select(Participant.id).where(Participant.id == participant.id).with_for_update()).one()
    existing = {
        row.day: row
        for row in session.exec(
            select(EngagementDay).where(
                EngagementDay.participant_id == participant.id, col(EngagementDay.day).in_(list(first_of))
            )
        ).all()
    }
    changed = [
        entry
        for entry in data.days
        if entry.day in existing
        and (existing[entry.day].sessions, existing[entry.day].minutes, existing[entry.day].modules_completed)
        != (entry.sessions, entry.minutes, entry.modules_completed)
    ]
    if changed and not (data.reason or "").strip():
        days = ", ".join(entry.day.isoformat() for entry in changed)
        raise InvalidInput.field(
            "reason",
            "required",
            f"reason: {days} {'is' if len(changed) == 1 else 'are'} already recorded; "
            "a correction needs a reason",
        )
    stored = []
    for entry in data.days:
        if entry.day in existing:
            continue
        row = EngagementDay(
            trial_id=participant.trial_id,
            participant_id=participant.id,
            day=entry.day,
            sessions=entry.sessions,
            minutes=entry.minutes,
            modules_completed=entry.modules_completed,
            source="api",
        )
        session.add(row)
        stored.append(row)
    session.flush()
    if changed:
        with audit.reason(session, data.reason):
            for entry in changed:
                row = existing[entry.day]
                row.sessions = entry.sessions
                row.minutes = entry.minutes
                row.modules_completed = entry.modules_completed
                session.add(row)
                stored.append(row)
    return stored


def days_of(participant: Participant, *, session: Session) -> list[EngagementDay]:
    return list(
        session.exec(
            select(EngagementDay)
            .where(EngagementDay.participant_id == participant.id)
            .order_by(col(EngagementDay.day))
        ).all()
    )


def list_days(
    code: str, label: str, *, session: Session, by: Principal
) -> tuple[Participant, list[EngagementDay]]:
    """A participant's days: for the staff of the participant's site, and for roles the protocol
    does not blind (whether and how an app is used reveals the arm: a waitlist has none)."""
    participant = get_participant(code, label, session=session, by=by)
    if visible_site_ids(by, participant.trial_id) is None:
        trial = session.get(Trial, participant.trial_id)
        if trial is None:  # the foreign key makes this impossible
            raise NotFound(f"no participant {label!r} in trial {code}")
        _version, document = locked_protocol(trial, session=session)
        if not allocation_visible(by, participant.trial_id, document):
            raise Forbidden(
                "a participant's app use reveals their arm: it is shown to the site's staff and to "
                "roles the protocol does not blind"
            )
    return participant, days_of(participant, session=session)


def engagement_read(participant: Participant, days: list[EngagementDay]) -> EngagementRead:
    return EngagementRead(
        participant_label=participant.label,
        days=[
            EngagementDayRead(
                day=d.day,
                sessions=d.sessions,
                minutes=d.minutes,
                modules_completed=d.modules_completed,
                source=d.source,
                created_at=d.created_at,
            )
            for d in days
        ],
        totals=EngagementTotals(
            days_used=sum(1 for d in days if d.sessions > 0),
            sessions=sum(d.sessions for d in days),
            minutes=sum(d.minutes for d in days),
            modules_completed=sum(d.modules_completed for d in days),
        ),
    )
