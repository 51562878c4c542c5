"""Web pages of the protocol registry: list, register, view, edit a draft, amend, diff, lock."""

from collections.abc import Callable
from typing import Any

from flask import Blueprint, current_app, flash, g, redirect, render_template, request, url_for

from protocols import services
from protocols.forms import DocumentForm, LockForm
from protocols.models import ProtocolVersion
from trials.core.accounts.auth import form_checks_csrf, login_required
from trials.core.accounts.permissions import Permission
from trials.core.accounts.services import authorize
from trials.core.db import db
from trials.core.errors import Conflict, DomainError, FieldError, Forbidden, InvalidInput
from trials.core.forms import EXPIRED

bp = Blueprint("protocols", __name__, template_folder="templates", url_prefix="/protocols")


def _submitted(form: DocumentForm) -> services.Source:
    upload = form.file.data
    if upload and getattr(upload, "filename", ""):
        return services.Source(upload.read(), services.format_from_name(upload.filename))
    if form.text.data and form.text.data.strip():
        return services.Source(form.text.data)
    raise InvalidInput.field("file", "required", "file: upload a protocol file or paste its text")


def _errors(exc: DomainError) -> list[FieldError]:
    return exc.errors or [FieldError("", "refused", exc.detail)]


def _require_manage(row: ProtocolVersion) -> None:
    """Edit, lock and amend forms are for those who may manage the protocol: 403 before any form."""
    authorize(g.principal, Permission.MANAGE_PROTOCOL, session=db.session, trial_id=row.trial_id)


@bp.get("")
@login_required
def index() -> Any:
    rows = services.list_protocols(session=db.session, by=g.principal)
    can_register = bool(
        g.principal.grant_for(Permission.MANAGE_ACCOUNTS) or g.principal.grant_for(Permission.MANAGE_PROTOCOL)
    )
    return render_template("protocols/index.html", rows=rows, can_register=can_register)


def _document_page(
    title: str,
    save: Callable[[services.Source, str], Any],
    *,
    prefill: str | None = None,
    show_reason: bool = True,
) -> Any:
    """The register, edit and amend pages: a document form whose errors keep the page (and store nothing)."""
    form = DocumentForm()
    if request.method == "GET" and prefill is not None:
        form.text.data = prefill
    errors: list[FieldError] = []
    status = 200
    if form.validate_on_submit():
        try:
            return save(_submitted(form), form.reason.data or "")
        except (InvalidInput, Conflict) as exc:
            if exc.keep_changes:
                db.keep_changes_on_error()
            errors, status = _errors(exc), exc.status
    elif request.method == "POST":
        errors, status = ([EXPIRED] if "csrf_token" in form.errors else []), 422
    return render_template(
        "protocols/edit.html", form=form, errors=errors, title=title, show_reason=show_reason
    ), status


@bp.route("/new", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def register() -> Any:
    # A new trial is the administrator's to register, an existing one's protocol is for who
    # manages it (the service decides which from the document): the form is for them only.
    if not (
        g.principal.grant_for(Permission.MANAGE_ACCOUNTS) or g.principal.grant_for(Permission.MANAGE_PROTOCOL)
    ):
        raise Forbidden("only an administrator or who manages a trial's protocol may register one")

    def save(source: services.Source, _reason: str) -> Any:
        version = services.register(source, session=db.session, by=g.principal)
        code = services.document_of(version).trial.code
        flash(f"Registered {code} version 1 as a draft.", "success")
        if g.principal.grant_for(Permission.VIEW_TRIAL, trial_id=version.trial_id) is None:
            # An administrator registers a new trial's protocol but holds no role in it.
            flash("Grant a sponsor or statistician role in the trial to view, edit and lock it.", "info")
            return redirect(url_for("protocols.index"))
        return redirect(url_for("protocols.version", code=code, number=1))

    return _document_page("Register a protocol", save, show_reason=False)


@bp.get("/<code>")
@login_required
def latest(code: str) -> Any:
    version = services.get_version(code, None, session=db.session, by=g.principal)
    return redirect(url_for("protocols.version", code=code, number=version.version))


@bp.get("/<code>/versions/<int:number>")
@login_required
def version(code: str, number: int) -> Any:
    row = services.get_version(code, number, session=db.session, by=g.principal)
    versions = services.list_versions(code, session=db.session, by=g.principal)
    can_manage = g.principal.grant_for(Permission.MANAGE_PROTOCOL, trial_id=row.trial_id) is not None
    return render_template(
        "protocols/version.html",
        code=code,
        row=row,
        document=services.document_of(row),
        versions=versions,
        signature=services.signature_of(row, session=db.session),
        can_manage=can_manage,
        is_latest=versions[-1].version == row.version,
    )


@bp.route("/<code>/versions/<int:number>/edit", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def edit(code: str, number: int) -> Any:
    row = services.get_version(code, number, session=db.session, by=g.principal)
    _require_manage(row)
    if row.locked and request.method == "GET":
        raise Conflict(f"version {number} is locked and cannot be changed: amend it instead")

    def save(source: services.Source, reason: str) -> Any:
        services.update_draft(code, number, source, reason=reason, session=db.session, by=g.principal)
        flash(f"Saved draft version {number}.", "success")
        return redirect(url_for("protocols.version", code=code, number=number))

    return _document_page(f"Edit {code} draft version {number}", save, prefill=row.source_text)


@bp.route("/<code>/amend", methods=["GET", "POST"])
@login_required
@form_checks_csrf
def amend(code: str) -> Any:
    latest_row = services.get_version(code, None, session=db.session, by=g.principal)
    _require_manage(latest_row)

    def save(source: services.Source, reason: str) -> Any:
        row = services.amend(code, source, reason=reason, session=db.session, by=g.principal)
        flash(f"Created draft version {row.version}.", "success")
        return redirect(url_for("protocols.version", code=code, number=row.version))

    title = f"Amend {code} (new version after {latest_row.version})"
    return _document_page(title, save, prefill=latest_row.source_text)


@bp.route("/<code>/versions/<int:number>/lock", methods=["GET", "POST"])
@login_required
def lock(code: str, number: int) -> Any:
    row = services.get_version(code, number, session=db.session, by=g.principal)
    _require_manage(row)
    form = LockForm()
    if form.validate_on_submit():
        try:
            services.lock(
                code,
                number,
                password=form.password.data or "",
                session=db.session,
                by=g.principal,
                lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
            )
        except InvalidInput as exc:
            if exc.keep_changes:
                db.keep_changes_on_error()
            form.password.errors = [e.message for e in exc.errors] or [exc.detail]
        else:
            flash(f"Locked {code} version {number}.", "success")
            return redirect(url_for("protocols.version", code=code, number=number))
    status = 422 if request.method == "POST" else 200
    return render_template("protocols/lock.html", form=form, code=code, row=row), status


@bp.get("/<code>/diff")
@login_required
def diff(code: str) -> Any:
    versions = services.list_versions(code, session=db.session, by=g.principal)
    old = request.args.get("from", type=int) or max(1, versions[-1].version - 1 if versions else 1)
    new = request.args.get("to", type=int) or (versions[-1].version if versions else 1)
    changes = services.diff(code, old, new, session=db.session, by=g.principal)
    new_row = next((v for v in versions if v.version == new), None)
    return render_template(
        "protocols/diff.html",
        code=code,
        old=old,
        new=new,
        changes=changes,
        versions=versions,
        new_row=new_row,
    )
