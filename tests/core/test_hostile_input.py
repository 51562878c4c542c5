"""Hostile and malformed input gets a clear 4xx naming the field, never a 500, and stores nothing."""

from typing import Any

import pytest
from sqlmodel import Session

from tests.conftest import csrf_token
from trials.core.accounts import services
from trials.core.accounts.models import TokenCreate


@pytest.fixture
def admin_headers(session: Session, make_user: Any) -> dict[str, str]:
    _user, admin = make_user("ada", "admin")
    _token, secret = services.create_token(TokenCreate(name="t", scope="write"), session=session, by=admin)
    session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_deeply_nested_json_bodies_are_refused(client: Any, admin_headers: dict[str, str]) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post(
        "/api/v1/sites", data=deep, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == "body"


@pytest.mark.parametrize(
    ("document", "rule"),
    [("a: " + "[" * 50_000 + "]" * 50_000, "too_deep"), ("schema_version: " + "9" * 5000, "syntax")],
    ids=["deep YAML", "5000-digit integer"],
)
def test_malformed_protocol_documents_are_refused(
    client: Any, admin_headers: dict[str, str], document: str, rule: str
) -> None:
    response = client.post("/api/v1/protocols/validate", json={"document": document}, headers=admin_headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["rule"] == rule


@pytest.mark.parametrize(
    "query",
    ["page=100000000000000000000", "page=1.0", "page=0", "nonsense=1", "username=a%E2%80%AEb"],
)
def test_audit_filters_out_of_range_are_refused(
    client: Any, admin_headers: dict[str, str], query: str
) -> None:
    assert client.get(f"/api/v1/audit?{query}", headers=admin_headers).status_code == 422


def test_the_last_possible_date_is_a_valid_filter(client: Any, admin_headers: dict[str, str]) -> None:
    assert client.get("/api/v1/audit?until=9999-12-31", headers=admin_headers).status_code == 200


@pytest.mark.parametrize("value", ["²", "1.5", "-1", "99999999999999999999"])
def test_version_numbers_must_be_plain_integers(
    client: Any, admin_headers: dict[str, str], value: str
) -> None:
    response = client.get(f"/api/v1/protocols/X/diff?from={value}&to=2", headers=admin_headers)
    assert response.status_code == 422


def test_nul_bytes_are_refused_everywhere(
    client: Any, session: Session, admin_headers: dict[str, str]
) -> None:
    assert client.get("/api/v1/protocols/a%00b/versions", headers=admin_headers).status_code == 422
    assert client.get("/api/v1/audit?username=a%00b", headers=admin_headers).status_code == 422
    body = '{"code": "NUL", "name": "a\\u0000b", "country": "GB"}'
    response = client.post(
        "/api/v1/sites", data=body, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 422
    page = client.get("/sign-in").get_data(as_text=True)
    form = {"username": "a\x00b", "password": "x", "csrf_token": csrf_token(page)}
    assert client.post("/sign-in", data=form).status_code == 422


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("Ada\u202e nimdA", "printed_name"),
        ("Ada\tAdmin", "printed_name"),
        ("   ", "printed_name"),
        ("Ada\x00", "body"),
    ],  # a NUL is refused before the body is read
)
def test_printed_names_carry_no_control_or_format_characters(
    client: Any, admin_headers: dict[str, str], name: str, field: str
) -> None:
    body = {"username": "eve", "printed_name": name, "password": "a long enough password"}
    response = client.post("/api/v1/users", json=body, headers=admin_headers)
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == field
