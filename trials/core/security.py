"""Security headers on every response."""

from flask import Flask, Response, request

from trials.core.errors import InvalidInput

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _refuse_nul_bytes() -> None:
    """No text we store may hold a NUL byte (PostgreSQL refuses it): refuse it at the door."""
    if "\x00" in request.path:
        raise InvalidInput.field("path", "control_character", "path: must not contain a NUL byte")
    for source in (request.args, request.form):
        for key, value in source.items(multi=True):
            if "\x00" in key or "\x00" in value:
                raise InvalidInput.field(key, "control_character", f"{key}: must not contain a NUL byte")


def init_app(app: Flask) -> None:
    app.before_request(_refuse_nul_bytes)

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if app.config["SESSION_COOKIE_SECURE"]:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if response.mimetype == "text/html":
            headers.setdefault("Cache-Control", "no-store")
        return response
