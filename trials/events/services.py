"""Recording and changing adverse events and disposition events; emergency unblinding.

Site staff record and change them: a coordinator (ENTER_DATA) or a clinician (FOLLOW_UP_SAFETY)
of the participant's site. Everyone who may see the participant reads them (another site's
participant is not found, as elsewhere); none of them shows an arm. A serious adverse event
and an emergency unblinding notify every sponsor of the trial, in the app and by e-mail,
through `trials.safety.services.send`, in the transaction that records them.

Every rule a value breaks is reported at once, naming the field and the rule; nothing is
stored on any error.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from protocols import services as protocols
from protocols.models import ProtocolVersion
from trials.core.accounts.models import Role, Site, Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.db import utcnow
from trials.core.errors import Conflict, FieldError, Forbidden, InvalidInput, NotFound
from trials.events.models import (
    SERIOUS_COLUMNS,
    AdverseEvent,
    AdverseEventChange,
    AdverseEventCreate,
    AdverseEventRead,
    DispositionChange,
    DispositionCreate,
    DispositionEvent,
    DispositionEventRead,
    EmergencyUnblinding,
    EmergencyUnblindingRead,
    ReasonBody,
)
from trials.events.terms import (
    AFTER_RANDOMIZATION_KINDS,
    END_OF_STUDY_KINDS,
    INTERCURRENT_KINDS,
    KIND_TEXT,
    ONGOING_OUTCOMES,
    TREATMENT_ALLOWED_KINDS,
    TREATMENT_REQUIRED_KINDS,
    WITHDRAWAL_KINDS,
    category_of,
)
from trials.participants.models import Participant, Status
from trials.participants.services import get_participant, trial_by_code, visible_site_ids
from trials.randomization.models import AllocationList, AllocationSlot
from trials.randomization.services import slot_of
from trials.safety import services as safety
from trials.safety.models import SafetyEvent

CURRENT = "current"
RETRACTED = "retracted"
_IN_BATCH = 500

# -- access -----------------------------------------------------------------------------------------


def _authorize_site_staff(
    by: Principal, trial_id: uuid.UUID, site_id: uuid.UUID, *, session: Session
) -> None:
    """A coordinator (ENTER_DATA) or a clinician (FOLLOW_UP_SAFETY) of the site, or Forbidden."""
    for permission in (Permission.ENTER_DATA, Permission.FOLLOW_UP_SAFETY):
        if by.grant_for(permission, trial_id=trial_id, site_id=site_id) is not None:
            authorize(by, permission, session=session, trial_id=trial_id, site_id=site_id)
            return
    raise Forbidden(
        "only the coordinators and clinicians of the participant's site may record or change this"
    )


def require_enrolled(participant: Participant) -> None:
    if participant.status != Status.ENROLLED.value or participant.consent_date is None:
        raise Conflict(f"{participant.label} is not enrolled: this is recorded after consent and enrolment")


def _randomized_on(participant: Participant, *, session: Session) -> date | None:
    slot = slot_of(participant, session=session)
    return None if slot is None or slot.randomized_at is None else slot.randomized_at.date()


def _lock_participant(participant: Participant, *, session: Session) -> None:
    """Writes for one participant queue on the participant's row (PostgreSQL; SQLite's immediate
    transactions already do): two at once cannot both pass a uniqueness check."""
    session.exec(select(Participant.id).where(Participant.id == participant.id).with_for_update()).one()


def _scoped(
    code: str, model: Any, record_id: uuid.UUID, what: str, *, session: Session, by: Principal
) -> Any:
    """A record of the trial at a site the principal may see; otherwise not found."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    record = session.get(model, record_id)
    sites = visible_site_ids(by, trial.id)
    if record is None or record.trial_id != trial.id or (sites is not None and record.site_id not in sites):
        raise NotFound(f"no {what} {record_id} in trial {code}")
    return record


