"""Web pages of randomization: the participant page's randomization section and the randomize
form with its explicit confirmation.

The form calls the service the API calls (`services.randomize`): site staff with data entry at
the participant's site, an enrolled participant, a live trial. The result shows the arm only to
those the protocol does not blind, exactly as the participant page decides
(`reads.participant_read`); a blinded coordinator sees "randomized" and no arm.
"""

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from sqlmodel import Session, select

from trials.core.accounts.auth import login_required
from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.db import db
from trials.core.errors import Conflict, FieldError, InvalidInput
from trials.core.forms import EXPIRED, show_errors
from trials.participants.models import Participant, Status
from trials.participants.services import get_participant
from trials.participants.views import Section
from trials.randomization import reads, services
from trials.randomization.forms import RandomizeForm
from trials.randomization.models import AllocationList

bp = Blueprint("randomization", __name__, template_folder="templates", url_prefix="/trials")


def _may_randomize(participant: Participant, by: Principal) -> bool:
    grant = by.grant_for(Permission.ENTER_DATA, trial_id=participant.trial_id, site_id=participant.site_id)
    return grant is not None


def _live(participant: Participant, *, session: Session) -> bool:
    query = select(AllocationList.id).where(AllocationList.trial_id == participant.trial_id)
    return session.exec(query).first() is not None


@bp.route("/<code>/participants/<label>/randomize", methods=["GET", "POST"])
@login_required
def randomize(code: str, label: str) -> Any:
    principal: Principal = g.principal
    participant = get_participant(code, label, session=db.session, by=principal)
    authorize(
        principal,
        Permission.ENTER_DATA,
        session=db.session,
        trial_id=participant.trial_id,
        site_id=participant.site_id,
    )
    if request.method == "GET":
        # The form opens only for a participant it can randomize; otherwise the page says why.
        services.check_randomizable(participant, session=db.session)
    form = RandomizeForm()
    errors: list[FieldError] = []
    status = 200
    if request.method == "POST":
        if form.validate_on_submit():
            try:
                services.randomize(code, label, session=db.session, by=principal)
            except (InvalidInput, Conflict) as exc:
                errors, status = show_errors(form, exc), exc.status
            else:
                read = reads.participant_read(participant, session=db.session, by=principal)
                arm = f" to arm {read.arm_code}" if read.arm_code else ""
                flash(f"{label} randomized{arm}.", "success")
                return redirect(url_for("participants.page", code=code, label=label))
        else:
            status = 422
            if form.csrf_token.errors:
                errors = [EXPIRED]
    return render_template(
        "randomization/randomize.html", form=form, code=code, label=label, errors=errors
    ), status


def participant_section(participant: Participant, *, session: Session, by: Principal) -> Section | None:
    """The randomize action for an enrolled participant not yet randomized, to the staff who may
    randomize them, once the trial is live."""
    if participant.status != Status.ENROLLED.value or not _may_randomize(participant, by):
        return None
    if services.slot_of(participant, session=session) is not None:
        return None
    trial = session.get(Trial, participant.trial_id)  # loaded with the participant: no query
    assert trial is not None  # the foreign key
    return Section(
        "randomization/_participant.html",
        {"code": trial.code, "label": participant.label, "live": _live(participant, session=session)},
    )
