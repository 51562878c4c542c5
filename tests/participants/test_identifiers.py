"""Participants' direct identifiers: encrypted at rest (no plaintext in the table), visible only
to the staff of the participant's site, never in another answer, listing or audit entry, and
still readable after a new key is put first (rotation)."""

import html
import re
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import sessionmaker
from sqlmodel import Session, col

from tests.assessments.conftest import BASE, CODE, make_participant, ok, problem, rules
from tests.conftest import app_config, bearer, csrf_token, set_up_example_trial, sign_in
from trials import create_app
from trials.core.accounts.permissions import Principal
from trials.core.audit.models import AuditEntry
from trials.core.config import ConfigurationError
from trials.participants.identifiers import IdentifierCipher
from trials.participants.models import ParticipantIdentity

__all__ = ["make_participant"]

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()
NAME, EMAIL, PHONE = "Ingrid Ølberg-Smith", "ingrid.olberg@example.org", "+44 113 496 0000"
SECRETS = (NAME, EMAIL, PHONE, "Ingrid", "olberg", "496 0000")
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "man": "manny:coordinator:TRIAL:MAN",
    "clin_lds": "cleo:clinician:TRIAL:LDS",
    "blinded": "bea:statistician_blinded:TRIAL",
    "unblinded": "ulf:statistician_unblinded:TRIAL",
    "monitor": "mona:monitor:TRIAL",
    "admin": "ada:admin",
}


def make_app(database_url: str, connection: Connection, keys: str | None) -> Any:
    app = create_app(app_config(database_url, IDENTIFIER_KEYS=keys))
    app.extensions["trials_db"].session_factory = sessionmaker(
        bind=connection, class_=Session, expire_on_commit=False, join_transaction_mode="create_savepoint"
    )
    return app


@pytest.fixture
def app(database_url: str, connection: Connection) -> Iterator[Any]:
    """The app with one identifier key (the old one)."""
    app = make_app(database_url, connection, OLD_KEY)
    yield app
    app.extensions["trials_db"].engine.dispose()


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    return set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x06" * 32)


@pytest.fixture
def h(session: Session, people: dict[str, Principal]) -> dict[str, dict[str, str]]:
    return {name: bearer(session, principal) for name, principal in people.items()}


def put(client: Any, label: str, headers: dict[str, str], **body: Any) -> Any:
    return client.put(f"{BASE}/participants/{label}/identifiers", json=body, headers=headers)


def get(client: Any, label: str, headers: dict[str, str]) -> Any:
    return client.get(f"{BASE}/participants/{label}/identifiers", headers=headers)


def no_secret_in(value: Any) -> None:
    textual = html.unescape(str(value))
    for secret in SECRETS:
        assert secret not in textual, secret


def stored_row(session: Session) -> Any:
    return session.connection().execute(text("SELECT * FROM participant_identity")).one()