def _listing(code: str, model: Any, *, session: Session, by: Principal, label: str | None) -> Any:
    """A query of the trial's records of `model`, site-scoped, for one participant if given."""
    if label is not None:
        participant = get_participant(code, label, session=session, by=by)
        return select(model).where(model.participant_id == participant.id)
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    query = select(model).where(model.trial_id == trial.id)
    sites = visible_site_ids(by, trial.id)
    if sites is not None:
        query = query.where(col(model.site_id).in_(sites))
    return query


def _date_rules(field: str, value: date, participant: Participant, today: date) -> list[FieldError]:
    errors = []
    if value > today:
        errors.append(FieldError(field, "not_future", f"{field}: {value.isoformat()} is in the future"))
    consent = participant.consent_date
    if consent is not None and value < consent:
        errors.append(
            FieldError(
                field,
                "not_before_consent",
                f"{field}: {value.isoformat()} is before the consent date {consent.isoformat()}",
            )
        )
    return errors


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two sets of values are the same record (the order of serious criteria aside)."""

    def key(values: dict[str, Any]) -> dict[str, Any]:
        if "serious_criteria" in values:
            return {**values, "serious_criteria": sorted(values["serious_criteria"])}
        return values

    return key(a) == key(b)


def _changes(data: Any, current: dict[str, Any], required: frozenset[str]) -> dict[str, Any]:
    """The values after a change: the fields given in `data` over `current`. A required field
    given as null is refused; a change that changes nothing is refused."""
    given = {name: getattr(data, name) for name in data.model_fields_set if name != "change_reason"}
    nulls = sorted(name for name, value in given.items() if value is None and name in required)
    if nulls:
        raise InvalidInput(
            "a required field cannot be cleared",
            errors=[
                FieldError(name, "not_null", f"{name}: may be changed but not cleared") for name in nulls
            ],
        )
    merged = {**current, **given}
    if _same(merged, current):
        raise InvalidInput.field("body", "no_change", "body: the change gives no new value for any field")
    return merged


@dataclass(frozen=True)
class _Names:
    """Participant labels and site codes of a batch of records, read in two queries."""

    labels: dict[uuid.UUID, str]
    sites: dict[uuid.UUID, str]

    @classmethod
    def of(cls, records: Sequence[Any], *, session: Session) -> "_Names":
        if not records:
            return cls({}, {})
        participant_ids = list({r.participant_id for r in records})
        labels: dict[uuid.UUID, str] = {}
        for start in range(0, len(participant_ids), _IN_BATCH):
            batch = participant_ids[start : start + _IN_BATCH]
            labels.update(
                session.exec(
                    select(Participant.id, Participant.label).where(col(Participant.id).in_(batch))
                ).all()
            )
        site_ids = list({r.site_id for r in records})
        sites = dict(session.exec(select(Site.id, Site.code).where(col(Site.id).in_(site_ids))).all())
        return cls(labels, sites)

    def __call__(self, record: Any) -> tuple[str, str]:
        return self.labels[record.participant_id], self.sites[record.site_id]


# -- notifications ----------------------------------------------------------------------------------


def _sponsors(trial_id: uuid.UUID, *, session: Session) -> list[Any]:
    return safety.users_with_role(Role.SPONSOR, trial_id, None, session=session)


def _names(trial_id: uuid.UUID, site_id: uuid.UUID, *, session: Session) -> tuple[str, str]:
    trial = session.get(Trial, trial_id)
    site = session.get(Site, site_id)
    if trial is None or site is None:  # the foreign keys make this impossible
        raise NotFound("no such trial or site")
    return trial.code, site.code


def _notify_serious(
    ae: AdverseEvent, label: str, *, by: Principal, change_reason: str | None, session: Session
) -> None:
    """Every sponsor of the trial, in the app and by e-mail. No arm: sponsors may be blinded."""
    trial_code, site_code = _names(ae.trial_id, ae.site_id, session=session)
    what = "changed to serious" if change_reason is not None else "reported"
    subject = f"[{trial_code}] Serious adverse event for participant {label}"
    lines = [
        f"Trial {trial_code}, site {site_code}, participant {label}.",
        f"A serious adverse event was {what} by {by.printed_name} ({by.username}).",
        f"Term: {ae.term}",
        f"Onset: {ae.onset_date.isoformat()}",
        f"Serious because: {', '.join(c.replace('_', ' ') for c in ae.criteria())}",
        f"Severity: {ae.severity}; relatedness to the app: {ae.relatedness.replace('_', ' ')}; "
        f"outcome: {ae.outcome.replace('_', ' ')}.",
    ]
    if change_reason is not None:
        lines.append(f"Reason for the change: {change_reason}")
    safety.send(
        _sponsors(ae.trial_id, session=session),
        trial_id=ae.trial_id,
        subject=subject,
        body="\n".join(lines),
        session=session,
        adverse_event_id=ae.id,
    )


# -- adverse events ---------------------------------------------------------------------------------

_AE_FIELDS = (
    "term",
    "onset_date",
    "end_date",
    "serious",
    "serious_criteria",
    "severity",
    "relatedness",
    "action",
    "outcome",
    "safety_event_id",
)
_AE_REQUIRED = frozenset(_AE_FIELDS) - {"end_date", "safety_event_id"}


def _ae_rules(values: dict[str, Any], participant: Participant, today: date, *, session: Session) -> None:
    """Every rule the adverse event's values break, at once."""
    errors = _date_rules("onset_date", values["onset_date"], participant, today)
    end = values["end_date"]
    if end is not None:
        errors += [e for e in _date_rules("end_date", end, participant, today) if e.rule == "not_future"]
        if end < values["onset_date"]:
            errors.append(
                FieldError(
                    "end_date",
                    "not_before_onset",
                    f"end_date: {end.isoformat()} is before the onset date "
                    f"{values['onset_date'].isoformat()}",
                )
            )
        if values["outcome"] in ONGOING_OUTCOMES:
            errors.append(
                FieldError(
                    "end_date",
                    "not_while_ongoing",
                    f"end_date: an event whose outcome is {values['outcome']} has not ended",
                )
            )
    criteria = list(values["serious_criteria"])
    if len(set(criteria)) != len(criteria):
        errors.append(
            FieldError("serious_criteria", "unique", "serious_criteria: a criterion is given twice")
        )
    if values["serious"] and not criteria:
        errors.append(
            FieldError(
                "serious_criteria",
                "required_if_serious",
                "serious_criteria: a serious event needs at least one criterion (death, life-threatening, "
                "hospitalization, disability, congenital anomaly, other medically important)",
            )
        )
    if not values["serious"] and criteria:
        errors.append(
            FieldError(
                "serious_criteria", "only_if_serious", "serious_criteria: only a serious event has criteria"
            )
        )
    if values["outcome"] == "fatal" and "death" not in criteria:
        errors.append(
            FieldError(
                "serious_criteria",
                "death_if_fatal",
                "serious_criteria: a fatal event is serious, with death among its criteria",
            )
        )
    if "death" in criteria and values["outcome"] != "fatal":
        errors.append(
            FieldError("outcome", "fatal_if_death", "outcome: an event with the criterion death is fatal")
        )
    linked = values["safety_event_id"]
    if linked is not None:
        safety_event = session.get(SafetyEvent, linked)
        if safety_event is None or safety_event.participant_id != participant.id:
            errors.append(
                FieldError(
                    "safety_event_id",
                    "same_participant",
                    f"safety_event_id: {linked} is not a safety event of {participant.label}",
                )
            )
    if errors:
        raise InvalidInput("the adverse event is not valid", errors=errors)


