"""The JSON API: its OpenAPI document, validation errors, conflicts and audit of API writes."""

import re
from typing import Any

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator, validate
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlmodel import Session

from trials.core.accounts import services
from trials.core.accounts.models import ApiToken, Site, TokenCreate, User
from trials.core.accounts.permissions import Principal
from trials.core.audit.models import AuditEntry

NEW_USER = {"username": "bob", "printed_name": "Bob Builder", "password": "a long passphrase"}


def token_for(session: Session, principal: Principal, scope: str = "write") -> dict[str, str]:
    _token, secret = services.create_token(
        TokenCreate(name=f"{scope} token", scope=scope), session=session, by=principal
    )
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def admin(make_site: Any, make_trial: Any, make_user: Any) -> tuple[User, Principal]:
    make_site()
    make_trial()
    result: tuple[User, Principal] = make_user("adam", "admin", name="Adam Admin")
    return result


@pytest.fixture
def headers(session: Session, admin: tuple[User, Principal]) -> dict[str, str]:
    """A write token of the admin."""
    return token_for(session, admin[1])


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


def field_errors(body: dict[str, Any]) -> dict[str, str]:
    """{field: rule}, after checking that every error names field, rule and message."""
    assert body["errors"]
    for error in body["errors"]:
        assert set(error) == {"field", "rule", "message"}
        assert all(isinstance(v, str) and v for v in error.values())
    return {e["field"]: e["rule"] for e in body["errors"]}


def counts(session: Session) -> tuple[int | None, ...]:
    session.expire_all()
    return tuple(session.scalar(select(func.count()).select_from(m)) for m in (User, Site, AuditEntry))


# -- the OpenAPI document ---------------------------------------------------------------------------


def test_openapi_document_is_public_and_valid_openapi_3_1(client: Any) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    validate(document, cls=OpenAPIV31SpecValidator)


def test_every_api_route_is_in_the_document(app: Any, client: Any) -> None:
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    routes = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")]
    assert len(routes) > 5
    documented = set()
    for rule in routes:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        assert path in paths, f"{rule.rule} is not documented"
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert method.lower() in paths[path], f"{method} {rule.rule} is not documented"
            documented.add((path, method.lower()))
    # ... and nothing that does not exist is documented.
    assert documented == {(path, method) for path, ops in paths.items() for method in ops}


