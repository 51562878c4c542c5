"""Hostile and malformed input gets a clear 4xx naming the field, never a 500, and stores nothing."""

from typing import Any

import pytest
from sqlmodel import Session, select

from tests.conftest import csrf_token, sign_in
from trials.core.accounts import services
from trials.core.accounts.models import RoleGrant, TokenCreate


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


def _grant_of(session: Session, user: Any) -> RoleGrant:
    return session.exec(select(RoleGrant).where(RoleGrant.user_id == user.id)).one()


@pytest.mark.parametrize("reason", ["moved\x11to Paris", "moved to \u202eParis"])
def test_reasons_holding_hidden_characters_are_refused(
    client: Any,
    session: Session,
    admin_headers: dict[str, str],
    make_trial: Any,
    make_site: Any,
    make_user: Any,
    reason: str,
) -> None:
    # Every reason for a change passes through the audit trail's `reason`, which refuses them.
    make_trial()
    make_site()
    user, _principal = make_user("ann", "coordinator:MOOD-CBT:LON")
    session.commit()
    grant = _grant_of(session, user)
    response = client.post(
        f"/api/v1/grants/{grant.id}/revoke", json={"reason": reason}, headers=admin_headers
    )
    assert response.status_code == 422, response.get_data(as_text=True)
    errors = response.get_json()["errors"]
    assert [(e["field"], e["rule"]) for e in errors] == [("reason", "pattern")]
    session.expire_all()
    assert session.get(RoleGrant, grant.id) is not None


def test_a_reason_may_run_over_several_lines(
    client: Any,
    session: Session,
    admin_headers: dict[str, str],
    make_trial: Any,
    make_site: Any,
    make_user: Any,
) -> None:
    make_trial()
    make_site()
    user, _principal = make_user("ann", "coordinator:MOOD-CBT:LON")
    session.commit()
    grant = _grant_of(session, user)
    response = client.post(
        f"/api/v1/grants/{grant.id}/revoke",
        json={"reason": "moved to Paris;\r\n\tleft the study"},
        headers=admin_headers,
    )
    assert response.status_code == 204, response.get_data(as_text=True)


@pytest.mark.parametrize("number", [2**31, 2**63, 10**30])
def test_a_number_beyond_any_record_in_a_web_address_is_not_found(
    client: Any, session: Session, make_trial: Any, make_user: Any, number: int
) -> None:
    # SQLite cannot compare a number beyond 64 bits; no route takes one beyond INTEGER's range.
    make_trial()
    make_user("sam", "sponsor:MOOD-CBT")
    session.commit()
    sign_in(client, "sam")
    for path in (f"/trials/MOOD-CBT/reports/{number}", f"/protocols/MOOD-CBT/versions/{number}"):
        response = client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert response.mimetype == "text/html"
    assert client.get("/trials/MOOD-CBT/reports/2147483647").status_code == 404