def _set_ae(ae: AdverseEvent, values: dict[str, Any]) -> None:
    for name in _AE_FIELDS:
        if name != "serious_criteria":
            setattr(ae, name, values[name])
    for criterion, column in SERIOUS_COLUMNS.items():
        setattr(ae, column, criterion in values["serious_criteria"])


def record_adverse_event(
    code: str, label: str, data: AdverseEventCreate, *, session: Session, by: Principal, today: date
) -> AdverseEvent:
    """Record an adverse event of an enrolled participant; a serious one notifies the sponsors."""
    participant = get_participant(code, label, session=session, by=by)
    _authorize_site_staff(by, participant.trial_id, participant.site_id, session=session)
    require_enrolled(participant)
    values = data.model_dump(include=set(_AE_FIELDS))
    _ae_rules(values, participant, today, session=session)
    ae = AdverseEvent(
        trial_id=participant.trial_id,
        site_id=participant.site_id,
        participant_id=participant.id,
        reported_by=by.username,
        **{name: values[name] for name in _AE_FIELDS if name != "serious_criteria"},
    )
    _set_ae(ae, values)
    session.add(ae)
    session.flush()  # the notifications refer to it
    if ae.serious:
        _notify_serious(ae, participant.label, by=by, change_reason=None, session=session)
        session.flush()
    return ae


