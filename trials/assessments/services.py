"""Entering and correcting assessments: validation, visit windows, duplicates, safety signals.

The safety events an assessment raises are created here, in the same transaction as the
assessment, by `trials.safety.services.raise_events` (given plain values).
"""

import uuid
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from analysis.scoring import RULES, ScoringRule, total_score
from protocols.document import ProtocolDocument, Visit
from trials.assessments.models import (
    ITEM_COLUMNS,
    Assessment,
    AssessmentCorrection,
    AssessmentCreate,
    DataQuery,
    Items,
)
from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.errors import Conflict, FieldError, InvalidInput, NotFound
from trials.events.services import withdrawal_date
from trials.participants.models import Participant
from trials.participants.services import get_participant, locked_protocol, trial_by_code, visible_site_ids
from trials.randomization.services import slot_of
from trials.safety import services as safety
from trials.safety.models import SafetyEvent


@dataclass(frozen=True)
class VisitAssignment:
    visit_code: str
    in_window: bool
    day: int


def assign_visit(day: int, visits: list[Visit]) -> VisitAssignment:
    """The visit whose window holds `day` (days from randomization); otherwise the visit with
    the nearest target day (the earlier on a tie), out of window."""
    for visit in visits:
        first, last = visit.window
        if first <= day <= last:
            return VisitAssignment(visit.code, True, day)
    nearest = min(visits, key=lambda v: (abs(v.day - day), v.day))
    return VisitAssignment(nearest.code, False, day)


def validate_items(instrument: str, items: Items, *, field: str = "items") -> dict[int, int | None]:
    """Item number to response for every item of the instrument (None where missing).

    Every error names its item (``items.9``) and rule: an unknown item, a response that is not
    an integer, or one outside 0-3. An absent or null item is missing, never 0.
    """
    rule: ScoringRule = RULES[instrument]
    errors: list[FieldError] = []
    values: dict[int, int | None] = dict.fromkeys(range(1, rule.n_items + 1))
    for key, value in items.items():
        path = f"{field}.{key}"
        if not (key.isascii() and key.isdigit() and 1 <= int(key) <= rule.n_items):
            errors.append(
                FieldError(path, "unknown_item", f"{path}: {instrument} has items 1-{rule.n_items}")
            )
            continue
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(FieldError(path, "int_type", f"{path}: must be an integer or null"))
        elif not rule.item_min <= value <= rule.item_max:
            errors.append(
                FieldError(path, "range", f"{path}: {value} is outside {rule.item_min}-{rule.item_max}")
            )
        else:
            values[int(key)] = value
    if errors:
        raise InvalidInput("the item responses are not valid", errors=errors)
    return values


def check_assessed_on(
    assessed_on: date, consent_date: date | None, today: date, *, withdrawn_on: date | None = None
) -> None:
    """An assessment is dated neither in the future, nor before the participant's consent, nor
    after their withdrawal."""
    if assessed_on > today:
        raise InvalidInput.field(
            "assessed_on", "not_future", f"assessed_on: {assessed_on.isoformat()} is in the future"
        )
    if consent_date is not None and assessed_on < consent_date:
        raise InvalidInput.field(
            "assessed_on",
            "not_before_consent",
            f"assessed_on: {assessed_on.isoformat()} is before the consent date {consent_date.isoformat()}",
        )
    if withdrawn_on is not None and assessed_on > withdrawn_on:
        raise InvalidInput.field(
            "assessed_on",
            "not_after_withdrawal",
            f"assessed_on: {assessed_on.isoformat()} is after the participant's withdrawal on "
            f"{withdrawn_on.isoformat()}",
        )


def _check_date(
    assessed_on: date, participant: Participant, today: date, *, withdrawn_on: date | None = None
) -> None:
    check_assessed_on(assessed_on, participant.consent_date, today, withdrawn_on=withdrawn_on)


