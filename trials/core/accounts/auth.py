"""Request authentication: web sessions (Flask-Login, CSRF, idle timeout) and API tokens.

The API accepts only bearer tokens, never the session cookie, so it needs no CSRF token; the web
accepts only the session cookie. Either way the principal is put on `g.principal` and the audit
actor on the request's database session.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import Flask, current_app, flash, g, redirect, request, session, url_for
from flask_login import LoginManager, current_user, logout_user
from flask_wtf.csrf import CSRFProtect

from trials.core.accounts import services
from trials.core.accounts.permissions import Permission, Principal
from trials.core.api import API_PREFIX
from trials.core.audit import services as audit
from trials.core.db import db
from trials.core.errors import Forbidden, Unauthorized

login_manager = LoginManager()
login_manager.login_view = "accounts.sign_in"
login_manager.login_message = "Please sign in to continue."
login_manager.session_protection = "strong"
csrf = CSRFProtect()


@login_manager.user_loader  # type: ignore[untyped-decorator]
def _load_user(value: str) -> Principal | None:
    return services.principal_from_session_id(value, session=db.session)


def current_principal() -> Principal | None:
    principal: Principal | None = g.get("principal")
    return principal


def _authenticate_api() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    principal = None
    if scheme.lower() == "bearer" and raw.strip():
        principal = services.authenticate_token(raw.strip(), session=db.session)
    if principal is None:
        view = current_app.view_functions.get(request.endpoint or "")
        if getattr(view, "_openapi", {}).get("public"):
            return
        raise Unauthorized("a valid API token is required: Authorization: Bearer <token>")
    g.principal = principal
    audit.set_actor(db.session, services.actor_for(principal, "api"))


def _authenticate_web() -> Any:
    if not current_user.is_authenticated:
        return None
    idle = current_app.config["SESSION_IDLE_MINUTES"]
    now = datetime.now(UTC).timestamp()
    last_seen = session.get("last_seen", now)
    principal: Principal = current_user._get_current_object()
    audit.set_actor(db.session, services.actor_for(principal, "web"))
    if now - last_seen > idle * 60:
        services.sign_out(principal, session=db.session, detail=f"idle for more than {idle} minutes")
        logout_user()
        session.clear()
        flash(f"You were signed out after {idle} minutes without activity.", "info")
        return redirect(url_for("accounts.sign_in", next=request.full_path))
    session["last_seen"] = now
    g.principal = principal
    return None


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    # CSRF is checked in `_authenticate` for web requests only: the API takes bearer tokens,
    # never the session cookie, so a CSRF token would refuse every API write.
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False
    csrf.init_app(app)

    @app.before_request
    def _authenticate() -> Any:
        if request.path.startswith(API_PREFIX + "/") or request.path == API_PREFIX:
            _authenticate_api()
            return None
        if request.endpoint == "static":
            return None
        if app.config["WTF_CSRF_ENABLED"]:
            csrf.protect(apply_exemptions=True)
        return _authenticate_web()


def form_checks_csrf(view: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a web view whose every POST goes through its form's validation, which checks the
    same CSRF token (Flask-WTF's FlaskForm): the request-wide check leaves the token to the form.
    An expired token then shows the form again with what was typed and a message that it expired,
    instead of the generic 400 page that loses a coordinator's entries. Nothing is stored either
    way."""
    marked: Callable[..., Any] = csrf.exempt(view)
    return marked


def require_principal() -> Principal:
    """The signed-in principal; anonymous web requests are sent to sign in, API ones get 401."""
    principal = current_principal()
    if principal is None:
        raise Unauthorized("sign-in required")
    return principal


def permission_required(
    permission: Permission,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a web view: anonymous users go to sign-in, others need `permission` somewhere."""

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                return login_manager.unauthorized()
            if principal.grant_for(permission) is None:
                raise Forbidden(f"your account is not allowed to {permission.value.replace('_', ' ')}")
            return view(*args, **kwargs)

        return wrapper

    return decorator


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_principal() is None:
            return login_manager.unauthorized()
        return view(*args, **kwargs)

    return wrapper