def get_adverse_event(code: str, event_id: uuid.UUID, *, session: Session, by: Principal) -> AdverseEvent:
    record: AdverseEvent = _scoped(code, AdverseEvent, event_id, "adverse event", session=session, by=by)
    return record


def change_adverse_event(
    code: str, event_id: uuid.UUID, data: AdverseEventChange, *, session: Session, by: Principal, today: date
) -> AdverseEvent:
    """Change an adverse event under a reason (the audit trail keeps old and new values); one
    that becomes serious notifies the sponsors."""
    ae = get_adverse_event(code, event_id, session=session, by=by)
    _authorize_site_staff(by, ae.trial_id, ae.site_id, session=session)
    participant = session.get(Participant, ae.participant_id)
    if participant is None:  # the foreign key makes this impossible
        raise NotFound(f"no adverse event {event_id} in trial {code}")
    current = {name: getattr(ae, name) for name in _AE_FIELDS if name != "serious_criteria"}
    current["serious_criteria"] = ae.criteria()
    values = _changes(data, current, _AE_REQUIRED)
    _ae_rules(values, participant, today, session=session)
    became_serious = values["serious"] and not ae.serious
    with audit.reason(session, data.change_reason, field="change_reason"):
        _set_ae(ae, values)
        session.add(ae)
    if became_serious:
        _notify_serious(
            ae, participant.label, by=by, change_reason=data.change_reason.strip(), session=session
        )
        session.flush()
    return ae


def list_adverse_events(
    code: str, *, session: Session, by: Principal, label: str | None = None, serious: bool | None = None
) -> list[AdverseEvent]:
    """The trial's (or one participant's) adverse events, serious ones first; site staff see
    their site's."""
    query = _listing(code, AdverseEvent, session=session, by=by, label=label)
    if serious is not None:
        query = query.where(AdverseEvent.serious == serious)
    query = query.order_by(
        col(AdverseEvent.serious).desc(), col(AdverseEvent.onset_date), col(AdverseEvent.created_at)
    )
    return list(session.exec(query).all())


def adverse_event_reads(rows: Sequence[AdverseEvent], *, session: Session) -> list[AdverseEventRead]:
    names = _Names.of(rows, session=session)
    return [_adverse_event_read(ae, *names(ae)) for ae in rows]


def adverse_event_read(ae: AdverseEvent, *, session: Session) -> AdverseEventRead:
    return adverse_event_reads([ae], session=session)[0]


def _adverse_event_read(ae: AdverseEvent, label: str, site_code: str) -> AdverseEventRead:
    return AdverseEventRead(
        id=ae.id,
        participant_label=label,
        site_code=site_code,
        term=ae.term,
        onset_date=ae.onset_date,
        end_date=ae.end_date,
        serious=ae.serious,
        serious_criteria=ae.criteria(),
        severity=ae.severity,
        relatedness=ae.relatedness,
        action=ae.action,
        outcome=ae.outcome,
        safety_event_id=ae.safety_event_id,
        reported_by=ae.reported_by,
        created_at=ae.created_at,
    )


