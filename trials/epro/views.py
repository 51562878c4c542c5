"""Web pages of self-report: the participant's questionnaire behind a one-time link, and the
site staff's issuing and revoking of links from the participant page.

The participant's pages are public (the token is the credential), carry no navigation and
nothing of the trial or the arm, are never cached and send no referrer. A link that cannot
be used gets one neutral page, whatever the reason.
"""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, current_app, flash, g, redirect, render_template, request, url_for
from sqlmodel import Session

from protocols.instruments import INSTRUMENTS
from trials.assessments.forms import items_from_form
from trials.core.accounts.auth import login_required
from trials.core.accounts.forms import EmptyForm
from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.db import db
from trials.core.errors import Conflict, FieldError, InvalidInput
from trials.epro import services
from trials.epro.services import LinkNotValid
from trials.participants.models import Participant
from trials.participants.views import Section
from trials.safety.models import Kind

bp = Blueprint("epro", __name__, template_folder="templates")


def now() -> datetime:
    return datetime.now(UTC)


def valid_for() -> timedelta:
    return timedelta(hours=int(current_app.config["EPRO_LINK_HOURS"]))


def link_url(token: str) -> str:
    return url_for("epro.questionnaire", token=token, _external=True)


@bp.after_request
def _private(response: Response) -> Response:
    if request.endpoint == "epro.questionnaire":
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _not_valid() -> Any:
    return render_template("epro/not_valid.html"), LinkNotValid.status


def _unavailable() -> Any:
    return render_template("epro/unavailable.html"), Conflict.status


# -- the participant -------------------------------------------------------------------------


@bp.route("/epro/<token>", methods=["GET", "POST"])
def questionnaire(token: str) -> Any:
    moment = now()
    try:
        link, _participant = services.open_link(token, session=db.session, now=moment)
    except LinkNotValid:
        return _not_valid()
    except Conflict:
        return _unavailable()
    instrument = INSTRUMENTS[link.instrument]
    form = EmptyForm()
    posted: dict[str, Any] = {}
    field_errors: dict[str, list[FieldError]] = {}
    status = 200
    if request.method == "POST" and form.validate_on_submit():
        posted = items_from_form(request.form, instrument.code)
        try:
            _assessment, events, _link = services.complete(token, posted, session=db.session, now=moment)
        except LinkNotValid:
            return _not_valid()
        except InvalidInput as exc:
            for error in exc.errors:
                field_errors.setdefault(error.field, []).append(error)
            status = exc.status
        except Conflict:
            return _unavailable()
        else:
            positive = any(e.kind == Kind.ITEM9_POSITIVE.value for e in events)
            return render_template("epro/thanks.html", item9_positive=positive)
    return render_template(
        "epro/questionnaire.html",
        instrument=instrument,
        form=form,
        posted=posted,
        field_errors=field_errors,
    ), status


# -- site staff ------------------------------------------------------------------------------


@bp.post("/trials/<code>/participants/<label>/epro-links")
@login_required
def issue(code: str, label: str) -> Any:
    principal: Principal = g.principal
    form = EmptyForm()
    if not form.validate_on_submit():
        raise InvalidInput.field("csrf_token", "csrf", "the form has expired: reload the page")
    link, token = services.issue(
        code,
        label,
        visit_code=request.form.get("visit_code", ""),
        instrument=request.form.get("instrument", ""),
        session=db.session,
        by=principal,
        now=now(),
        valid_for=valid_for(),
    )
    return render_template("epro/issued.html", code=code, label=label, link=link, url=link_url(token)), 201


@bp.post("/trials/<code>/epro-links/<uuid:link_id>/revoke")
@login_required
def revoke(code: str, link_id: uuid.UUID) -> Any:
    if not EmptyForm().validate_on_submit():
        raise InvalidInput.field("csrf_token", "csrf", "the form has expired: reload the page")
    link, participant = services.revoke(code, link_id, session=db.session, by=g.principal, now=now())
    flash(f"Self-report link for {link.instrument} at visit {link.visit_code} revoked.", "success")
    return redirect(url_for("participants.page", code=code, label=participant.label))


def participant_section(participant: Participant, *, session: Session, by: Principal) -> Section | None:
    """The participant page's self-report links, and buttons to issue one for each
    questionnaire due today (their site's staff)."""
    moment = now()
    can_issue = (
        by.grant_for(Permission.ENTER_DATA, trial_id=participant.trial_id, site_id=participant.site_id)
        is not None
    )
    links = services.links_of(participant, session=session)
    due = services.due_questionnaires(participant, session=session, now=moment) if can_issue else []
    if not links and not due:
        return None
    trial = session.get(Trial, participant.trial_id)
    assert trial is not None  # the foreign key
    return Section(
        "epro/_participant.html",
        {
            "code": trial.code,
            "label": participant.label,
            "links": [(link, services.state_of(link, moment).value) for link in links],
            "due": due,
            "can_issue": can_issue,
            "hours": int(current_app.config["EPRO_LINK_HOURS"]),
        },
    )
