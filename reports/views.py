"""The report pages of a trial: generate (a background job with its progress), history with
hashes and signatures, a stored report's analysis results, downloads (the PDF, its signed copy,
results.json and the bundle's manifest.json), and signing."""

import uuid
from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)

from reports import bundle, jobs, services
from reports.downloads import attachment
from reports.forms import GenerateForm, SignForm
from reports.models import ReportJob
from reports.results_view import results_page
from trials.core.accounts.auth import login_required
from trials.core.accounts.permissions import Permission
from trials.core.accounts.services import authorize
from trials.core.db import db
from trials.core.errors import Conflict, InvalidInput
from trials.participants.services import trial_by_code

bp = Blueprint("reports", __name__, template_folder="templates", url_prefix="/trials")


def job_view(code: str, job: ReportJob) -> dict[str, Any]:
    view = services.job_summary(job, session=db.session)
    number = view["report_number"]
    return {
        **view,
        "id": str(job.id),
        "requested_at": job.requested_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "progress": round(job.progress, 3),
        "report": number,
        "download": url_for("reports.download", code=code, number=number) if number else None,
    }


@bp.route("/<code>/reports", methods=["GET", "POST"])
@login_required
def index(code: str) -> Any:
    trial = trial_by_code(code, session=db.session)
    authorize(g.principal, Permission.VIEW_RESULTS, session=db.session, trial_id=trial.id)
    form = GenerateForm()
    status = 200
    if form.validate_on_submit():
        try:
            job = services.request_report(
                code,
                services.parse_variant(form.variant.data),
                session=db.session,
                by=g.principal,
                channel="web",
                runner=jobs.runner_name(),
            )
        except (Conflict, InvalidInput) as exc:
            form.variant.errors = [exc.detail, *(e.message for e in exc.errors)]
            status = exc.status
        else:
            db.session.commit()  # the job must exist before a worker looks for it
            if jobs.start(job):
                flash(f"The {job.variant} report is being generated.", "info")
            else:
                flash("The report job could not be queued; see its error below.", "error")
            return redirect(url_for("reports.index", code=code))
    elif request.method == "POST":
        status = 422
    can_generate = g.principal.grant_for(Permission.GENERATE_REPORT, trial_id=trial.id) is not None
    final_refusal = services.final_refusal(trial, session=db.session)
    reports = services.list_reports(code, session=db.session, by=g.principal)
    return render_template(
        "web/reports.html",
        code=code,
        trial=trial,
        form=form,
        can_generate=can_generate,
        final_refusal=final_refusal,
        jobs=[job_view(code, j) for j in services.list_jobs(code, session=db.session, by=g.principal)],
        reports=[
            (
                r,
                services.signatures_of(r, session=db.session),
                services.latest_signed_copy(r, session=db.session),
            )
            for r in reports
        ],
    ), status


@bp.get("/<code>/reports/jobs/<uuid:job_id>")
@login_required
def job_status(code: str, job_id: uuid.UUID) -> Any:
    job = services.get_job(code, job_id, session=db.session, by=g.principal)
    return jsonify(job_view(code, job))


@bp.get("/<code>/reports/<int:number>/report.pdf")
@login_required
def download(code: str, number: int) -> Any:
    report = services.get_report(code, number, session=db.session, by=g.principal)
    pdf, sha256, name = services.report_file(
        report, signed=request.args.get("copy") == "signed", session=db.session, code=code
    )
    return attachment(pdf, sha256, name, "application/pdf")


@bp.get("/<code>/reports/<int:number>")
@login_required
def results(code: str, number: int) -> Any:
    """A stored report's analysis results, from its stored context (never computed again)."""
    report = services.get_report(code, number, session=db.session, by=g.principal)
    page = results_page(services.stored_context(report))
    copy = services.latest_signed_copy(report, session=db.session)
    return render_template(
        "web/results.html",
        code=code,
        report=report,
        page=page,
        copy=copy,
        signatures=services.signatures_of(report, session=db.session),
    )


@bp.get("/<code>/reports/<int:number>/results.json")
@login_required
def results_json(code: str, number: int) -> Any:
    report = services.get_report(code, number, session=db.session, by=g.principal)
    return attachment(*services.results_file(report, code=code), "application/json")


@bp.get("/<code>/reports/<int:number>/manifest.json")
@login_required
def manifest_json(code: str, number: int) -> Any:
    report = services.get_report(code, number, session=db.session, by=g.principal)
    return attachment(*bundle.manifest_file(report, session=db.session, trial_code=code), "application/json")


@bp.route("/<code>/reports/<int:number>/sign", methods=["GET", "POST"])
@login_required
def sign(code: str, number: int) -> Any:
    report = services.get_report(code, number, session=db.session, by=g.principal)
    authorize(g.principal, Permission.SIGN_REPORT, session=db.session, trial_id=report.trial_id)
    form = SignForm()
    if request.method == "GET":
        role = services.signing_role(g.principal, report.trial_id)
        if role is not None:
            form.meaning.data = services.SIGNING_ROLES[role].value
    status = 200
    if form.validate_on_submit():
        try:
            services.sign_report(
                code,
                number,
                meaning=form.meaning.data or "",
                password=form.password.data or "",
                session=db.session,
                by=g.principal,
                lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
            )
        except InvalidInput as exc:
            if exc.keep_changes:
                db.keep_changes_on_error()
            errors = {e.field: e.message for e in exc.errors}
            form.meaning.errors = [errors["meaning"]] if "meaning" in errors else []
            form.password.errors = [m for f, m in errors.items() if f != "meaning"] or (
                [] if errors else [exc.detail]
            )
            status = exc.status
        except Conflict as exc:
            flash(exc.detail, "error")
            return redirect(url_for("reports.index", code=code))
        else:
            # The signature is committed first; the signed copy renders outside the transaction.
            db.session.commit()
            services.make_signed_copy(report.id, username=g.principal.username, channel="web")
            flash(f"You signed report {number}; the signed copy is stored beside it.", "success")
            return redirect(url_for("reports.index", code=code))
    elif request.method == "POST":
        status = 422
    return render_template(
        "web/sign.html",
        code=code,
        report=report,
        form=form,
        signatures=services.signatures_of(report, session=db.session),
    ), status
