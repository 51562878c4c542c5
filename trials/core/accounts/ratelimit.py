"""Rate limits per client address on the routes that take a secret: sign-in, password re-entry
for a signature, and the participant's self-report link.

The account lockout (six wrong passwords in a row lock an account) stops guessing one account's
password; these limits stop guessing across accounts (password spraying, unknown usernames) and
guessing self-report links. A refused request never reaches the password check, so it counts as
no failed sign-in. Each breach is audited at most once per window and client address, so that a
flood of refused requests cannot flood the audit trail.

Counters live in the storage named by `RATELIMIT_STORAGE_URL`: `memory://` counts in one
process; several processes (gunicorn workers, several hosts) must share Redis.
"""

import math
import time
from typing import Any

from flask import Flask, Response, current_app, render_template, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from werkzeug.middleware.proxy_fix import ProxyFix

from trials.core.audit import services as audit
from trials.core.db import db
from trials.core.error_handlers import problem_response, wants_json

# Endpoints limited by SIGN_IN_RATE_LIMIT (POST only): they check a password.
PASSWORD_ENDPOINTS = (
    "accounts.sign_in",
    "protocols.lock",
    "protocols_api.lock",
    "reports.sign",
    "reports_api.sign",
)
# Endpoints limited by EPRO_RATE_LIMIT (every method): the link's token is the credential.
LINK_ENDPOINTS = ("epro.questionnaire",)
SIGN_IN_EVENT = "sign_in_rate_limited"
OTHER_EVENT = "rate_limited"


def client_address() -> str:
    """The client's address; `TRUSTED_PROXIES` decides whether X-Forwarded-For is believed."""
    return request.remote_addr or "unknown"


def storage_url(config: Any) -> str:
    """`RATELIMIT_STORAGE_URL`, else the Redis of report jobs when one is set, else memory."""
    return str(config.get("RATELIMIT_STORAGE_URL") or config.get("REDIS_URL") or "memory://")


def _seconds_until(reset_at: float) -> int:
    return max(1, math.ceil(reset_at - time.time()))


def _audit_once_per_window(breach: RequestLimit) -> None:
    """Record the breach in the audit trail, the first time in the window for this client."""
    limiter: Limiter = current_app.extensions["trials_limiter"]
    limit = breach.limit
    once = type(limit)(1, limit.multiples, namespace="AUDIT")
    if not limiter.limiter.hit(once, request.endpoint or "", client_address()):
        return
    endpoint = request.endpoint or ""
    action = SIGN_IN_EVENT if endpoint == "accounts.sign_in" else OTHER_EVENT
    channel = "api" if request.path.startswith("/api/") else "web"
    actor = audit.Actor(None, f"address:{client_address()}"[:64], "", None, channel)
    audit.record_event(
        db.session,
        action,
        detail=f"more than {limit} from {client_address()} on {request.method} {request.path}"[:500],
        actor=actor,
    )
    db.keep_changes_on_error()


def _breach_response(breach: RequestLimit) -> Response:
    retry_after = _seconds_until(breach.reset_at)
    detail = f"too many attempts from your address: try again in {retry_after} seconds"
    if request.endpoint == "accounts.sign_in" and not wants_json():
        from trials.core.accounts.forms import SignInForm

        form = SignInForm(formdata=None)
        page = render_template("accounts/sign_in.html", form=form, refused=detail)
        response = Response(page, status=429, mimetype="text/html")
    elif wants_json():
        response = problem_response(429, "Too many requests", detail)
    else:
        page = render_template(
            "trials/error.html", status=429, title="Too many requests", detail=detail, errors=[]
        )
        response = Response(page, status=429, mimetype="text/html")
    response.headers["Retry-After"] = str(retry_after)
    return response


def _on_breach(breach: RequestLimit) -> Response:
    _audit_once_per_window(breach)
    return _breach_response(breach)


def init_app(app: Flask) -> Limiter:
    """Attach the limiter to `app` and limit the endpoints above; call after the blueprints."""
    trusted = int(app.config["TRUSTED_PROXIES"])
    if trusted:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=trusted)  # type: ignore[method-assign]
    enabled = app.config["RATELIMIT_ENABLED"]  # a bool once validate_config has run
    limiter = Limiter(
        key_func=client_address,
        storage_uri=storage_url(app.config),
        strategy="fixed-window",
        key_prefix="trials",
        enabled=bool(enabled),
        on_breach=_on_breach,
        # Redis out of reach: count in this process rather than refuse every sign-in.
        in_memory_fallback_enabled=True,
    )
    limiter.init_app(app)
    app.extensions["trials_limiter"] = limiter

    def sign_in_limit() -> str:
        return str(current_app.config["SIGN_IN_RATE_LIMIT"])

    def link_limit() -> str:
        return str(current_app.config["EPRO_RATE_LIMIT"])

    views: dict[str, Any] = app.view_functions
    for endpoint in PASSWORD_ENDPOINTS:
        views[endpoint] = limiter.limit(sign_in_limit, methods=["POST"])(views[endpoint])
    for endpoint in LINK_ENDPOINTS:
        views[endpoint] = limiter.limit(link_limit)(views[endpoint])

    @app.errorhandler(RateLimitExceeded)
    def _too_many(error: RateLimitExceeded) -> Any:
        return error.get_response()

    return limiter
