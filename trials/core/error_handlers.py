"""Domain and HTTP errors translated once: problem+json for the API, an HTML page for the web.

A database that cannot be reached (PostgreSQL stopped or restarting, a connection cut, a SQLite
file locked past the busy timeout or unreadable) is a 503 with Retry-After, not a 500: the
request's transaction was rolled back, nothing of it was stored, and the same request can be
sent again once the database is back. The engine reconnects by itself (`make_engine`).
"""

import logging
import sqlite3
from dataclasses import asdict
from typing import Any

from flask import Flask, Response, current_app, jsonify, render_template, request
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from werkzeug.exceptions import HTTPException

from trials.core.db import db
from trials.core.errors import DomainError, FieldError

log = logging.getLogger(__name__)

UNAVAILABLE_TITLE = "Service unavailable"
UNAVAILABLE_DETAIL = "The database is unavailable; try again in a moment."
RETRY_AFTER_SECONDS = 5
# SQLite's operational errors that say the file cannot be used now, as opposed to those of a
# wrong statement or schema ("no such table"), which stay 500s.
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk i/o error")


def database_unavailable(error: BaseException | None) -> bool:
    """Whether `error` says the database cannot be reached now (a 503), rather than a fault of
    the request or of the code: a connection refused, cut or invalidated, a server shutting
    down or starting up (psycopg's OperationalError and its subclasses, e.g. AdminShutdown and
    CannotConnectNow), a SQLite file locked or unreadable. An error raised while such an error
    was being handled (clean-up code touching the lost connection raises SQLAlchemy's
    PendingRollbackError) counts as the error that caused it."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if _unavailable_itself(error):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def _unavailable_itself(error: BaseException) -> bool:
    if isinstance(error, DisconnectionError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    if not isinstance(error, OperationalError):
        return False
    if isinstance(error.orig, sqlite3.OperationalError):
        message = str(error.orig).lower()
        return any(message.startswith(text) for text in _SQLITE_UNAVAILABLE)
    return True


def wants_json() -> bool:
    """API paths always get JSON; elsewhere the Accept header decides."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def problem_response(
    status: int, title: str, detail: str, errors: list[FieldError] | None = None
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [asdict(e) for e in errors]
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="trials"'
    if status == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _render(status: int, title: str, detail: str, errors: list[FieldError] | None = None) -> Any:
    if wants_json():
        return problem_response(status, title, detail, errors)
    html = render_template(
        "trials/error.html", status=status, title=title, detail=detail, errors=errors or []
    )
    return html, status


def _unavailable(error: BaseException) -> Any:
    # The request's transaction is rolled back when the response is finished.
    cause = getattr(error, "orig", None) or error  # the driver's message, without statement or values
    log.warning("database unavailable on %s %s: %s", request.method, request.path, cause)
    if wants_json():
        return problem_response(503, UNAVAILABLE_TITLE, UNAVAILABLE_DETAIL)
    # Rendered by the Jinja environment alone: Flask's template context processors include
    # Flask-Login's, which loads the signed-in user from the database. The page needs only the
    # environment's globals (url_for, g, csrf_token).
    html = current_app.jinja_env.get_template("trials/error.html").render(
        status=503, title=UNAVAILABLE_TITLE, detail=UNAVAILABLE_DETAIL, errors=[]
    )
    return html, 503, {"Retry-After": str(RETRY_AFTER_SECONDS)}


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Any:
        if error.keep_changes:
            db.keep_changes_on_error()
        return _render(error.status, error.title, error.detail, error.errors)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        # An error outside the view (the commit in an after-request function) reaches Flask's
        # 500 handling wrapped in an InternalServerError.
        if database_unavailable(getattr(error, "original_exception", None)):
            return _unavailable(error.original_exception)  # type: ignore[attr-defined]
        status = error.code or 500
        return _render(status, error.name, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        if database_unavailable(error):
            return _unavailable(error)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _render(500, "Internal server error", "The server could not complete the request.")
