"""Domain and HTTP errors translated once: problem+json for the API, an HTML page for the web."""

import logging
from dataclasses import asdict
from typing import Any

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from trials.core.db import db
from trials.core.errors import DomainError, FieldError

log = logging.getLogger(__name__)


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
    return response


def _render(status: int, title: str, detail: str, errors: list[FieldError] | None = None) -> Any:
    if wants_json():
        return problem_response(status, title, detail, errors)
    html = render_template(
        "trials/error.html", status=status, title=title, detail=detail, errors=errors or []
    )
    return html, status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain_error(error: DomainError) -> Any:
        if error.keep_changes:
            db.keep_changes_on_error()
        return _render(error.status, error.title, error.detail, error.errors)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Any:
        status = error.code or 500
        return _render(status, error.name, error.description or error.name)

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _render(500, "Internal server error", "The server could not complete the request.")