def test_document_describes_bodies_errors_and_security(client: Any) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    create_site = document["paths"]["/api/v1/sites"]["post"]
    assert set(create_site["responses"]) == {"201", "401", "403", "409", "422"}
    schema_ref = create_site["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    site_schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert set(site_schema["required"]) == {"code", "name", "country"}
    problem_schema = create_site["responses"]["422"]["content"]["application/problem+json"]["schema"]
    assert problem_schema == {"$ref": "#/components/schemas/Problem"}
    assert document["components"]["securitySchemes"]["bearerToken"]["scheme"] == "bearer"
    assert document["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    operation_ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))


# -- validation ------------------------------------------------------------------------------------------


def test_invalid_site_is_422_with_field_errors(
    client: Any, session: Session, headers: dict[str, str]
) -> None:
    before = counts(session)
    body = problem(
        client.post("/api/v1/sites", json={"code": "lon", "name": "London", "country": 5}, headers=headers),
        422,
    )
    errors = field_errors(body)
    assert errors == {"code": "string_pattern_mismatch", "country": "string_type"}
    assert counts(session) == before


def test_missing_and_unknown_fields_are_named(client: Any, headers: dict[str, str]) -> None:
    body = problem(client.post("/api/v1/sites", json={"code": "PAR", "colour": "red"}, headers=headers), 422)
    assert field_errors(body) == {
        "name": "missing",
        "country": "missing",
        "colour": "extra_forbidden",
    }


@pytest.mark.parametrize(
    ("value", "rule"),
    [(5, "string_type"), (True, "string_type"), (None, "string_type"), (["FR"], "string_type")],
)
def test_values_of_the_wrong_type_are_not_coerced(
    client: Any, session: Session, headers: dict[str, str], value: Any, rule: str
) -> None:
    body = problem(
        client.post(
            "/api/v1/sites", json={"code": "PAR", "name": "Paris", "country": value}, headers=headers
        ),
        422,
    )
    assert field_errors(body) == {"country": rule}
    assert session.scalar(select(Site.id).where(Site.code == "PAR")) is None


def test_strings_are_not_coerced_to_integers() -> None:
    """The API models are strict: "30" is not an integer (no API body has one yet: the token model)."""
    with pytest.raises(ValidationError) as info:
        TokenCreate.model_validate({"name": "laptop", "expires_in_days": "30"})
    assert [e["type"] for e in info.value.errors()] == ["int_type"]
    assert TokenCreate.model_validate({"name": "laptop", "expires_in_days": 30}).expires_in_days == 30


def test_short_password_is_422(client: Any, session: Session, headers: dict[str, str]) -> None:
    before = counts(session)
    body = problem(client.post("/api/v1/users", json={**NEW_USER, "password": "short"}, headers=headers), 422)
    assert field_errors(body) == {"password": "string_too_short"}
    assert counts(session) == before


def test_password_containing_the_username_is_422(
    client: Any, session: Session, headers: dict[str, str]
) -> None:
    before = counts(session)
    body = problem(
        client.post("/api/v1/users", json={**NEW_USER, "password": "bob-is-my-password"}, headers=headers),
        422,
    )
    assert field_errors(body) == {"password": "contains_username"}
    assert counts(session) == before


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("code=PAR&name=Paris", "application/x-www-form-urlencoded"),
        ('{"code": "PAR",', "application/json"),  # broken JSON
        ('["PAR", "Paris", "FR"]', "application/json"),  # JSON, not an object
        ('{"code": "PAR", "name": "Paris", "country": "FR"}', "text/plain"),
        ("", "application/json"),
    ],
)
def test_body_that_is_not_a_json_object_is_422(
    client: Any, session: Session, headers: dict[str, str], data: str, content_type: str
) -> None:
    before = counts(session)
    body = problem(client.post("/api/v1/sites", data=data, content_type=content_type, headers=headers), 422)
    assert field_errors(body) == {"body": "json_object"}
    assert counts(session) == before


def test_grant_with_unknown_trial_names_the_field(
    client: Any, session: Session, headers: dict[str, str], make_user: Any
) -> None:
    make_user("ann")
    body = problem(
        client.post(
            "/api/v1/users/ann/grants",
            json={"role": "coordinator", "trial_code": "NOPE", "site_code": "LON"},
            headers=headers,
        ),
        422,
    )
    assert field_errors(body) == {"trial_code": "exists"}
    body = problem(client.post("/api/v1/users/ann/grants", json={"role": "wizard"}, headers=headers), 422)
    assert field_errors(body) == {"role": "enum"}


def test_a_422_stores_nothing(client: Any, session: Session, headers: dict[str, str]) -> None:
    """Even the token's last use, written before the body is checked, is rolled back."""
    before = counts(session)
    response = client.post("/api/v1/users", json={**NEW_USER, "username": "X"}, headers=headers)
    problem(response, 422)
    assert counts(session) == before
    assert session.scalar(select(ApiToken.last_used_at)) is None
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    session.expire_all()
    assert session.scalar(select(ApiToken.last_used_at)) is not None


# -- conflicts and unknown routes ------------------------------------------------------------------------


def test_duplicate_site_code_is_409(client: Any, session: Session, headers: dict[str, str]) -> None:
    before = counts(session)
    body = problem(
        client.post(
            "/api/v1/sites", json={"code": "LON", "name": "Another London", "country": "GB"}, headers=headers
        ),
        409,
    )
    assert field_errors(body) == {"code": "unique"}
    assert counts(session) == before


