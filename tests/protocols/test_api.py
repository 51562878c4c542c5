"""The protocol registry's JSON API: validation errors store nothing; register, lock, amend, diff."""

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from sqlalchemy import func, select
from sqlmodel import Session, col

from protocols.models import ProtocolVersion
from tests.conftest import PASSWORD, bearer
from tests.protocols.invalid_cases import (
    EXAMPLE_TEXT,
    INVALID_CASES,
    InvalidCase,
    case_text,
    dump,
    example_data,
)
from tests.protocols.test_document import EXAMPLE_HASH
from trials.core.accounts.models import Trial, User
from trials.core.accounts.permissions import Principal
from trials.core.audit.models import AuditEntry

CODE = "MOOD-CBT-01"
BASE = "/api/v1/protocols"


def token_for(session: Session, principal: Principal) -> dict[str, str]:
    return bearer(session, principal)


def counts(session: Session) -> dict[str, int]:
    """Rows that a refused submission must not add."""
    session.expire_all()
    return {
        model.__name__: int(session.scalar(select(func.count()).select_from(model)) or 0)
        for model in (ProtocolVersion, Trial, AuditEntry)
    }


def entries(session: Session, action: str, record_id: Any = None) -> list[AuditEntry]:
    session.expire_all()
    query = select(AuditEntry).where(col(AuditEntry.action) == action)
    if record_id is not None:
        query = query.where(col(AuditEntry.record_id) == str(record_id))
    return list(session.scalars(query.order_by(col(AuditEntry.seq))).all())


def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json()
    assert body["status"] == status
    return body


def rules(body: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["field"], e["rule"]) for e in body.get("errors", [])}