# -- disposition and intercurrent events --------------------------------------------------------------

_DS_FIELDS = ("kind", "event_date", "reason", "other_treatment")
_DS_REQUIRED = frozenset({"kind", "event_date", "reason"})


def end_of_study(participant_id: uuid.UUID, *, session: Session) -> DispositionEvent | None:
    """The participant's current end-of-study event (withdrawal, lost to follow-up, completed)."""
    return session.exec(
        select(DispositionEvent).where(
            DispositionEvent.participant_id == participant_id,
            DispositionEvent.status == CURRENT,
            col(DispositionEvent.kind).in_(END_OF_STUDY_KINDS),
        )
    ).first()


def withdrawal_date(participant_id: uuid.UUID, *, session: Session) -> date | None:
    """The date the participant withdrew (by their choice or the investigator's), if they did:
    data dated after it are refused."""
    event = end_of_study(participant_id, session=session)
    return event.event_date if event is not None and event.kind in WITHDRAWAL_KINDS else None


def _ds_rules(
    values: dict[str, Any],
    participant: Participant,
    today: date,
    *,
    session: Session,
    exclude: uuid.UUID | None = None,
) -> None:
    """Every field rule the event's values break, at once; then the state it conflicts with."""
    kind = values["kind"]
    event_date: date = values["event_date"]
    errors = _date_rules("event_date", event_date, participant, today)
    randomized_on = _randomized_on(participant, session=session)
    if kind in AFTER_RANDOMIZATION_KINDS and randomized_on is not None and event_date < randomized_on:
        errors.append(
            FieldError(
                "event_date",
                "not_before_randomization",
                f"event_date: {event_date.isoformat()} is before randomization on "
                f"{randomized_on.isoformat()}",
            )
        )
    ended = end_of_study(participant.id, session=session)
    if ended is not None and ended.id == exclude:
        ended = None
    if kind in INTERCURRENT_KINDS and ended is not None and event_date > ended.event_date:
        errors.append(
            FieldError(
                "event_date",
                "not_after_end_of_study",
                f"event_date: {event_date.isoformat()} is after the end of study "
                f"({KIND_TEXT[ended.kind]}) on {ended.event_date.isoformat()}",
            )
        )
    treatment = values["other_treatment"]
    if kind in TREATMENT_REQUIRED_KINDS and treatment is None:
        errors.append(
            FieldError(
                "other_treatment",
                "required_for_kind",
                f"other_treatment: say which treatment ({KIND_TEXT[kind]}): antidepressant or psychotherapy",
            )
        )
    if kind not in TREATMENT_ALLOWED_KINDS and treatment is not None:
        errors.append(
            FieldError(
                "other_treatment", "not_for_kind", f"other_treatment: does not apply to {KIND_TEXT[kind]}"
            )
        )
    if errors:
        raise InvalidInput("the event is not valid", errors=errors)
    if kind in AFTER_RANDOMIZATION_KINDS and randomized_on is None:
        raise Conflict(
            f"{participant.label} is not randomized: {KIND_TEXT[kind]} is recorded after randomization"
        )
    if kind in END_OF_STUDY_KINDS and ended is not None:
        raise Conflict(
            f"{participant.label} already has an end of study ({KIND_TEXT[ended.kind]} on "
            f"{ended.event_date.isoformat()}, event {ended.id}): change it with a reason, or retract "
            "it with a reason (for example a participant lost to follow-up and found again)"
        )


