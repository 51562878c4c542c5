"""Web pages of adverse events and of disposition and intercurrent events: the forms that record
them and the participant page's section that lists them.

The forms call the services the API calls (`services.record_adverse_event`,
`services.record_disposition`): the site's coordinators and clinicians record them, each error
is shown beside its field, and a refused request answers with its status so that the request's
session rolls everything back and nothing is stored. None of these pages shows an arm.
"""

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlmodel import Session, col, select

from trials.core.accounts.auth import form_checks_csrf, login_required
from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.db import db
from trials.core.db import utctoday as today
from trials.core.errors import Conflict, FieldError, Forbidden, InvalidInput
from trials.core.forms import EXPIRED, show_errors
from trials.events import services
from trials.events.forms import ACTION_TEXT, OUTCOME_TEXT, AdverseEventForm, DispositionForm
from trials.events.models import AdverseEventCreate, DispositionCreate
from trials.events.terms import KIND_TEXT
from trials.participants.models import Participant, Status
from trials.participants.services import get_participant
from trials.participants.views import Section, validated
from trials.safety.models import KIND_TEXT as SAFETY_KIND_TEXT
from trials.safety.models import Kind as SafetyKind
from trials.safety.models import SafetyEvent

bp = Blueprint("events", __name__, template_folder="templates", url_prefix="/trials")

_SITE_STAFF = (Permission.ENTER_DATA, Permission.FOLLOW_UP_SAFETY)


def _may_record(participant: Participant, by: Principal) -> bool:
    """A coordinator or clinician of the participant's site (as the services require)."""
    return any(
        by.grant_for(p, trial_id=participant.trial_id, site_id=participant.site_id) is not None
        for p in _SITE_STAFF
    )


def _recordable(code: str, label: str) -> Participant:
    """The participant, if the principal may record their events: 404 for one they may not see,
    403 for one they may see but not record for, 409 for one not enrolled, before any form is
    shown."""
    participant = get_participant(code, label, session=db.session, by=g.principal)
    if not _may_record(participant, g.principal):
        raise Forbidden("only the coordinators and clinicians of the participant's site may record this")
    services.require_enrolled(participant)
    return participant


def _safety_event_choices(participant: Participant) -> list[tuple[str, str]]:
    """The participant's safety events, latest first, as the AE form offers them (and none)."""
    rows = db.session.exec(
        select(SafetyEvent)
        .where(SafetyEvent.participant_id == participant.id)
        .order_by(col(SafetyEvent.created_at).desc())
    ).all()
    return [("", "none")] + [
        (
            str(e.id),
            f"{SAFETY_KIND_TEXT[SafetyKind(e.kind)]}"
            + (f" (item 9 = {e.item9})" if e.item9 is not None else "")
            + f", raised {e.created_at.strftime('%Y-%m-%d %H:%M UTC')}",
        )
        for e in rows
    ]


def _text(value: str | None) -> str | None:
    return (value or "").strip() or None


def _render(template: str, form: Any, errors: list[FieldError], status: int, **context: Any) -> Any:
    marked = any(f.errors for f in form if f.name != "csrf_token")
    return render_template(
        template, form=form, errors=errors, fields_marked=marked, max_date=today().isoformat(), **context
    ), status


@bp.route("/<code>/participants/<label>/adverse-events/new", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def new_adverse_event(code: str, label: str) -> Any:
    principal: Principal = g.principal
    participant = _recordable(code, label)
    form = AdverseEventForm()
    form.safety_event_id.choices = _safety_event_choices(participant)
    errors: list[FieldError] = []
    status = 200
    if request.method == "GET":
        form.onset_date.data = today().isoformat()
        # From a safety event's follow-up page: the event it arises from is chosen already.
        wanted = request.args.get("safety_event", "")
        if wanted in {value for value, _text in form.safety_event_id.choices}:
            form.safety_event_id.data = wanted
    elif form.validate_on_submit():
        try:
            data = validated(
                AdverseEventCreate,
                {
                    "term": (form.term.data or "").strip(),
                    "onset_date": (form.onset_date.data or "").strip(),
                    "end_date": _text(form.end_date.data),
                    "serious": bool(form.serious.data),
                    "serious_criteria": list(form.serious_criteria.data or []),
                    "severity": form.severity.data or None,
                    "relatedness": form.relatedness.data or None,
                    "action": form.action.data or None,
                    "outcome": form.outcome.data or None,
                    "safety_event_id": form.safety_event_id.data or None,
                },
                "adverse event",
            )
            ae = services.record_adverse_event(
                code, label, data, session=db.session, by=principal, today=today()
            )
        except (InvalidInput, Conflict) as exc:
            errors, status = show_errors(form, exc), exc.status
        else:
            notified = " The trial's sponsors have been notified." if ae.serious else ""
            flash(f"Adverse event “{ae.term}” recorded for {label}.{notified}", "success")
            return redirect(url_for("participants.page", code=code, label=label, _anchor="adverse-events"))
    else:
        errors, status = [EXPIRED], 422
    return _render("events/adverse_event.html", form, errors, status, code=code, label=label)


@bp.route("/<code>/participants/<label>/disposition-events/new", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def new_disposition(code: str, label: str) -> Any:
    principal: Principal = g.principal
    _recordable(code, label)
    form = DispositionForm()
    errors: list[FieldError] = []
    status = 200
    if request.method == "GET":
        form.event_date.data = today().isoformat()
        if request.args.get("kind") in KIND_TEXT:
            form.kind.data = request.args["kind"]
    elif form.validate_on_submit():
        try:
            data = validated(
                DispositionCreate,
                {
                    "kind": form.kind.data or None,
                    "event_date": (form.event_date.data or "").strip(),
                    "reason": (form.reason.data or "").strip(),
                    "other_treatment": form.other_treatment.data or None,
                },
                "event",
            )
            event = services.record_disposition(
                code, label, data, session=db.session, by=principal, today=today()
            )
        except (InvalidInput, Conflict) as exc:
            errors, status = show_errors(form, exc), exc.status
        else:
            flash(f"{KIND_TEXT[event.kind].capitalize()} recorded for {label}.", "success")
            return redirect(url_for("participants.page", code=code, label=label, _anchor="disposition"))
    else:
        errors, status = [EXPIRED], 422
    return _render("events/disposition.html", form, errors, status, code=code, label=label)


# -- the participant page's section ----------------------------------------------------------


def participant_section(participant: Participant, *, session: Session, by: Principal) -> Section | None:
    """The participant's adverse events and disposition and intercurrent events, with the links
    to record them for the site's staff once the participant is enrolled."""
    trial = session.get(Trial, participant.trial_id)  # loaded with the participant: no query
    assert trial is not None  # the foreign key
    code = trial.code
    adverse = services.adverse_event_reads(
        services.list_adverse_events(code, session=session, by=by, label=participant.label), session=session
    )
    dispositions = services.disposition_reads(
        services.list_dispositions(code, session=session, by=by, label=participant.label), session=session
    )
    return Section(
        "events/_participant.html",
        {
            "code": code,
            "label": participant.label,
            "adverse_events": adverse,
            "dispositions": dispositions,
            "can_record": _may_record(participant, by) and participant.status == Status.ENROLLED.value,
            "kind_text": KIND_TEXT,
            "action_text": ACTION_TEXT,
            "outcome_text": OUTCOME_TEXT,
        },
    )
