"""Web pages for assessments: the entry form with its live total, corrections, and the
participant page's schedule and assessments.

The forms call the same services as the API (`services.submit`, `services.correct`): an
error is shown beside its field and the request answers with its status, so the request's
session rolls everything back and nothing is stored.
"""

import uuid
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any, cast

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlmodel import Session, col, select

from analysis.scoring import RULES, ScoreResult, ScoringRule, prorated_total
from protocols.instruments import INSTRUMENTS, Instrument
from trials.assessments import schedule as schedules
from trials.assessments import services
from trials.assessments.forms import CorrectionForm, items_from_form
from trials.assessments.models import (
    Assessment,
    AssessmentCorrection,
    AssessmentCreate,
    DataQuery,
    InstrumentCode,
)
from trials.assessments.schedule import State
from trials.core.accounts.auth import form_checks_csrf, login_required
from trials.core.accounts.forms import EmptyForm
from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.db import db
from trials.core.db import utctoday as today
from trials.core.errors import Conflict, FieldError, InvalidInput
from trials.core.forms import EXPIRED, form_problems
from trials.participants.models import Participant
from trials.participants.services import get_participant, locked_protocol
from trials.participants.views import Section
from trials.randomization.services import slot_of
from trials.safety.models import KIND_TEXT, EventStatus, Kind, SafetyEvent

bp = Blueprint("assessments", __name__, template_folder="templates", url_prefix="/trials")

SAFETY_ALERT = "the site's clinicians have been notified"


def rule_data(rule: ScoringRule) -> dict[str, Any]:
    """The scoring rule as the page's script reads it (one source of truth: `analysis.scoring`)."""
    data = asdict(rule)
    data["n_scored"] = rule.n_scored
    return data


def score_text(score: ScoreResult, rule: ScoringRule) -> str:
    """The total as the form shows it; the page's script writes the same words."""
    n = rule.n_scored
    if score.total is None:
        need = f"at least {rule.min_answered} of {n}" if rule.min_answered < n else f"all {n}"
        required = "".join(f" and item {i}" for i in rule.required_items)
        return f"Not scorable: {score.items_answered} of {n} items answered (needs {need}{required})"
    text = f"Total {score.total} · {score.severity}"
    if score.prorated:
        text += f" · prorated from {score.items_answered} of {n} items"
    return text


def _valid_items(instrument: str, items: dict[str, Any]) -> dict[int, int | None] | None:
    try:
        return services.validate_items(instrument, items)
    except InvalidInput:
        return None


def _parse_date(text: str | None) -> date:
    value = (text or "").strip()
    if not value:
        raise InvalidInput.field(
            "assessed_on", "required", "assessed_on: the date of the assessment is required"
        )
    try:
        if len(value) != 10 or not value.isascii():
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidInput.field(
            "assessed_on", "date_format", f"assessed_on: {value!r} is not a date (YYYY-MM-DD)"
        ) from None


def _instrument(code: str | None) -> Instrument:
    if code not in INSTRUMENTS:
        known = ", ".join(sorted(INSTRUMENTS))
        raise InvalidInput.field("instrument", "known", f"instrument: {code!r} is not one of {known}")
    return INSTRUMENTS[code]


def _split(errors: list[FieldError]) -> tuple[dict[str, list[FieldError]], list[FieldError]]:
    """Errors by field (`items.9`, `assessed_on`, `reason`), and those of the form as a whole."""
    by_field: dict[str, list[FieldError]] = {}
    general = []
    for error in errors:
        if error.field.startswith("items.") or error.field in ("assessed_on", "reason"):
            by_field.setdefault(error.field, []).append(error)
        else:
            general.append(error)
    return by_field, general


def _flash_outcome(label: str, assessment: Assessment, events: list[SafetyEvent], verb: str) -> None:
    rule = RULES[assessment.instrument]
    score = prorated_total(assessment.items(), rule)
    where = "" if assessment.in_window else " (out of window: a data query was opened)"
    flash(
        f"{assessment.instrument} of {assessment.assessed_on.isoformat()} {verb} for {label}, "
        f"visit {assessment.visit_code}{where}. {score_text(score, rule)}.",
        "success",
    )
    for event in events:
        flash(f"Safety event raised: {KIND_TEXT[Kind(event.kind)]}; {SAFETY_ALERT}.", "danger")


