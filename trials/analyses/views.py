"""The unblinding page: the trial's blinding state, and the unblinding with a reason and an
explicit confirmation, through the same service as the API (`unblinding.unblind_trial`); a
missing locked plan or database lock is refused with the service's message."""

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from trials.analyses import unblinding as unblinding_service
from trials.core.accounts.auth import form_checks_csrf, login_required
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.db import db
from trials.core.errors import FieldError
from trials.core.forms import submit
from trials.dblock.services import current_lock
from trials.participants.services import trial_by_code

bp = Blueprint("analyses", __name__, template_folder="templates", url_prefix="/trials")


class UnblindForm(FlaskForm):  # type: ignore[misc]
    reason = TextAreaField(
        "Reason for unblinding",
        validators=[DataRequired(message="reason: say why the trial is unblinded"), Length(max=2000)],
        render_kw={"rows": 2},
    )
    confirm = BooleanField(
        "I understand that unblinding releases arm-level results and cannot be undone; "
        "the database then stays locked",
        validators=[DataRequired(message="confirm: tick to confirm the unblinding")],
    )


@bp.route("/<code>/unblinding", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def unblinding(code: str) -> Any:
    principal: Principal = g.principal
    trial = trial_by_code(code, session=db.session)
    # The sponsor's and the unblinded statistician's page: 403 before any form for the others.
    authorize(principal, Permission.UNBLIND_TRIAL, session=db.session, trial_id=trial.id)
    form = UnblindForm()
    errors: list[FieldError] = []
    status = 200
    if request.method == "POST":
        done, errors, status = submit(
            form,
            lambda: unblinding_service.unblind_trial(
                code, reason=form.reason.data, session=db.session, by=principal
            ),
        )
        if done:
            flash(f"Trial {code} is unblinded: arm-level results are released.", "success")
            return redirect(url_for("analyses.unblinding", code=code))
    return render_template(
        "analyses/unblinding.html",
        trial=trial,
        record=unblinding_service.unblinding_of(trial.id, session=db.session),
        lock=current_lock(trial.id, session=db.session),
        form=form,
        errors=errors,
        can_lock=principal.grant_for(Permission.LOCK_DATABASE, trial_id=trial.id) is not None,
        can_report=principal.grant_for(Permission.VIEW_RESULTS, trial_id=trial.id) is not None,
    ), status
