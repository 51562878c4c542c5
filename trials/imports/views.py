"""The import page of a trial: upload a CSV, see its validation report, and the batch history."""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, flash, g, redirect, render_template, request, url_for

from trials.core.accounts.auth import login_required
from trials.core.accounts.permissions import Permission
from trials.core.accounts.services import authorize
from trials.core.db import db
from trials.core.errors import Conflict, InvalidInput
from trials.imports import services
from trials.imports.forms import ImportForm
from trials.participants.services import trial_by_code

bp = Blueprint("imports", __name__, template_folder="templates", url_prefix="/trials")


@bp.route("/<code>/import", methods=["GET", "POST"])
@login_required
def page(code: str) -> Any:
    trial = trial_by_code(code, session=db.session)
    # Coordinators import, each for the participants of their own sites.
    authorize(g.principal, Permission.ENTER_DATA, session=db.session, trial_id=trial.id)
    form = ImportForm()
    report: services.ImportRefused | None = None
    refusal: str | None = None
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        try:
            summary = services.import_csv(
                code,
                form.kind.data or "",
                upload.read(),
                filename=upload.filename or "upload.csv",
                session=db.session,
                by=g.principal,
                today=datetime.now(UTC).date(),
            )
        except services.ImportRefused as exc:
            report, status = exc, exc.status
        except (InvalidInput, Conflict) as exc:
            refusal, status = "; ".join([exc.detail, *(e.message for e in exc.errors)]), exc.status
        else:
            flash(
                f"Imported {summary.row_count} {summary.kind} rows from {summary.filename} "
                f"(batch {summary.id}): {summary.safety_events} safety events, "
                f"{summary.data_queries} data queries.",
                "success",
            )
            return redirect(url_for("imports.page", code=code))
    elif request.method == "POST":
        status = 422
    batches = services.list_batches(code, session=db.session, by=g.principal)
    return render_template(
        "imports/import.html",
        code=code,
        form=form,
        report=report,
        refusal=refusal,
        batches=batches,
        columns=services.COLUMNS,
    ), status


@bp.get("/<code>/import/templates/<kind>.csv")
@login_required
def template(code: str, kind: str) -> Any:
    trial = trial_by_code(code, session=db.session)
    authorize(g.principal, Permission.VIEW_TRIAL, session=db.session, trial_id=trial.id)
    return Response(
        services.template_csv(kind),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{kind}-template.csv"'},
    )