def _form_page(
    template: str,
    *,
    instrument: Instrument,
    posted: dict[str, Any],
    errors: list[FieldError],
    status: int,
    **context: Any,
) -> Any:
    by_field, general = _split(errors)
    rule = instrument.scoring_rule
    values = _valid_items(instrument.code, posted)
    score = prorated_total(values, rule) if values is not None else prorated_total({}, rule)
    return render_template(
        template,
        instrument=instrument,
        rule=rule_data(rule),
        posted=posted,
        field_errors=by_field,
        errors=general,
        score=score_text(score, rule),
        **context,
    ), status


@bp.route("/<code>/participants/<label>/assessments/new", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def new(code: str, label: str) -> Any:
    principal: Principal = g.principal
    participant = get_participant(code, label, session=db.session, by=principal)
    authorize(
        principal,
        Permission.ENTER_DATA,
        session=db.session,
        trial_id=participant.trial_id,
        site_id=participant.site_id,
    )
    instrument = _instrument(request.args.get("instrument", "PHQ-9"))
    due = _due_for(participant, instrument.code)  # read before a refused write can leave the session dirty
    form = EmptyForm()
    posted: dict[str, Any] = {}
    assessed_on = today().isoformat()
    errors: list[FieldError] = []
    status = 200
    if request.method == "POST":
        # What was typed comes back with any refusal, an expired form's included.
        posted = items_from_form(request.form, instrument.code)
        assessed_on = request.form.get("assessed_on", "")
    if request.method == "POST" and form.validate_on_submit():
        try:
            try:
                when = _parse_date(assessed_on)
            except InvalidInput as exc:
                item_errors: list[FieldError] = []
                try:
                    services.validate_items(instrument.code, posted)
                except InvalidInput as items_exc:
                    item_errors = items_exc.errors
                raise InvalidInput(exc.detail, errors=[*exc.errors, *item_errors]) from None
            data = AssessmentCreate.model_construct(
                instrument=cast(InstrumentCode, instrument.code), assessed_on=when, items=posted
            )
            assessment, events = services.submit(
                code, label, data, session=db.session, by=principal, today=today()
            )
        except (InvalidInput, Conflict) as exc:
            errors = exc.errors or [FieldError("", "refused", exc.detail)]
            status = exc.status
        else:
            _flash_outcome(label, assessment, events, "saved")
            return redirect(url_for("participants.page", code=code, label=label))
    elif request.method == "POST":
        status = 422
        errors = [EXPIRED]
    return _form_page(
        "assessments/form.html",
        instrument=instrument,
        posted=posted,
        errors=errors,
        status=status,
        form=form,
        code=code,
        label=label,
        assessed_on=assessed_on,
        max_date=today().isoformat(),
        correction=None,
        due=due,
    )


@bp.route("/<code>/assessments/<uuid:assessment_id>/edit", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def edit(code: str, assessment_id: uuid.UUID) -> Any:
    principal: Principal = g.principal
    assessment = services.get_assessment(code, assessment_id, session=db.session, by=principal)
    participant = db.session.get(Participant, assessment.participant_id)
    assert participant is not None  # the foreign key
    authorize(
        principal,
        Permission.ENTER_DATA,
        session=db.session,
        trial_id=participant.trial_id,
        site_id=participant.site_id,
    )
    instrument = _instrument(assessment.instrument)
    form = CorrectionForm()
    posted: dict[str, Any] = {str(n): v for n, v in assessment.items().items()}
    errors: list[FieldError] = []
    status = 200
    if request.method == "POST":
        posted = items_from_form(request.form, instrument.code)
        try:
            if not form.validate_on_submit():
                item_errors: list[FieldError] = []
                try:
                    services.validate_items(instrument.code, posted)
                except InvalidInput as items_exc:
                    item_errors = items_exc.errors
                problems = form_problems(form, "required")
                raise InvalidInput("the correction is not valid", errors=[*problems, *item_errors])
            data = AssessmentCorrection.model_construct(items=posted, reason=form.reason.data or "")
            corrected, events = services.correct(code, assessment_id, data, session=db.session, by=principal)
        except (InvalidInput, Conflict) as exc:
            errors = exc.errors or [FieldError("", "refused", exc.detail)]
            status = exc.status
        else:
            _flash_outcome(participant.label, corrected, events, "corrected")
            return redirect(url_for("participants.page", code=code, label=participant.label))
    return _form_page(
        "assessments/form.html",
        instrument=instrument,
        posted=posted,
        errors=errors,
        status=status,
        form=form,
        code=code,
        label=participant.label,
        assessed_on=assessment.assessed_on.isoformat(),
        max_date=today().isoformat(),
        correction=assessment,
    )


# -- the participant page's section ----------------------------------------------------------


def participant_section(participant: Participant, *, session: Session, by: Principal) -> Section | None:
    """The visit schedule as dates with what is done, due or missed; the assessments with their
    totals; open safety events; data queries."""
    trial = session.get(Trial, participant.trial_id)  # loaded with the participant: no query
    assert trial is not None  # the foreign key
    _version, document = locked_protocol(trial, session=session)
    slot = slot_of(participant, session=session)
    randomized_on = slot.randomized_at.date() if slot is not None and slot.randomized_at is not None else None
    schedule = (
        schedules.schedule_of(participant, document, randomized_on, session=session, today=today())
        if randomized_on is not None
        else []
    )
    rows = session.exec(
        select(Assessment)
        .where(Assessment.participant_id == participant.id)
        .order_by(col(Assessment.assessed_on), col(Assessment.instrument))
    ).all()
    assessments = [(a, prorated_total(a.items(), RULES[a.instrument])) for a in rows]
    events = session.exec(
        select(SafetyEvent)
        .where(SafetyEvent.participant_id == participant.id, SafetyEvent.status == EventStatus.OPEN.value)
        .order_by(col(SafetyEvent.created_at))
    ).all()
    queries = session.exec(
        select(DataQuery)
        .where(DataQuery.participant_id == participant.id)
        .order_by(col(DataQuery.created_at))
    ).all()
    can_enter = (
        by.grant_for(Permission.ENTER_DATA, trial_id=participant.trial_id, site_id=participant.site_id)
        is not None
    )
    instruments = sorted({i for v in document.visits for i in v.instruments})
    now = datetime.now(UTC)
    return Section(
        "assessments/_participant.html",
        {
            "code": trial.code,
            "label": participant.label,
            "randomized": randomized_on is not None,
            "schedule": schedule,
            "assessments": assessments,
            "events": [(e, KIND_TEXT[Kind(e.kind)], e.due_at <= now) for e in events],
            "queries": queries,
            "can_enter": can_enter and randomized_on is not None,
            "instruments": instruments,
            "due": schedules.due(schedule),
            "next_visit": next(
                (v for v in schedule if all(i.state == State.UPCOMING for i in v.instruments)), None
            ),
        },
    )


def _due_for(participant: Participant, instrument: str) -> tuple[Any, Any]:
    """For the entry form: the visit whose window is open today with this questionnaire still due
    (the one an assessment dated today goes to), else the next visit asking for it."""
    trial = db.session.get(Trial, participant.trial_id)
    assert trial is not None  # the foreign key
    _version, document = locked_protocol(trial, session=db.session)
    slot = slot_of(participant, session=db.session)
    if slot is None or slot.randomized_at is None:
        return None, None
    schedule = schedules.schedule_of(
        participant, document, slot.randomized_at.date(), session=db.session, today=today()
    )
    due = next((v for v, i in schedules.due(schedule) if i == instrument), None)
    upcoming = next(
        (
            v
            for v in schedule
            if any(i.instrument == instrument and i.state == State.UPCOMING for i in v.instruments)
        ),
        None,
    )
    return due, upcoming