def record_disposition(
    code: str, label: str, data: DispositionCreate, *, session: Session, by: Principal, today: date
) -> DispositionEvent:
    """Record an end-of-study or intercurrent event of an enrolled participant."""
    participant = get_participant(code, label, session=session, by=by)
    _authorize_site_staff(by, participant.trial_id, participant.site_id, session=session)
    require_enrolled(participant)
    _lock_participant(participant, session=session)
    values = data.model_dump(include=set(_DS_FIELDS))
    _ds_rules(values, participant, today, session=session)
    event = DispositionEvent(
        trial_id=participant.trial_id,
        site_id=participant.site_id,
        participant_id=participant.id,
        recorded_by=by.username,
        **values,
    )
    session.add(event)
    session.flush()
    return event


def get_disposition(code: str, event_id: uuid.UUID, *, session: Session, by: Principal) -> DispositionEvent:
    record: DispositionEvent = _scoped(
        code, DispositionEvent, event_id, "disposition event", session=session, by=by
    )
    return record


def _current_for_change(
    code: str, event_id: uuid.UUID, *, session: Session, by: Principal
) -> tuple[DispositionEvent, Participant]:
    event = get_disposition(code, event_id, session=session, by=by)
    _authorize_site_staff(by, event.trial_id, event.site_id, session=session)
    participant = session.get(Participant, event.participant_id)
    if participant is None:  # the foreign key makes this impossible
        raise NotFound(f"no disposition event {event_id} in trial {code}")
    if event.status != CURRENT:
        raise Conflict(f"disposition event {event_id} is retracted: record a new event instead")
    _lock_participant(participant, session=session)
    return event, participant


def change_disposition(
    code: str, event_id: uuid.UUID, data: DispositionChange, *, session: Session, by: Principal, today: date
) -> DispositionEvent:
    """Change an event in place under a reason (the audit trail keeps old and new values): a
    corrected date or reason, or an end of study superseded (lost to follow-up, then completed)."""
    event, participant = _current_for_change(code, event_id, session=session, by=by)
    current = {name: getattr(event, name) for name in _DS_FIELDS}
    values = _changes(data, current, _DS_REQUIRED)
    _ds_rules(values, participant, today, session=session, exclude=event.id)
    with audit.reason(session, data.change_reason, field="change_reason"):
        for name in _DS_FIELDS:
            setattr(event, name, values[name])
        session.add(event)
    return event


def retract_disposition(
    code: str, event_id: uuid.UUID, data: ReasonBody, *, session: Session, by: Principal
) -> DispositionEvent:
    """Retract an event under a reason: it stays on record, no longer current (a participant
    lost to follow-up and found again; an entry in error)."""
    event, _participant = _current_for_change(code, event_id, session=session, by=by)
    with audit.reason(session, data.reason):
        event.status = RETRACTED
        event.retracted_at = utcnow()
        event.retracted_by = by.username
        session.add(event)
    return event


def list_dispositions(
    code: str, *, session: Session, by: Principal, label: str | None = None, kind: str | None = None
) -> list[DispositionEvent]:
    """The trial's (or one participant's) disposition and intercurrent events, by date; site
    staff see their site's. Retracted events are listed too, marked so."""
    query = _listing(code, DispositionEvent, session=session, by=by, label=label)
    if kind is not None:
        query = query.where(DispositionEvent.kind == kind)
    query = query.order_by(col(DispositionEvent.event_date), col(DispositionEvent.created_at))
    return list(session.exec(query).all())


def disposition_reads(rows: Sequence[DispositionEvent], *, session: Session) -> list[DispositionEventRead]:
    names = _Names.of(rows, session=session)
    return [_disposition_read(event, *names(event)) for event in rows]


def disposition_read(event: DispositionEvent, *, session: Session) -> DispositionEventRead:
    return disposition_reads([event], session=session)[0]


def _disposition_read(event: DispositionEvent, label: str, site_code: str) -> DispositionEventRead:
    return DispositionEventRead(
        id=event.id,
        participant_label=label,
        site_code=site_code,
        kind=event.kind,
        category=category_of(event.kind),
        event_date=event.event_date,
        reason=event.reason,
        other_treatment=event.other_treatment,
        status=event.status,
        recorded_by=event.recorded_by,
        created_at=event.created_at,
        retracted_at=event.retracted_at,
        retracted_by=event.retracted_by,
    )