def out_of_window_message(
    instrument: str, assessed_on: date, visit: VisitAssignment, target_day: int, *, asked_for: bool = False
) -> str:
    """The data query's text for an assessment outside every visit window (or, `asked_for`,
    outside the window of the visit it was asked for)."""
    where = (
        "outside the window of the visit it was asked for,"
        if asked_for
        else "outside every visit window; assigned to the nearest visit"
    )
    return (
        f"{instrument} of {assessed_on.isoformat()} is on day {visit.day} from randomization, {where} "
        f"{visit.visit_code} (day {target_day})"
    )


def _trial_of(participant: Participant, *, session: Session) -> Trial:
    trial = session.get(Trial, participant.trial_id)  # already loaded: no query
    if trial is None:  # the foreign key makes this impossible
        raise NotFound("no such trial")
    return trial


def _set_items(assessment: Assessment, values: dict[int, int | None]) -> None:
    for n, column in enumerate(ITEM_COLUMNS, start=1):
        setattr(assessment, column, values.get(n))


def _baseline_total(
    participant_id: uuid.UUID, document: ProtocolDocument, *, exclude: uuid.UUID, session: Session
) -> int | None:
    baseline = session.exec(
        select(Assessment).where(
            Assessment.participant_id == participant_id,
            Assessment.instrument == "PHQ-9",
            Assessment.visit_code == document.baseline_visit.code,
            col(Assessment.id) != exclude,
        )
    ).first()
    return None if baseline is None else total_score(baseline.items(), RULES["PHQ-9"])


def _raise_safety_events(
    assessment: Assessment,
    participant: Participant,
    document: ProtocolDocument,
    *,
    session: Session,
    already: frozenset[str] = frozenset(),
) -> list[SafetyEvent]:
    """Item 9 and deterioration signals, before and independent of prorating."""
    items = assessment.items()
    kinds = safety.signals(
        instrument=assessment.instrument,
        item9=items.get(9),
        total=total_score(items, RULES[assessment.instrument]),
        baseline_total=_baseline_total(participant.id, document, exclude=assessment.id, session=session),
        threshold=document.safety.deterioration_threshold,
    )
    return safety.raise_events(
        trial_id=participant.trial_id,
        site_id=participant.site_id,
        participant_id=participant.id,
        participant_label=participant.label,
        assessment_id=assessment.id,
        kinds=[k for k in kinds if k.value not in already],
        item9=items.get(9),
        followup_hours=document.safety.item9_followup_hours,
        session=session,
    )


def submit(
    code: str, label: str, data: AssessmentCreate, *, session: Session, by: Principal, today: date
) -> tuple[Assessment, list[SafetyEvent]]:
    """Store a site-entered assessment, assign its visit, and raise its safety events."""
    participant = get_participant(code, label, session=session, by=by)
    authorize(
        by, Permission.ENTER_DATA, session=session, trial_id=participant.trial_id, site_id=participant.site_id
    )
    return enter(participant, data, session=session, entered_by=by.username, today=today)


