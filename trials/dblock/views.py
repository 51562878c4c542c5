"""The database lock page: the trial's lock state, and the sponsor's lock with a reason and an
explicit confirmation, through the same service as the API (`services.lock_database`)."""

from typing import Any

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField
from wtforms.validators import DataRequired, Length

from trials.core.accounts.auth import form_checks_csrf, login_required
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.db import db
from trials.core.errors import FieldError
from trials.core.forms import submit
from trials.dblock import services
from trials.participants.services import trial_by_code

bp = Blueprint("dblock", __name__, template_folder="templates", url_prefix="/trials")


class LockForm(FlaskForm):  # type: ignore[misc]
    reason = TextAreaField(
        "Reason for locking",
        validators=[DataRequired(message="reason: say why the database is locked"), Length(max=2000)],
        render_kw={"rows": 2},
    )
    confirm = BooleanField(
        "I understand that no data of this trial can be entered or changed while it is locked",
        validators=[DataRequired(message="confirm: tick to confirm the lock")],
    )


@bp.route("/<code>/database-lock", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def page(code: str) -> Any:
    principal: Principal = g.principal
    trial = trial_by_code(code, session=db.session)
    # The sponsor's page: 403 before any form for everyone else.
    authorize(principal, Permission.LOCK_DATABASE, session=db.session, trial_id=trial.id)
    form = LockForm()
    errors: list[FieldError] = []
    status = 200
    if request.method == "POST":
        done, errors, status = submit(
            form,
            lambda: services.lock_database(code, reason=form.reason.data, session=db.session, by=principal),
        )
        if done:
            flash(f"The database of {code} is locked.", "success")
            return redirect(url_for("dblock.page", code=code))
    lock = services.current_lock(trial.id, session=db.session)
    return render_template(
        "dblock/page.html",
        trial=trial,
        lock=lock,
        form=form,
        errors=errors,
        can_unblind=principal.grant_for(Permission.UNBLIND_TRIAL, trial_id=trial.id) is not None,
    ), status