def test_duplicate_username_is_409(client: Any, headers: dict[str, str]) -> None:
    assert client.post("/api/v1/users", json=NEW_USER, headers=headers).status_code == 201
    body = problem(client.post("/api/v1/users", json={**NEW_USER, "username": "bob"}, headers=headers), 409)
    assert field_errors(body) == {"username": "unique"}


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/nothing-here", 404),
        ("GET", "/api/v1/users/nobody", 404),
        ("POST", "/api/v1/grants/not-a-uuid/revoke", 404),
        ("GET", "/api/v2/users", 404),
        ("DELETE", "/api/v1/sites", 405),
    ],
)
def test_unknown_routes_are_problem_json(
    client: Any, headers: dict[str, str], method: str, path: str, status: int
) -> None:
    problem(client.open(path, method=method, headers=headers), status)


# -- audit of API writes -----------------------------------------------------------------------------------


def test_user_created_through_the_api_is_audited_as_the_admin(
    client: Any, session: Session, admin: tuple[User, Principal], headers: dict[str, str]
) -> None:
    response = client.post("/api/v1/users", json={**NEW_USER, "email": "bob@example.org"}, headers=headers)
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert (created["username"], created["is_active"], created["locked"]) == ("bob", True, False)
    assert "password" not in created
    assert "password_hash" not in created

    session.expire_all()
    user = session.scalars(select(User).where(User.username == "bob")).one()
    assert str(user.id) == created["id"]
    rows = session.scalars(select(AuditEntry).where(AuditEntry.record_id == str(user.id))).all()
    assert {e.field for e in rows} >= {
        "username",
        "printed_name",
        "email",
        "password_hash",
        "is_active",
    }
    for entry in rows:
        assert (entry.action, entry.table_name) == ("insert", "user_account")
        assert (entry.user_id, entry.username, entry.printed_name) == (
            admin[0].id,
            "adam",
            "Adam Admin",
        )
        assert (entry.channel, entry.role) == ("api", "admin")
        assert NEW_USER["password"] not in (entry.new_value or "")
    by_field = {e.field: e.new_value for e in rows}
    assert by_field["username"] == '"bob"'
    assert by_field["password_hash"] == '"[redacted]"'


def test_granting_a_role_through_the_api_is_audited(
    client: Any, session: Session, headers: dict[str, str], make_user: Any
) -> None:
    make_user("ann")
    response = client.post(
        "/api/v1/users/ann/grants",
        json={"role": "coordinator", "trial_code": "MOOD-CBT", "site_code": "LON"},
        headers=headers,
    )
    assert response.status_code == 201, response.get_json()
    grant = response.get_json()["grants"][0]
    assert (grant["role"], grant["trial_code"], grant["site_code"]) == (
        "coordinator",
        "MOOD-CBT",
        "LON",
    )
    session.expire_all()
    rows = session.scalars(select(AuditEntry).where(AuditEntry.record_id == grant["id"])).all()
    assert {e.field: e.new_value for e in rows}["role"] == '"coordinator"'
    assert {(e.table_name, e.username, e.channel, e.role) for e in rows} == {
        ("role_grant", "adam", "api", "admin")
    }

    problem(
        client.post(
            "/api/v1/users/ann/grants",
            json={"role": "coordinator", "trial_code": "MOOD-CBT", "site_code": "LON"},
            headers=headers,
        ),
        409,
    )
    revoked = client.post(
        f"/api/v1/grants/{grant['id']}/revoke", json={"reason": "moved to Paris"}, headers=headers
    )
    assert revoked.status_code == 204
    session.expire_all()
    deleted = session.scalars(
        select(AuditEntry).where(AuditEntry.record_id == grant["id"], AuditEntry.action == "delete")
    ).all()
    assert deleted
    assert {e.reason for e in deleted} == {"moved to Paris"}
