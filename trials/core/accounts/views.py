"""Web pages for signing in and out, the home page, the account page and account administration."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import login_user, logout_user
from sqlmodel import Session

from trials.core.accounts import services
from trials.core.accounts.auth import current_principal, login_required, permission_required
from trials.core.accounts.forms import EmptyForm, SignInForm, TokenForm
from trials.core.accounts.models import TokenCreate, Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.db import db
from trials.core.errors import DomainError, Unauthorized

bp = Blueprint("accounts", __name__, template_folder="templates")


@dataclass(frozen=True)
class Task:
    """A line of the home page's "needs your attention" list, contributed by a package above
    this one for a trial: what, how many, where to act, and whether it is urgent."""

    text: str
    count: int
    url: str
    urgent: bool = False


class TaskProvider(Protocol):
    def __call__(self, trial: Trial, *, session: Session, by: Principal) -> list[Task]: ...


def set_task_provider(app: Flask, provider: TaskProvider) -> None:
    """What the home page lists under each trial for the signed-in person (by their roles)."""
    app.extensions["home_tasks"] = provider


def _safe_next(target: str | None) -> str:
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return url_for("accounts.home")


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Any:
    if current_principal() is not None:
        return redirect(url_for("accounts.home"))
    form = SignInForm()
    status = 200
    if form.validate_on_submit():
        try:
            principal = services.sign_in(
                form.username.data or "",
                form.password.data or "",
                session=db.session,
                lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
                channel="web",
            )
        except DomainError as exc:
            if exc.keep_changes:  # the failed attempt and any lock it caused stay on record
                db.keep_changes_on_error()
            form.password.errors = [exc.detail]
            status = exc.status
        else:
            session.clear()
            session.permanent = True
            login_user(principal)
            session["last_seen"] = datetime.now(UTC).timestamp()
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        status = 422
    return render_template("accounts/sign_in.html", form=form), status


@bp.post("/sign-out")
@login_required
def sign_out() -> Any:
    if not EmptyForm().validate_on_submit():
        raise Unauthorized("the sign-out form has expired")
    principal = current_principal()
    assert principal is not None
    services.sign_out(principal, session=db.session)
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("accounts.sign_in"))


@bp.get("/")
@login_required
def home() -> Any:
    principal = current_principal()
    assert principal is not None
    trials = services.list_trials(session=db.session, by=principal)
    sites = {s.id: s for s in services.list_sites(session=db.session)}
    trial_by_id = {t.id: t for t in trials}
    grants = [
        {
            "role": grant.role.value.replace("_", " "),
            "trial": trial_by_id[grant.trial_id].code if grant.trial_id in trial_by_id else None,
            "site": sites[grant.site_id].code if grant.site_id in sites else None,
        }
        for grant in principal.grants
    ]
    provider: TaskProvider | None = current_app.extensions.get("home_tasks")
    tasks = {t.id: provider(t, session=db.session, by=principal) if provider else [] for t in trials}
    return render_template("accounts/home.html", trials=trials, grants=grants, tasks=tasks)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> Any:
    principal = current_principal()
    assert principal is not None
    form = TokenForm()
    new_secret = None
    status = 200
    if form.validate_on_submit():
        data = TokenCreate(
            name=form.name.data or "",
            scope=form.scope.data or "read",
            expires_in_days=form.expires_in_days.data or 90,
        )
        _token, new_secret = services.create_token(data, session=db.session, by=principal)
        form = TokenForm(formdata=None)
    elif request.method == "POST":
        status = 422
    tokens = services.list_tokens(session=db.session, by=principal)
    return render_template(
        "accounts/account.html",
        form=form,
        tokens=tokens,
        new_secret=new_secret,
        revoke_form=EmptyForm(),
        now=datetime.now(UTC),
    ), status


@bp.post("/account/tokens/<uuid:token_id>/revoke")
@login_required
def revoke_token(token_id: uuid.UUID) -> Any:
    principal = current_principal()
    assert principal is not None
    if not EmptyForm().validate_on_submit():
        raise Unauthorized("the form has expired: reload the page")
    token = services.revoke_token(token_id, session=db.session, by=principal)
    flash(f"Token “{token.name}” revoked.", "success")
    return redirect(url_for("accounts.account"))


@bp.get("/admin/users")
@permission_required(Permission.MANAGE_ACCOUNTS)
def users() -> Any:
    rows = services.list_users(session=db.session, by=g.principal)
    return render_template("accounts/users.html", users=rows)


@bp.get("/admin/sites")
@permission_required(Permission.MANAGE_ACCOUNTS)
def sites() -> Any:
    return render_template("accounts/sites.html", sites=services.list_sites(session=db.session))