def ok(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_json()


def amended_text() -> str:
    data = example_data()
    data["sap"]["alpha"] = 0.04
    data["trial"]["short_title"] = "MoodStep"
    return dump(data)


@pytest.fixture
def admin(session: Session, make_user: Any) -> dict[str, str]:
    _, principal = make_user("ada", "admin", name="Ada Admin")
    return token_for(session, principal)


@pytest.fixture
def sponsor(session: Session, make_trial: Any, make_user: Any) -> tuple[User, dict[str, str]]:
    make_trial(CODE, "MoodStep")
    user, principal = make_user("sam", f"sponsor:{CODE}", name="Sam Sponsor")
    return user, token_for(session, principal)


# -- invalid documents --------------------------------------------------------------------------


@pytest.mark.parametrize("case", INVALID_CASES, ids=[c.case_id for c in INVALID_CASES])
def test_an_invalid_document_is_refused_with_its_field_and_rule_and_nothing_is_stored(
    client: Any, session: Session, admin: dict[str, str], case: InvalidCase
) -> None:
    before = counts(session)
    response = client.post(BASE, json={"document": case_text(case)}, headers=admin)
    body = problem(response, 422)
    assert (case.expected_path, case.expected_rule) in rules(body), body
    for error in body["errors"]:
        assert error["message"].startswith(f"{error['field'] or 'document'}:")
    assert counts(session) == before
    # validation alone refuses it the same way
    checked = problem(client.post(f"{BASE}/validate", json={"document": case_text(case)}, headers=admin), 422)
    assert (case.expected_path, case.expected_rule) in rules(checked)


def test_validate_stores_nothing_and_gives_the_hash(
    client: Any, session: Session, admin: dict[str, str]
) -> None:
    before = counts(session)
    as_text = ok(client.post(f"{BASE}/validate", json={"document": EXAMPLE_TEXT}, headers=admin))
    assert as_text == {"valid": True, "content_hash": EXAMPLE_HASH}
    as_object = ok(client.post(f"{BASE}/validate", json={"document": example_data()}, headers=admin))
    assert as_object == as_text
    as_json = json.dumps(example_data(), indent=1)
    assert (
        ok(client.post(f"{BASE}/validate", json={"document": as_json, "format": "json"}, headers=admin))
        == as_text
    )
    assert counts(session) == before
    assert client.post(f"{BASE}/validate", json={"document": EXAMPLE_TEXT}).status_code == 401


def test_a_malformed_request_body_is_refused(client: Any, admin: dict[str, str]) -> None:
    body = problem(client.post(BASE, json={"document": EXAMPLE_TEXT, "colour": "red"}, headers=admin), 422)
    assert ("colour", "extra_forbidden") in rules(body)
    body = problem(client.post(BASE, json={"document": 42}, headers=admin), 422)
    assert any(field.startswith("document") for field, _ in rules(body))


# -- the schema ---------------------------------------------------------------------------------


def test_the_json_schema_is_public(client: Any) -> None:
    response = client.get("/api/v1/schemas/protocol.json")
    schema = ok(response)
    assert response.mimetype == "application/json"
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert {"trial", "arms", "visits", "estimands", "sap"} <= set(schema["properties"])
    assert not list(Draft202012Validator(schema).iter_errors(example_data()))


# -- register, lock, edit refused, amend, diff -------------------------------------------------


def test_register_lock_refuse_edit_amend_and_diff(
    client: Any, session: Session, sponsor: tuple[User, dict[str, str]]
) -> None:
    user, headers = sponsor
    created = ok(client.post(BASE, json={"document": EXAMPLE_TEXT}, headers=headers), 201)
    assert (created["trial_code"], created["version"], created["status"]) == (CODE, 1, "draft")
    assert created["content_hash"] == EXAMPLE_HASH
    assert created["created_by"] == "sam"
    problem(client.post(BASE, json={"document": EXAMPLE_TEXT}, headers=headers), 409)

    listed = ok(client.get(f"{BASE}/{CODE}/versions", headers=headers))
    assert [(v["version"], v["status"], v["signature"]) for v in listed] == [(1, "draft", None)]
    one = ok(client.get(f"{BASE}/{CODE}/versions/1", headers=headers))
    assert one["document"]["trial"]["code"] == CODE
    problem(client.get(f"{BASE}/{CODE}/versions/7", headers=headers), 404)
    problem(client.get(f"{BASE}/NO-SUCH-TRIAL/versions", headers=headers), 404)

    # a wrong password is refused, and the failed attempt stays on record
    lock_url = f"{BASE}/{CODE}/versions/1/lock"
    wrong = problem(client.post(lock_url, json={"password": "not the password"}, headers=headers), 422)
    assert [e["field"] for e in wrong["errors"]] == ["password"]
    assert len(entries(session, "signature_failed", user.id)) == 1
    problem(client.post(lock_url, json={"password": PASSWORD, "meaning": "review"}, headers=headers), 422)

    locked = ok(client.post(lock_url, json={"password": PASSWORD}, headers=headers))
    assert locked["status"] == "locked"
    assert locked["content_hash"] == EXAMPLE_HASH
    assert locked["locked_at"]
    assert "Sam Sponsor" in locked["signature"]
    assert "approval" in locked["signature"]
    assert EXAMPLE_HASH in locked["signature"]
    version_id = session.scalars(select(col(ProtocolVersion.id))).one()

    # editing the locked version is refused, and the attempt is committed despite the error
    edit = {"document": amended_text(), "reason": "quiet fix"}
    refused = problem(client.put(f"{BASE}/{CODE}/versions/1", json=edit, headers=headers), 409)
    assert "locked" in refused["detail"]
    attempts = entries(session, "edit_refused", version_id)
    assert len(attempts) == 1
    assert (attempts[0].username, attempts[0].channel) == ("sam", "api")
    problem(client.post(lock_url, json={"password": PASSWORD}, headers=headers), 409)
    assert len(entries(session, "edit_refused", version_id)) == 2
    after = ok(client.get(f"{BASE}/{CODE}/versions/1", headers=headers))
    assert (after["status"], after["content_hash"]) == ("locked", EXAMPLE_HASH)

    # an amendment needs a reason, and records it
    amend_url = f"{BASE}/{CODE}/amendments"
    no_reason = problem(client.post(amend_url, json={"document": amended_text()}, headers=headers), 422)
    assert [e["field"] for e in no_reason["errors"]] == ["reason"]
    reason = "DMC advice: alpha 0.04; shorter title"
    amended = ok(
        client.post(amend_url, json={"document": amended_text(), "reason": reason}, headers=headers), 201
    )
    assert (amended["version"], amended["status"], amended["amendment_reason"]) == (2, "draft", reason)
    assert amended["content_hash"] != EXAMPLE_HASH

    changes = ok(client.get(f"{BASE}/{CODE}/diff?from=1&to=2", headers=headers))
    assert sorted((c["path"], c["kind"], c["old"], c["new"]) for c in changes) == [
        ("sap.alpha", "changed", 0.05, 0.04),
        ("trial.short_title", "changed", "MoodStep RCT", "MoodStep"),
    ]
    assert ok(client.get(f"{BASE}/{CODE}/diff?from=2&to=2", headers=headers)) == []
    bad = problem(client.get(f"{BASE}/{CODE}/diff?from=one&to=2", headers=headers), 422)
    assert ("from", "int_type") in rules(bad)

    latest = ok(client.get(BASE, headers=headers))
    assert [(p["trial_code"], p["version"], p["status"]) for p in latest] == [(CODE, 2, "draft")]
    # the draft amendment may still be edited, with a reason
    edited = {"document": amended_text().replace("alpha: 0.04", "alpha: 0.045"), "reason": "typo"}
    assert ok(client.put(f"{BASE}/{CODE}/versions/2", json=edited, headers=headers))["version"] == 2


def test_an_admin_registers_a_new_trial(client: Any, session: Session, admin: dict[str, str]) -> None:
    created = ok(client.post(BASE, json={"document": EXAMPLE_TEXT}, headers=admin), 201)
    assert (created["trial_code"], created["version"], created["created_by"]) == (CODE, 1, "ada")
    session.expire_all()
    assert session.scalars(select(col(Trial.code))).all() == [CODE]


# -- who may do what ----------------------------------------------------------------------------


def test_other_trials_and_roles_are_refused(
    client: Any,
    session: Session,
    sponsor: tuple[User, dict[str, str]],
    make_site: Any,
    make_trial: Any,
    make_user: Any,
) -> None:
    _, headers = sponsor
    ok(client.post(BASE, json={"document": EXAMPLE_TEXT}, headers=headers), 201)
    make_trial("OTHER-01", "Another trial")
    make_site("LON")
    _, stranger = make_user("olga", "sponsor:OTHER-01")
    _, coordinator = make_user("cora", f"coordinator:{CODE}:LON")
    _, blinded = make_user("bea", f"statistician_blinded:{CODE}")
    stranger_headers = token_for(session, stranger)
    coordinator_headers = token_for(session, coordinator)
    blinded_headers = token_for(session, blinded)

    problem(client.get(f"{BASE}/{CODE}/versions", headers=stranger_headers), 403)
    problem(client.get(f"{BASE}/{CODE}/versions/1", headers=stranger_headers), 403)
    problem(client.get(f"{BASE}/{CODE}/diff?from=1&to=1", headers=stranger_headers), 403)
    assert ok(client.get(BASE, headers=stranger_headers)) == []
    problem(client.get(f"{BASE}/{CODE}/versions"), 401)

    # a coordinator views the protocol but may not lock or change it
    assert len(ok(client.get(f"{BASE}/{CODE}/versions", headers=coordinator_headers))) == 1
    before = counts(session)
    lock_url = f"{BASE}/{CODE}/versions/1/lock"
    problem(client.post(lock_url, json={"password": PASSWORD}, headers=coordinator_headers), 403)
    edit = {"document": amended_text(), "reason": "x"}
    problem(client.put(f"{BASE}/{CODE}/versions/1", json=edit, headers=coordinator_headers), 403)
    problem(client.post(BASE, json={"document": EXAMPLE_TEXT}, headers=coordinator_headers), 403)
    assert counts(session) == before

    # the blinded statistician manages the protocol
    assert (
        ok(client.post(lock_url, json={"password": PASSWORD}, headers=blinded_headers))["status"] == "locked"
    )
