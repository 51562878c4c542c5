"""Oversized request bodies are refused with 413 before they are read, and nothing is stored."""

import io
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session

from tests.conftest import EXAMPLE_TRIAL, app_config, bearer, csrf_token, set_up_example_trial, sign_in
from trials import create_app
from trials.core.audit.models import AuditEntry

MIB = 1024 * 1024


class Body(io.RawIOBase):
    """A request body of `size` bytes that counts what the application reads of it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.size - self.read_bytes)
        buffer[:count] = b"a" * count
        self.read_bytes += count
        return count


@pytest.fixture
def app(database_url: str, connection: Connection) -> Iterator[Any]:
    """The app with a 1 MiB request limit, set as an administrator would (MAX_UPLOAD_MB)."""
    app = create_app(app_config(database_url, MAX_UPLOAD_MB=1))
    app.extensions["trials_db"].session_factory = sessionmaker(
        bind=connection, class_=Session, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    yield app
    app.extensions["trials_db"].engine.dispose()


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> Any:
    staff = {"sponsor": "sam:sponsor:TRIAL", "lds": "cora:coordinator:TRIAL:LDS", "admin": "ada:admin"}
    return set_up_example_trial(session, make_site, make_user, staff, live_seed=b"\x07" * 32)


def audit_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def routes(client: Any, session: Session, people: Any) -> list[tuple[str, str, dict[str, str]]]:
    """(path, content type, headers) of every kind of route that takes a body."""
    sign_in(client, "cora")
    form_token = csrf_token(client.get(f"/trials/{EXAMPLE_TRIAL}/import").get_data(as_text=True))
    lds = bearer(session, people["lds"])
    admin = bearer(session, people["admin"])
    boundary = "multipart/form-data; boundary=x"
    return [
        (f"/trials/{EXAMPLE_TRIAL}/import", boundary, {"X-CSRFToken": form_token}),
        (f"/api/v1/trials/{EXAMPLE_TRIAL}/imports/assessments", "text/csv", lds),
        ("/api/v1/sites", "application/json", admin),
        ("/epro/no-such-link", "application/x-www-form-urlencoded", {}),
    ]


def test_the_limit_is_the_setting(app: Any) -> None:
    assert app.config["MAX_CONTENT_LENGTH"] == 1 * MIB


def test_a_declared_length_over_the_limit_is_refused_unread(
    client: Any, session: Session, people: Any
) -> None:
    targets = routes(client, session, people)
    before = audit_count(session)
    for path, content_type, headers in targets:
        body = Body(2 * MIB)
        response = client.post(
            path,
            headers={**headers, "Content-Type": content_type},
            environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(2 * MIB)},
        )
        assert response.status_code == 413, path
        assert body.read_bytes == 0, path
        if path.startswith("/api/"):
            assert response.mimetype == "application/problem+json"
            problem = response.get_json()
            assert problem["status"] == 413
            assert "larger than the limit of 1 MiB" in problem["detail"]
        else:
            assert response.mimetype == "text/html"
            assert "larger than the limit of 1 MiB" in response.get_data(as_text=True)
    assert audit_count(session) == before  # nothing stored


def test_the_anonymous_sign_in_form_is_refused_unread(client: Any) -> None:
    body = Body(2 * MIB)
    response = client.post(
        "/sign-in",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(2 * MIB)},
    )
    assert response.status_code == 413
    assert body.read_bytes == 0


def test_a_body_without_a_length_is_cut_at_the_limit(client: Any, session: Session, people: Any) -> None:
    targets = routes(client, session, people)
    before = audit_count(session)
    for path, content_type, headers in targets:
        body = Body(8 * MIB)
        response = client.post(
            path,
            headers={**headers, "Content-Type": content_type, "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input": body, "wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
        )
        assert response.status_code == 413, path
        assert body.read_bytes <= 1 * MIB + 64 * 1024, path  # the limit and one buffer at most
    assert audit_count(session) == before


def test_a_body_just_under_the_limit_is_read(client: Any, session: Session, people: Any) -> None:
    headers = bearer(session, people["lds"])
    content = b"participant\r\n" + b"x" * (MIB - 100)
    response = client.post(
        f"/api/v1/trials/{EXAMPLE_TRIAL}/imports/assessments",
        data=content,
        headers={**headers, "Content-Type": "text/csv"},
    )
    assert response.status_code == 422  # read and refused for its content, not its size
