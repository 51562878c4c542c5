"""Issuing, revoking and completing self-report links.

A link is issued by the staff of the participant's site for a questionnaire of a visit that is
due. The participant who follows it answers through the same path as site staff
(`trials.assessments.services.enter`), recorded as participant-entered with the participant as
the audit actor; the same safety events are raised, and the link is used up in the same
transaction. A link that is unknown, used, expired or revoked is refused with one and the same
answer, which never says which.
"""

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import cast

from sqlmodel import Session, col, select

from analysis.scoring import RULES
from trials.assessments import schedule as schedules
from trials.assessments import services as assessments
from trials.assessments.models import Assessment, AssessmentCreate, InstrumentCode, Items
from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.errors import Conflict, InvalidInput, NotFound
from trials.dblock.services import is_locked
from trials.epro.models import EproDue, EproLink, EproLinkRead
from trials.participants.models import Participant
from trials.participants.services import get_participant, locked_protocol, trial_by_code, visible_site_ids
from trials.randomization.services import slot_of
from trials.safety.models import SafetyEvent

TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 128
PARTICIPANT_ROLE = "participant"


class State(StrEnum):
    ACTIVE = "active"
    USED = "used"
    EXPIRED = "expired"
    REVOKED = "revoked"


class LinkNotValid(NotFound):
    """The one answer to a link that cannot be used, whatever the reason."""

    title = "Link not valid"

    def __init__(self) -> None:
        super().__init__("this link is not valid")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def state_of(link: EproLink, now: datetime) -> State:
    if link.used_at is not None:
        return State.USED
    if link.revoked_at is not None:
        return State.REVOKED
    if link.expires_at <= now:
        return State.EXPIRED
    return State.ACTIVE


def participant_actor(label: str) -> audit.Actor:
    """Who acts when a participant answers through their link."""
    return audit.Actor(None, f"{PARTICIPANT_ROLE}:{label}", f"Participant {label}", PARTICIPANT_ROLE, "web")


def link_read(link: EproLink, label: str, now: datetime) -> EproLinkRead:
    return EproLinkRead(
        id=link.id,
        participant_label=label,
        visit_code=link.visit_code,
        instrument=link.instrument,
        created_at=link.created_at,
        created_by=link.created_by,
        expires_at=link.expires_at,
        state=state_of(link, now).value,
        used_at=link.used_at,
        assessment_id=link.assessment_id,
    )


# -- site staff ------------------------------------------------------------------------------


def _entering(code: str, label: str, *, session: Session, by: Principal) -> Participant:
    participant = get_participant(code, label, session=session, by=by)
    authorize(
        by, Permission.ENTER_DATA, session=session, trial_id=participant.trial_id, site_id=participant.site_id
    )
    return participant


def due_questionnaires(participant: Participant, *, session: Session, now: datetime) -> list[EproDue]:
    """The questionnaires of the participant's visits that are due today (none before
    randomization)."""
    slot = slot_of(participant, session=session)
    if slot is None or slot.randomized_at is None:
        return []
    trial = _trial_of(participant, session=session)
    _version, document = locked_protocol(trial, session=session)
    schedule = schedules.schedule_of(
        participant, document, slot.randomized_at.date(), session=session, today=now.date()
    )
    return [
        EproDue(
            visit_code=visit.code,
            visit_name=visit.name,
            instrument=instrument,
            window_first=visit.first,
            window_last=visit.last,
        )
        for visit, instrument in schedules.due(schedule)
    ]


def _trial_of(participant: Participant, *, session: Session) -> Trial:
    trial = session.get(Trial, participant.trial_id)  # loaded with the participant: no query
    if trial is None:  # the foreign key makes this impossible
        raise NotFound("no such trial")
    return trial


