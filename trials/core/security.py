"""Security headers on every response; NUL bytes and bodies over the size limit refused."""

import io
from collections.abc import Iterable
from typing import Any

from flask import Flask, Response, current_app, render_template, request
from werkzeug.exceptions import RequestEntityTooLarge

from trials.core.error_handlers import problem_response, wants_json
from trials.core.errors import InvalidInput, NotFound

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
            key = key or ""  # a multipart part without a name
            if "\x00" in key or "\x00" in value:
                raise InvalidInput.field(key, "control_character", f"{key}: must not contain a NUL byte")


class _CappedInput(io.RawIOBase):
    """A body sent without a Content-Length (chunked) that refuses to run past `limit` bytes.

    Werkzeug stops reading such a body at MAX_CONTENT_LENGTH but returns what it read as if it
    were the whole body: a longer upload would be silently cut. At the limit this reads one
    byte more, and if there is one the request is refused with 413.
    """

    def __init__(self, stream: Any, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.position = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(min(len(buffer), self.limit - self.position))
        count = len(data)
        buffer[:count] = data
        self.position += count
        if self.position >= self.limit and self.stream.read(1):
            raise RequestEntityTooLarge()
        return count


class _LimitStreamedBodies:
    """WSGI middleware putting `_CappedInput` around bodies that come without a length."""

    def __init__(self, wsgi_app: Any, app: Flask) -> None:
        self.wsgi_app = wsgi_app
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        limit = self.app.config.get("MAX_CONTENT_LENGTH")
        if limit is not None and not environ.get("CONTENT_LENGTH") and "wsgi.input_terminated" in environ:
            environ["wsgi.input"] = _CappedInput(environ["wsgi.input"], int(limit))
        result: Iterable[bytes] = self.wsgi_app(environ, start_response)
        return result


def _too_large(_error: RequestEntityTooLarge) -> Any:
    """413 naming the limit, before any of the body is read when its length is declared."""
    limit = int(current_app.config["MAX_CONTENT_LENGTH"])
    size = f"{limit / 1024 / 1024:g} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
    title = "Request Entity Too Large"
    detail = f"the request is larger than the limit of {size}: send a smaller file, or split it"
    if wants_json():
        return problem_response(413, title, detail)
    page = render_template("trials/error.html", status=413, title=title, detail=detail, errors=[])
    return page, 413


# The largest number a URL may carry (a protocol version's, a report's): the largest value of the
# databases' INTEGER columns.
MAX_PATH_NUMBER = 2**31 - 1


def _refuse_numbers_beyond_records(_endpoint: str | None, values: dict[str, Any] | None) -> None:
    # No record is numbered so high, and SQLite cannot even compare a number beyond 64 bits.
    # Checked once the route is matched (a bounded `int` converter would make werkzeug answer
    # 405 for the other methods of the same path), on the web and the API alike.
    for name, value in (values or {}).items():
        if isinstance(value, int) and value > MAX_PATH_NUMBER:
            raise NotFound(f"{name}: no record is numbered {value}")


def init_app(app: Flask) -> None:
    app.url_value_preprocessor(_refuse_numbers_beyond_records)
    app.wsgi_app = _LimitStreamedBodies(app.wsgi_app, app)  # type: ignore[method-assign]
    app.before_request(_refuse_nul_bytes)
    app.register_error_handler(RequestEntityTooLarge, _too_large)

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