# -- emergency unblinding ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RevealedArm:
    """The arm shown to the clinician who unblinded, and to nobody else."""

    code: str
    name: str


def _arm_of(slot: AllocationSlot, *, session: Session) -> RevealedArm:
    """The slot's arm as named by the protocol version its allocation list was generated from."""
    allocation = session.get(AllocationList, slot.list_id)
    version = None if allocation is None else session.get(ProtocolVersion, allocation.protocol_version_id)
    if version is None:  # the foreign keys make this impossible
        raise LookupError(f"allocation slot {slot.id} has no protocol version")
    names = {arm.code: arm.name for arm in protocols.document_of(version).arms}
    return RevealedArm(slot.arm_code, names.get(slot.arm_code, slot.arm_code))


def unblind(
    code: str, label: str, data: ReasonBody, *, session: Session, by: Principal
) -> tuple[EmergencyUnblinding, RevealedArm]:
    """Reveal a randomized participant's arm to a clinician of their site in an emergency.

    The record (who, when, why; not the arm) is audited, and every sponsor of the trial is
    notified without the arm. A refusal stores nothing."""
    participant = get_participant(code, label, session=session, by=by)
    authorize(
        by,
        Permission.EMERGENCY_UNBLIND,
        session=session,
        trial_id=participant.trial_id,
        site_id=participant.site_id,
    )
    slot = slot_of(participant, session=session)
    if slot is None or slot.randomized_at is None:
        raise Conflict(f"{label} is not randomized: there is no arm to reveal")
    arm = _arm_of(slot, session=session)
    record = EmergencyUnblinding(
        trial_id=participant.trial_id,
        site_id=participant.site_id,
        participant_id=participant.id,
        reason=data.reason,
        unblinded_by=by.username,
    )
    session.add(record)
    session.flush()  # the notifications refer to it
    trial_code, site_code = _names(participant.trial_id, participant.site_id, session=session)
    body = "\n".join(
        [
            f"Trial {trial_code}, site {site_code}, participant {label}.",
            f"The participant's allocation was revealed in an emergency by {by.printed_name} "
            f"({by.username}) at {record.unblinded_at.isoformat()} (UTC).",
            f"Reason: {record.reason}",
            "The arm is not part of this message: it was shown to the requesting clinician only.",
        ]
    )
    safety.send(
        _sponsors(participant.trial_id, session=session),
        trial_id=participant.trial_id,
        subject=f"[{trial_code}] Emergency unblinding of participant {label}",
        body=body,
        session=session,
        emergency_unblinding_id=record.id,
    )
    session.flush()
    return record, arm


def list_unblindings(
    code: str, *, session: Session, by: Principal, label: str | None = None
) -> list[EmergencyUnblinding]:
    """The trial's (or one participant's) emergency unblindings, without arms; site staff see
    their site's."""
    query = _listing(code, EmergencyUnblinding, session=session, by=by, label=label)
    return list(session.exec(query.order_by(col(EmergencyUnblinding.unblinded_at))).all())


def unblinding_reads(
    rows: Sequence[EmergencyUnblinding], *, session: Session
) -> list[EmergencyUnblindingRead]:
    names = _Names.of(rows, session=session)
    return [_unblinding_read(record, *names(record)) for record in rows]


def unblinding_read(record: EmergencyUnblinding, *, session: Session) -> EmergencyUnblindingRead:
    return unblinding_reads([record], session=session)[0]


def _unblinding_read(record: EmergencyUnblinding, label: str, site_code: str) -> EmergencyUnblindingRead:
    return EmergencyUnblindingRead(
        id=record.id,
        participant_label=label,
        site_code=site_code,
        reason=record.reason,
        unblinded_by=record.unblinded_by,
        unblinded_at=record.unblinded_at,
    )