def issue(
    code: str,
    label: str,
    *,
    visit_code: str,
    instrument: str,
    session: Session,
    by: Principal,
    now: datetime,
    valid_for: timedelta,
) -> tuple[EproLink, str]:
    """A new link for a questionnaire of a visit due today; returns the link and its token,
    which is not stored and cannot be shown again. An earlier unused link for the same
    questionnaire is revoked: only the newest one works."""
    participant = _entering(code, label, session=session, by=by)
    if instrument not in RULES:
        known = ", ".join(sorted(RULES))
        raise InvalidInput.field("instrument", "known", f"instrument: {instrument!r} is not one of {known}")
    slot = slot_of(participant, session=session)
    if slot is None or slot.randomized_at is None:
        raise Conflict(f"{label} is not randomized: self-report links are issued after randomization")
    trial = _trial_of(participant, session=session)
    _version, document = locked_protocol(trial, session=session)
    if visit_code not in {v.code for v in document.visits}:
        raise InvalidInput.field(
            "visit_code", "known", f"visit_code: {visit_code!r} is not a visit of the protocol"
        )
    schedule = schedules.schedule_of(
        participant, document, slot.randomized_at.date(), session=session, today=now.date()
    )
    visit = next(v for v in schedule if v.code == visit_code)
    item = next((i for i in visit.instruments if i.instrument == instrument), None)
    if item is None:
        raise InvalidInput.field(
            "instrument",
            "visit_instrument",
            f"instrument: visit {visit_code} does not collect the {instrument}",
        )
    if item.state == schedules.State.DONE:
        raise Conflict(f"{label} already has a {instrument} for visit {visit_code}")
    if item.state != schedules.State.DUE:
        raise InvalidInput.field(
            "visit_code",
            "due",
            f"visit_code: {visit_code} is not due today (its window is {visit.first.isoformat()} "
            f"to {visit.last.isoformat()})",
        )
    earlier = session.exec(
        select(EproLink).where(
            EproLink.participant_id == participant.id,
            EproLink.visit_code == visit_code,
            EproLink.instrument == instrument,
        )
    ).all()
    active = [link for link in earlier if state_of(link, now) == State.ACTIVE]
    if active:
        with audit.reason(session, "superseded by a new self-report link"):
            for link in active:
                link.revoked_at = now
                session.add(link)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    link = EproLink(
        trial_id=participant.trial_id,
        participant_id=participant.id,
        instrument=instrument,
        visit_code=visit_code,
        token_sha256=token_digest(token),
        created_at=now,
        created_by=by.username,
        expires_at=now + valid_for,
    )
    session.add(link)
    session.flush()
    return link, token


def links_of(participant: Participant, *, session: Session) -> list[EproLink]:
    return list(
        session.exec(
            select(EproLink)
            .where(EproLink.participant_id == participant.id)
            .order_by(col(EproLink.created_at).desc())
        ).all()
    )


def list_links(
    code: str, label: str, *, session: Session, by: Principal
) -> tuple[Participant, list[EproLink]]:
    participant = get_participant(code, label, session=session, by=by)
    return participant, links_of(participant, session=session)


def revoke(
    code: str, link_id: uuid.UUID, *, session: Session, by: Principal, now: datetime
) -> tuple[EproLink, Participant]:
    """Revoke an unused link (their site's staff)."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    link = session.get(EproLink, link_id)
    participant = None if link is None else session.get(Participant, link.participant_id)
    sites = visible_site_ids(by, trial.id)
    if (
        link is None
        or participant is None
        or link.trial_id != trial.id
        or (sites is not None and participant.site_id not in sites)
    ):
        raise NotFound(f"no self-report link {link_id} in trial {code}")
    authorize(
        by, Permission.ENTER_DATA, session=session, trial_id=participant.trial_id, site_id=participant.site_id
    )
    state = state_of(link, now)
    if state != State.ACTIVE:
        raise Conflict(f"this link is already {state.value}")
    with audit.reason(session, "revoked by the site's staff"):
        link.revoked_at = now
        session.add(link)
    return link, participant


# -- the participant -------------------------------------------------------------------------


def open_link(
    token: str, *, session: Session, now: datetime, for_update: bool = False
) -> tuple[EproLink, Participant]:
    """The usable link of `token` and its participant, or `LinkNotValid`; a link of a trial
    whose database is locked is refused with a `Conflict`."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise LinkNotValid()
    query = select(EproLink).where(EproLink.token_sha256 == token_digest(token))
    if for_update:
        query = query.with_for_update()
    link = session.exec(query).first()
    if link is None or state_of(link, now) != State.ACTIVE:
        raise LinkNotValid()
    participant = session.get(Participant, link.participant_id)
    if participant is None:  # the foreign key makes this impossible
        raise LinkNotValid()
    if is_locked(link.trial_id, session):
        raise Conflict("this questionnaire cannot be accepted at the moment")
    return link, participant


def complete(
    token: str, items: Items, *, session: Session, now: datetime
) -> tuple[Assessment, list[SafetyEvent], EproLink]:
    """Store the participant's answers for the link's visit, dated today, and use up the link.

    `items` maps item numbers to responses as the form sent them; they are checked exactly as
    site-entered ones are. The audit actor is the participant."""
    link, participant = open_link(token, session=session, now=now, for_update=True)
    audit.set_actor(session, participant_actor(participant.label))
    data = AssessmentCreate.model_construct(
        instrument=cast(InstrumentCode, link.instrument), assessed_on=now.date(), items=items
    )
    assessment, events = assessments.enter(
        participant,
        data,
        session=session,
        entered_by=f"{PARTICIPANT_ROLE}:{participant.label}",
        today=now.date(),
        source="participant",
        visit_code=link.visit_code,
    )
    with audit.reason(session, "completed by the participant through their self-report link"):
        link.used_at = now
        link.assessment_id = assessment.id
        session.add(link)
    return assessment, events, link
