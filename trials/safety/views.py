"""Web pages of a trial's safety events: the list (open and overdue first) and the clinician's
follow-up form.

Both call the same services as the API (`services.list_events`, `services.follow_up`): site
staff see their site's events, only a clinician of the event's site may record its follow-up,
and a refused or invalid follow-up is shown beside its field with nothing stored.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from pydantic import ValidationError
from sqlmodel import Session, col, select
from wtforms import RadioField, SelectChoice, TextAreaField
from wtforms.validators import InputRequired, Length

from trials.core.accounts.auth import form_checks_csrf, login_required
from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.db import db
from trials.core.errors import Conflict, FieldError, InvalidInput, NotFound, field_errors
from trials.core.forms import form_problems
from trials.participants.models import Participant
from trials.participants.services import trial_by_code
from trials.participants.views import Section
from trials.safety import services
from trials.safety.models import KIND_TEXT, EventStatus, FollowUp, Kind, SafetyEvent, SafetyEventRead

bp = Blueprint("safety", __name__, template_folder="templates", url_prefix="/trials")


class FollowUpForm(FlaskForm):  # type: ignore[misc]
    risk_assessment_done = RadioField(
        "Was a risk assessment done?",
        choices=[SelectChoice("yes", "Yes"), SelectChoice("no", "No")],
        validators=[InputRequired(message="risk_assessment_done: say whether a risk assessment was done")],
    )
    referral = TextAreaField(
        "Referral (to whom, and when), if any",
        validators=[Length(max=2000, message="referral: at most 2000 characters")],
        render_kw={"rows": 2},
    )
    notes = TextAreaField(
        "Notes (kept on the audit trail as the reason)",
        validators=[Length(max=2000, message="notes: at most 2000 characters")],
        render_kw={"rows": 3},
    )


def sort_key(read: SafetyEventRead) -> tuple[int, float]:
    """Overdue first (longest overdue first), then open by due time, then closed, latest first."""
    if read.overdue:
        return 0, read.due_at.timestamp()
    if read.status == EventStatus.OPEN.value:
        return 1, read.due_at.timestamp()
    return 2, -(read.followed_up_at or read.created_at).timestamp()


def may_follow_up(principal: Principal, safety_event: SafetyEvent) -> bool:
    return (
        principal.grant_for(
            Permission.FOLLOW_UP_SAFETY, trial_id=safety_event.trial_id, site_id=safety_event.site_id
        )
        is not None
    )


@bp.get("/<code>/safety-events")
@login_required
def index(code: str) -> Any:
    principal: Principal = g.principal
    now = datetime.now(UTC)
    events = services.list_events(code, session=db.session, by=principal)
    trial = trial_by_code(code, session=db.session)
    participant = (request.args.get("participant") or "").strip()
    show = (request.args.get("show") or "all").strip()
    if show not in ("all", "open", "overdue"):
        raise InvalidInput.field("show", "known", f"show: {show!r} is not one of all, open, overdue")
    # One query loads the events' participants, so that each read finds its own in the session.
    ids = list({e.participant_id for e in events})
    if ids:
        db.session.exec(select(Participant).where(col(Participant.id).in_(ids))).all()
    rows = [(e, services.event_read(e, session=db.session, now=now)) for e in events]
    if participant:
        rows = [(e, r) for e, r in rows if r.participant_label.casefold() == participant.casefold()]
    if show == "open":
        rows = [(e, r) for e, r in rows if r.status == EventStatus.OPEN.value]
    elif show == "overdue":
        rows = [(e, r) for e, r in rows if r.overdue]
    rows.sort(key=lambda pair: sort_key(pair[1]))
    return render_template(
        "safety/index.html",
        trial=trial,
        rows=[(r, KIND_TEXT[Kind(r.kind)], may_follow_up(principal, e)) for e, r in rows],
        participant=participant,
        show=show,
        open_count=sum(1 for _e, r in rows if r.status == EventStatus.OPEN.value),
        overdue_count=sum(1 for _e, r in rows if r.overdue),
    )


def _visible_event(code: str, event_id: uuid.UUID, principal: Principal) -> SafetyEvent:
    """The event as the list shows it to `principal` (another site's is answered as missing)."""
    for safety_event in services.list_events(code, session=db.session, by=principal):
        if safety_event.id == event_id:
            return safety_event
    raise NotFound(f"no safety event {event_id} in trial {code}")


@bp.route("/<code>/safety-events/<uuid:event_id>/follow-up", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def follow_up(code: str, event_id: uuid.UUID) -> Any:
    principal: Principal = g.principal
    safety_event = _visible_event(code, event_id, principal)
    # Only a clinician of the event's site sees the form (403 before any form, as the service says).
    authorize(
        principal,
        Permission.FOLLOW_UP_SAFETY,
        session=db.session,
        trial_id=safety_event.trial_id,
        site_id=safety_event.site_id,
    )
    now = datetime.now(UTC)
    form = FollowUpForm()
    errors: list[FieldError] = []
    status = 200
    if request.method == "POST":
        try:
            if not form.validate_on_submit():
                raise InvalidInput("the follow-up is not valid", errors=form_problems(form))
            try:
                data = FollowUp.model_validate(
                    {
                        "risk_assessment_done": form.risk_assessment_done.data == "yes",
                        "referral": (form.referral.data or "").strip() or None,
                        "notes": (form.notes.data or "").strip() or None,
                    }
                )
            except ValidationError as exc:
                raise InvalidInput("the follow-up is not valid", errors=field_errors(exc)) from None
            services.follow_up(code, event_id, data, session=db.session, by=principal, now=now)
        except (InvalidInput, Conflict) as exc:
            status = exc.status
            for error in exc.errors or [FieldError("", "refused", exc.detail)]:
                target = getattr(form, error.field.split(".")[0], None) if error.field else None
                if target is not None and error.field != "csrf_token":
                    if error.message not in target.errors:
                        target.errors = [*target.errors, error.message]
                else:
                    errors.append(error)
        else:
            read = services.event_read(safety_event, session=db.session, now=now)
            flash(f"Follow-up of the safety event of {read.participant_label} recorded.", "success")
            return redirect(url_for("safety.index", code=code))
    read = services.event_read(safety_event, session=db.session, now=now)
    return render_template(
        "safety/follow_up.html",
        code=code,
        event=read,
        kind_text=KIND_TEXT[Kind(read.kind)],
        form=form,
        errors=errors,
    ), status


# -- the participant page's section ----------------------------------------------------------


def participant_section(participant: Participant, *, session: Session, by: Principal) -> Section | None:
    """A link to the participant's safety events, with how many are open and overdue."""
    now = datetime.now(UTC)
    rows = session.exec(
        select(SafetyEvent.status, SafetyEvent.due_at).where(
            col(SafetyEvent.participant_id) == participant.id
        )
    ).all()
    trial_code = trial_code_of(participant, session=session)
    return Section(
        "safety/_participant.html",
        {
            "code": trial_code,
            "label": participant.label,
            "total": len(rows),
            "open": sum(1 for s, _d in rows if s == EventStatus.OPEN.value),
            "overdue": sum(1 for s, d in rows if s == EventStatus.OPEN.value and d < now),
            "can_follow_up": by.grant_for(
                Permission.FOLLOW_UP_SAFETY, trial_id=participant.trial_id, site_id=participant.site_id
            )
            is not None,
        },
    )


def trial_code_of(participant: Participant, *, session: Session) -> str:
    trial = session.get(Trial, participant.trial_id)  # loaded with the participant: no query
    if trial is None:  # the foreign key makes this impossible
        raise LookupError(f"participant {participant.label} has no trial")
    return trial.code