def enter(
    participant: Participant,
    data: AssessmentCreate,
    *,
    session: Session,
    entered_by: str,
    today: date,
    source: str = "site",
    visit_code: str | None = None,
) -> tuple[Assessment, list[SafetyEvent]]:
    """Store an assessment of a participant whose entry the caller has authorized: site staff
    through `submit`, the participant through their self-report link (`source="participant"`).

    The visit is the one whose window holds the date, or `visit_code` when the assessment
    was asked for a given visit (a self-report link); out of that visit's window, it gets a
    data query either way."""
    label = participant.label
    slot = slot_of(participant, session=session)
    if slot is None or slot.randomized_at is None:
        raise Conflict(f"{label} is not randomized: assessments are entered after randomization")
    values = validate_items(data.instrument, data.items)
    _check_date(
        data.assessed_on, participant, today, withdrawn_on=withdrawal_date(participant.id, session=session)
    )
    _version, document = locked_protocol(_trial_of(participant, session=session), session=session)
    day = (data.assessed_on - slot.randomized_at.date()).days
    if visit_code is None:
        visit = assign_visit(day, list(document.visits))
    else:
        first, last = document.visit(visit_code).window
        visit = VisitAssignment(visit_code, first <= day <= last, day)
    # Submissions for one participant queue on the participant's row (PostgreSQL; SQLite's
    # immediate transactions already do): two at once cannot both pass the duplicate check.
    session.exec(select(Participant.id).where(Participant.id == participant.id).with_for_update()).one()
    duplicate = session.exec(
        select(Assessment.id).where(
            Assessment.participant_id == participant.id,
            Assessment.visit_code == visit.visit_code,
            Assessment.instrument == data.instrument,
        )
    ).first()
    if duplicate is not None:
        raise Conflict(
            f"{label} already has a {data.instrument} for visit {visit.visit_code}: "
            "correct it (with a reason) instead of entering it again"
        )
    assessment = Assessment(
        trial_id=participant.trial_id,
        participant_id=participant.id,
        instrument=data.instrument,
        assessed_on=data.assessed_on,
        visit_code=visit.visit_code,
        in_window=visit.in_window,
        source=source,
        entered_by=entered_by,
    )
    _set_items(assessment, values)
    session.add(assessment)
    session.flush()  # the data query refers to it
    if not visit.in_window:
        session.add(
            DataQuery(
                trial_id=participant.trial_id,
                participant_id=participant.id,
                assessment_id=assessment.id,
                rule="out_of_window",
                message=out_of_window_message(
                    data.instrument,
                    data.assessed_on,
                    visit,
                    document.visit(visit.visit_code).day,
                    asked_for=visit_code is not None,
                ),
            )
        )
    session.flush()
    events = _raise_safety_events(assessment, participant, document, session=session)
    return assessment, events


def get_assessment(code: str, assessment_id: uuid.UUID, *, session: Session, by: Principal) -> Assessment:
    """An assessment of a participant the principal may see (another site's: not found)."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    assessment = session.get(Assessment, assessment_id)
    participant = None if assessment is None else session.get(Participant, assessment.participant_id)
    sites = visible_site_ids(by, trial.id)
    if (
        assessment is None
        or participant is None
        or assessment.trial_id != trial.id
        or (sites is not None and participant.site_id not in sites)
    ):
        raise NotFound(f"no assessment {assessment_id} in trial {code}")
    return assessment


def correct(
    code: str, assessment_id: uuid.UUID, data: AssessmentCorrection, *, session: Session, by: Principal
) -> tuple[Assessment, list[SafetyEvent]]:
    """Replace an assessment's items in place, with a reason; the audit keeps the old values.
    A correction that reveals a new safety signal raises its event."""
    assessment = get_assessment(code, assessment_id, session=session, by=by)
    participant = session.get(Participant, assessment.participant_id)
    if participant is None:  # the foreign key makes this impossible
        raise NotFound(f"no assessment {assessment_id} in trial {code}")
    authorize(
        by, Permission.ENTER_DATA, session=session, trial_id=participant.trial_id, site_id=participant.site_id
    )
    values = validate_items(assessment.instrument, data.items)
    _version, document = locked_protocol(_trial_of(participant, session=session), session=session)
    with audit.reason(session, data.reason):
        _set_items(assessment, values)
        session.add(assessment)
    already = frozenset(e.kind for e in safety.events_of_assessment(assessment.id, session=session))
    events = _raise_safety_events(assessment, participant, document, session=session, already=already)
    return assessment, events


def data_queries_of(assessment: Assessment, *, session: Session) -> list[DataQuery]:
    return list(
        session.exec(
            select(DataQuery)
            .where(DataQuery.assessment_id == assessment.id)
            .order_by(col(DataQuery.created_at))
        ).all()
    )