def test_identifiers_are_encrypted_at_rest_and_read_back_by_the_sites_staff(
    session: Session, client: Any, h: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    saved = ok(put(client, label, h["lds"], full_name=NAME, email=EMAIL, phone=PHONE))
    assert (saved["full_name"], saved["email"], saved["phone"]) == (NAME, EMAIL, PHONE)
    for who in ("lds", "clin_lds"):
        read = ok(get(client, label, h[who]))
        assert (read["full_name"], read["email"], read["phone"]) == (NAME, EMAIL, PHONE)

    row = stored_row(session)  # the raw table: ciphertexts only
    no_secret_in(row)
    no_secret_in(row._mapping["full_name_ciphertext"].encode().hex())
    assert Fernet(OLD_KEY.encode()).decrypt(row._mapping["email_ciphertext"].encode()).decode() == EMAIL
    # each reading is on the audit trail, without the values
    viewed = session.scalars(select(AuditEntry).where(col(AuditEntry.action) == "identifiers_viewed")).all()
    assert [e.username for e in viewed] == ["cora", "cleo"]


def test_only_the_staff_of_the_participants_site_may_read_or_write_them(
    session: Session, client: Any, h: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    ok(put(client, label, h["lds"], full_name=NAME))
    for who in ("sponsor", "blinded", "unblinded", "monitor", "admin"):
        no_secret_in(problem(get(client, label, h[who]), 403))
        problem(put(client, label, h[who], full_name="Someone Else"), 403)
    for who in ("man",):  # another site: as if the participant did not exist
        no_secret_in(problem(get(client, label, h[who]), 404))
        problem(put(client, label, h[who], full_name="Someone Else"), 404)
    problem(put(client, label, h["clin_lds"], full_name="Someone Else"), 403)  # reads, does not enter
    problem(get(client, label, {}), 401)
    assert ok(get(client, label, h["lds"]))["full_name"] == NAME


def test_identifiers_appear_in_no_other_answer_page_or_audit_entry(
    session: Session, app: Any, client: Any, h: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    ok(put(client, label, h["lds"], full_name=NAME, email=EMAIL, phone=PHONE))
    ok(
        put(
            client,
            label,
            h["lds"],
            full_name=NAME,
            email=EMAIL,
            phone="+44 113 496 0001",
            reason="new number",
        )
    )
    for who in ("lds", "sponsor", "monitor", "unblinded"):
        no_secret_in(ok(client.get(f"{BASE}/participants", headers=h[who])))
        no_secret_in(ok(client.get(f"{BASE}/participants/{label}", headers=h[who])))
    for username in ("sam", "mona", "bea"):
        web = app.test_client()
        sign_in(web, username)
        for path in (f"/trials/{CODE}/participants", f"/trials/{CODE}/participants/{label}"):
            response = web.get(path)
            assert response.status_code == 200
            no_secret_in(response.get_data(as_text=True))
        assert web.get(f"/trials/{CODE}/participants/{label}/identifiers").status_code == 403
    monitor = app.test_client()
    sign_in(monitor, "mona")
    export = monitor.get("/audit/export.csv")
    assert export.status_code == 200
    assert "participant_identity" in export.get_data(as_text=True)
    no_secret_in(export.get_data(as_text=True))
    listed = ok(client.get("/api/v1/audit", headers=h["monitor"]))
    no_secret_in(listed)
    entries = session.scalars(
        select(AuditEntry).where(col(AuditEntry.table_name) == "participant_identity")
    ).all()
    assert entries
    for entry in entries:
        no_secret_in((entry.old_value, entry.new_value, entry.reason))
    changed = {e.field: (e.old_value, e.new_value) for e in entries if e.action == "update" and e.field}
    # The audit records which field changed, never its value.
    assert changed["phone_ciphertext"] == ('"[redacted]"', '"[redacted]"')
    assert "full_name_ciphertext" not in changed
    assert "email_ciphertext" not in changed
    all_entries = session.scalars(select(AuditEntry)).all()
    for entry in all_entries:
        no_secret_in((entry.old_value, entry.new_value, entry.reason))


def test_a_change_needs_a_reason_and_bad_values_are_refused_by_name(
    session: Session, client: Any, h: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    ok(put(client, label, h["lds"], email=EMAIL))
    before = stored_row(session)
    found = rules(problem(put(client, label, h["lds"], email="ingrid@example.net"), 422))
    assert found == {("reason", "required")}
    assert rules(problem(put(client, label, h["lds"], email="not an address", reason="x"), 422)) == {
        ("email", "string_pattern_mismatch")
    }
    assert ("full_name", "string_pattern_mismatch") in rules(
        problem(put(client, label, h["lds"], full_name="Ingrid\u202eHidden", reason="x"), 422)
    )
    assert ("phone", "string_pattern_mismatch") in rules(
        problem(put(client, label, h["lds"], phone="call me", reason="x"), 422)
    )
    assert ("nickname", "extra_forbidden") in rules(problem(put(client, label, h["lds"], nickname="I"), 422))
    session.expire_all()
    assert stored_row(session) == before
    saved = ok(put(client, label, h["lds"], email="ingrid@example.net", reason="participant moved"))
    assert (saved["email"], saved["full_name"]) == ("ingrid@example.net", None)


def test_without_a_key_identifiers_are_refused_and_the_rest_works(
    session: Session, database_url: str, connection: Connection, people: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    app = make_app(database_url, connection, None)
    try:
        client = app.test_client()
        headers = bearer(session, people["lds"])
        found = problem(put(client, label, headers, full_name=NAME), 409)
        assert "TRIALS_IDENTIFIER_KEYS" in found["detail"]
        assert ok(get(client, label, headers))["full_name"] is None
        assert session.scalar(select(ParticipantIdentity.id)) is None
        web = app.test_client()
        sign_in(web, "cora")
        page = web.get(f"/trials/{CODE}/participants/{label}")
        assert page.status_code == 200
        assert "None recorded" in page.get_data(as_text=True)
        form = web.get(f"/trials/{CODE}/participants/{label}/identifiers")
        assert "cannot be entered" in form.get_data(as_text=True)
        refused = web.post(
            f"/trials/{CODE}/participants/{label}/identifiers",
            data={"csrf_token": csrf_token(form.get_data(as_text=True)), "full_name": NAME},
        )
        assert refused.status_code == 409
        assert "TRIALS_IDENTIFIER_KEYS" in html.unescape(refused.get_data(as_text=True))
        assert session.scalar(select(ParticipantIdentity.id)) is None
    finally:
        app.extensions["trials_db"].engine.dispose()


def test_a_new_key_put_first_still_reads_what_the_old_one_encrypted(
    session: Session, database_url: str, connection: Connection, client: Any, h: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    other = make_participant("LDS")
    ok(put(client, label, h["lds"], full_name=NAME))  # encrypted with the old key
    token = stored_row(session)._mapping["full_name_ciphertext"]
    rotated = make_app(database_url, connection, f"{NEW_KEY}, {OLD_KEY}")
    only_new = make_app(database_url, connection, NEW_KEY)
    try:
        assert ok(get(rotated.test_client(), label, h["lds"]))["full_name"] == NAME
        ok(put(rotated.test_client(), other, h["lds"], full_name="Ola Nordmann"))  # the new key encrypts
        assert ok(get(only_new.test_client(), other, h["lds"]))["full_name"] == "Ola Nordmann"
        found = problem(get(only_new.test_client(), label, h["lds"]), 409)
        assert "not in IDENTIFIER_KEYS" in found["detail"]
        # rotating a stored value re-encrypts it under the first key
        renewed = IdentifierCipher([NEW_KEY, OLD_KEY]).rotate(token)
        assert IdentifierCipher([NEW_KEY]).decrypt(renewed) == NAME
    finally:
        rotated.extensions["trials_db"].engine.dispose()
        only_new.extensions["trials_db"].engine.dispose()


def test_the_web_form_saves_and_the_page_shows_them_to_site_staff_only(
    session: Session, app: Any, people: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    web = app.test_client()
    sign_in(web, "cora")
    path = f"/trials/{CODE}/participants/{label}/identifiers"
    form = web.get(path)
    assert form.status_code == 200
    token = csrf_token(form.get_data(as_text=True))
    refused = web.post(path, data={"csrf_token": token, "full_name": NAME, "email": "nope"})
    assert refused.status_code == 422
    assert "email" in re.sub(r"\s+", " ", html.unescape(refused.get_data(as_text=True)))
    assert session.scalar(select(ParticipantIdentity.id)) is None
    saved = web.post(path, data={"csrf_token": token, "full_name": NAME, "email": EMAIL, "phone": ""})
    assert saved.status_code == 302
    page = html.unescape(web.get(f"/trials/{CODE}/participants/{label}").get_data(as_text=True))
    identifiers = re.search(r'<section id="identifiers".*?</section>', page, re.S)
    assert identifiers
    assert NAME in identifiers.group(0)
    assert EMAIL in identifiers.group(0)
    session.expire_all()
    assert stored_row(session)._mapping["phone_ciphertext"] is None
    # a change through the form needs a reason too
    change = web.post(path, data={"csrf_token": token, "full_name": NAME, "email": "", "phone": PHONE})
    assert change.status_code == 422
    assert "reason" in html.unescape(change.get_data(as_text=True))
    clinician = app.test_client()
    sign_in(clinician, "cleo")
    assert NAME in html.unescape(clinician.get(f"/trials/{CODE}/participants/{label}").get_data(as_text=True))
    assert clinician.get(path).status_code == 200  # reads
    other_site = app.test_client()
    sign_in(other_site, "manny")
    assert other_site.get(f"/trials/{CODE}/participants/{label}").status_code == 404
    assert other_site.get(path).status_code == 404


@pytest.mark.parametrize("keys", ["not-a-key", f"{OLD_KEY},short"], ids=["not-a-key", "second-key-short"])
def test_a_malformed_key_stops_the_app_at_start(database_url: str, keys: str) -> None:
    with pytest.raises(ConfigurationError, match="IDENTIFIER_KEYS"):
        create_app(app_config(database_url, IDENTIFIER_KEYS=keys))
