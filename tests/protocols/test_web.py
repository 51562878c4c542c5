"""Web pages of the protocol registry: upload, textarea, view, edit, lock, amend, diff, access.

Every invalid document of `invalid_cases.INVALID_CASES` is uploaded through the web form and
must be refused with its field path and rule, storing nothing (issue 3, acceptance 2).
"""

import html
import io
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from protocols.document import content_hash, parse_protocol
from protocols.models import ProtocolVersion
from tests.conftest import PASSWORD, csrf_token, sign_in
from tests.protocols.invalid_cases import EXAMPLE_TEXT, INVALID_CASES, InvalidCase, case_text
from trials.core.accounts.models import Trial
from trials.core.audit.models import AuditEntry

CODE = "MOOD-CBT-01"
VERSION_1 = f"/protocols/{CODE}/versions/1"
WRONG = "not the right password at all"
EXAMPLE_HASH = content_hash(parse_protocol(EXAMPLE_TEXT))
EDITED_TEXT = EXAMPLE_TEXT.replace("  short_title: MoodStep RCT\n", "  short_title: MoodStep RCT v1.1\n", 1)
AMENDED_TEXT = EDITED_TEXT.replace("  short_title: MoodStep RCT v1.1\n", "  short_title: MoodStep\n", 1)
assert EDITED_TEXT != EXAMPLE_TEXT
assert AMENDED_TEXT != EDITED_TEXT


# -- helpers -------------------------------------------------------------------------------------


def counts(session: Session) -> dict[str, int]:
    """Rows that a refused submission must not add."""
    session.expire_all()
    return {
        "protocol_version": session.scalar(select(func.count()).select_from(ProtocolVersion)) or 0,
        "trial": session.scalar(select(func.count()).select_from(Trial)) or 0,
        "audit_entry": session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
    }


def entries(session: Session, action: str, record_id: Any = None) -> list[AuditEntry]:
    session.expire_all()
    query = select(AuditEntry).where(col(AuditEntry.action) == action).order_by(col(AuditEntry.seq))
    if record_id is not None:
        query = query.where(col(AuditEntry.record_id) == str(record_id))
    return list(session.scalars(query).all())


def stored_version(session: Session, number: int = 1) -> ProtocolVersion:
    session.expire_all()
    row = session.scalars(
        select(ProtocolVersion)
        .join(Trial, col(Trial.id) == col(ProtocolVersion.trial_id))
        .where(col(Trial.code) == CODE, col(ProtocolVersion.version) == number)
    ).one()
    return row


def token_of(client: Any, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return csrf_token(page.get_data(as_text=True))


def upload(
    client: Any,
    path: str,
    text: str,
    *,
    filename: str = "protocol.yaml",
    token_page: str | None = None,
    **fields: str,
) -> Any:
    """POST a document as a multipart file upload, with the CSRF token of the form's page."""
    data: dict[str, Any] = {
        "csrf_token": token_of(client, token_page or path),
        "file": (io.BytesIO(text.encode("utf-8")), filename),
        **fields,
    }
    return client.post(path, data=data, content_type="multipart/form-data")


def submit_text(client: Any, path: str, text: str, **fields: str) -> Any:
    """POST a document typed into the textarea."""
    return client.post(path, data={"csrf_token": token_of(client, path), "text": text, **fields})


def lock(client: Any, number: int = 1, *, password: str, approve: bool = True) -> Any:
    path = f"/protocols/{CODE}/versions/{number}/lock"
    data = {"csrf_token": token_of(client, path), "password": password}
    if approve:
        data["approve"] = "y"
    return client.post(path, data=data)


def error_block(page: str) -> str:
    match = re.search(r'<article[^>]*id="document-errors"[^>]*>(.*?)</article>', page, re.S)
    assert match, "no #document-errors block in the page"
    return html.unescape(match.group(1))


def element_text(page: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no #{element_id} in the page"
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(2))).strip()


def assert_redirect(response: Any, path: str) -> None:
    assert response.status_code == 302, response.get_data(as_text=True)
    assert urlsplit(response.headers["Location"]).path == path


def assert_refused_with(response: Any, path: str, rule: str) -> None:
    page = response.get_data(as_text=True)
    assert response.status_code == 422, page
    block = error_block(page)
    assert "nothing was stored" in block
    assert f"<code>{path or 'document'}</code> ({rule})" in block, block


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def admin(make_user: Any) -> Any:
    return make_user("ada", "admin")


@pytest.fixture
def sponsor(make_trial: Any, make_user: Any) -> Any:
    """The trial (no protocol yet) and its sponsor, Sam."""
    make_trial(CODE, "MoodStep")
    return make_user("sam", f"sponsor:{CODE}", name="Samantha Sponsor")


@pytest.fixture
def registered(client: Any, sponsor: Any) -> Any:
    """Version 1 of the example, a draft registered by the signed-in sponsor."""
    assert sign_in(client, "sam").status_code == 302
    assert_redirect(upload(client, "/protocols/new", EXAMPLE_TEXT), VERSION_1)
    return sponsor


@pytest.fixture
def locked(client: Any, registered: Any) -> Any:
    """Version 1 locked by the sponsor; the sponsor stays signed in."""
    assert_redirect(lock(client, password=PASSWORD), VERSION_1)
    return registered


# -- invalid documents -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", INVALID_CASES, ids=[c.case_id for c in INVALID_CASES])
def test_invalid_upload_is_refused_with_path_and_rule_and_stores_nothing(
    client: Any, session: Session, admin: Any, case: InvalidCase
) -> None:
    """As an administrator, who could create the trial, so that nothing but validation refuses."""
    assert sign_in(client, "ada").status_code == 302
    before = counts(session)
    filename = "protocol.json" if case.case_id == "malformed_json" else "protocol.yaml"
    response = upload(client, "/protocols/new", case_text(case), filename=filename)
    assert_refused_with(response, case.expected_path, case.expected_rule)
    assert counts(session) == before


def test_invalid_upload_by_a_sponsor_of_an_existing_trial_stores_nothing(
    client: Any, session: Session, sponsor: Any
) -> None:
    case = next(c for c in INVALID_CASES if c.case_id == "zero_allocation_ratio")
    assert sign_in(client, "sam").status_code == 302
    before = counts(session)
    response = upload(client, "/protocols/new", case_text(case))
    assert_refused_with(response, case.expected_path, case.expected_rule)
    assert counts(session) == before


def test_form_without_a_document_is_refused(client: Any, session: Session, admin: Any) -> None:
    assert sign_in(client, "ada").status_code == 302
    before = counts(session)
    response = client.post("/protocols/new", data={"csrf_token": token_of(client, "/protocols/new")})
    assert_refused_with(response, "file", "required")
    assert counts(session) == before


# -- the textarea ----------------------------------------------------------------------------------


def test_textarea_registers_a_valid_document(client: Any, session: Session, admin: Any) -> None:
    """An administrator registering a new trial creates the trial and version 1, a draft."""
    assert sign_in(client, "ada").status_code == 302
    before = counts(session)
    # The administrator holds no role in the new trial: sent back to the list, told to grant one.
    assert_redirect(submit_text(client, "/protocols/new", EXAMPLE_TEXT), "/protocols")
    after = counts(session)
    assert after["trial"] == before["trial"] + 1
    assert after["protocol_version"] == before["protocol_version"] + 1
    row = stored_version(session)
    assert (row.status, row.source_format, row.content_hash) == ("draft", "yaml", EXAMPLE_HASH)
    assert row.source_text == EXAMPLE_TEXT
    assert row.created_by == "ada"


def test_textarea_refuses_an_invalid_document(client: Any, session: Session, admin: Any) -> None:
    case = next(c for c in INVALID_CASES if c.case_id == "overlapping_visit_windows")
    assert sign_in(client, "ada").status_code == 302
    before = counts(session)
    response = submit_text(client, "/protocols/new", case_text(case))
    assert_refused_with(response, case.expected_path, case.expected_rule)
    assert counts(session) == before


# -- the sponsor's path: register, view, edit, lock, refused edit, amend, diff -----------------


def test_sponsor_registers_edits_locks_and_amends(client: Any, session: Session, sponsor: Any) -> None:
    assert sign_in(client, "sam").status_code == 302

    # register: a draft, shown with its hash
    assert_redirect(upload(client, "/protocols/new", EXAMPLE_TEXT), VERSION_1)
    page = client.get(VERSION_1)
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert element_text(text, "content-hash") == EXAMPLE_HASH
    assert re.search(r"protocol version 1 <small[^>]*>draft</small>", text)
    assert 'id="signature"' not in text
    row = stored_version(session)

    # edit the draft with a reason: the hash follows the content, the reason is audited
    edit_path = f"{VERSION_1}/edit"
    response = upload(client, edit_path, EDITED_TEXT, reason="Short title carries the version")
    assert_redirect(response, VERSION_1)
    edited_hash = content_hash(parse_protocol(EDITED_TEXT))
    assert edited_hash != EXAMPLE_HASH
    assert element_text(client.get(VERSION_1).get_data(as_text=True), "content-hash") == edited_hash
    assert stored_version(session).source_text == EDITED_TEXT
    changes = [e for e in entries(session, "update", row.id) if e.field == "content_hash"]
    assert [(e.old_value, e.new_value, e.reason) for e in changes] == [
        (json.dumps(EXAMPLE_HASH), json.dumps(edited_hash), "Short title carries the version")
    ]

    # lock with the wrong password: refused beside the password field, the failure audited
    failed_before = len(entries(session, "signature_failed"))
    response = lock(client, password=WRONG)
    assert response.status_code == 422
    text = response.get_data(as_text=True)
    assert re.search(
        r'id="password"[^>]*>\s*<small class="field-error" id="password-error">[^<]*not correct', text
    ), text
    assert len(entries(session, "signature_failed")) == failed_before + 1
    assert stored_version(session).status == "draft"

    # lock without ticking "approve": refused, nothing recorded as a failure
    response = lock(client, password=PASSWORD, approve=False)
    assert response.status_code == 422
    assert "Tick to confirm the meaning of your signature." in response.get_data(as_text=True)
    assert len(entries(session, "signature_failed")) == failed_before + 1
    assert stored_version(session).status == "draft"

    # lock correctly: the signature is shown with printed name and meaning
    assert_redirect(lock(client, password=PASSWORD), VERSION_1)
    text = client.get(VERSION_1).get_data(as_text=True)
    signature = element_text(text, "signature")
    assert "Samantha Sponsor" in signature
    assert "meaning: approval" in signature
    assert re.search(r"protocol version 1 <small[^>]*>locked</small>", text)
    assert element_text(text, "content-hash") == edited_hash
    locked_row = stored_version(session)
    assert locked_row.status == "locked"
    assert locked_row.locked_at is not None
    assert locked_row.signature_id is not None

    # editing the locked version is refused (409) and the attempt audited
    assert client.get(edit_path).status_code == 409
    refused_before = len(entries(session, "edit_refused", row.id))
    response = upload(client, edit_path, AMENDED_TEXT, reason="Sneaky change", token_page="/protocols")
    assert response.status_code == 409
    assert len(entries(session, "edit_refused", row.id)) == refused_before + 1
    assert stored_version(session).content_hash == edited_hash
    assert stored_version(session).source_text == EDITED_TEXT

    # amend with a reason: version 2, a draft, with the reason shown
    response = upload(client, f"/protocols/{CODE}/amend", AMENDED_TEXT, reason="Shorter title")
    assert_redirect(response, f"/protocols/{CODE}/versions/2")
    text = client.get(f"/protocols/{CODE}/versions/2").get_data(as_text=True)
    assert re.search(r"protocol version 2 <small[^>]*>draft</small>", text)
    assert "Shorter title" in text
    version_2 = stored_version(session, 2)
    assert (version_2.status, version_2.amendment_reason) == ("draft", "Shorter title")
    assert stored_version(session, 1).content_hash == edited_hash

    # the diff lists the changed field path
    response = client.get(f"/protocols/{CODE}/diff?from=1&to=2")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert re.findall(r"<td><code>([^<]+)</code></td>", text) == ["trial.short_title"]
    assert "MoodStep RCT v1.1" in text
    assert "Shorter title" in text


def test_lock_of_a_locked_version_is_refused_and_audited(client: Any, session: Session, locked: Any) -> None:
    row = stored_version(session)
    refused_before = len(entries(session, "edit_refused", row.id))
    response = lock(client, password=PASSWORD)
    assert response.status_code == 409
    assert len(entries(session, "edit_refused", row.id)) == refused_before + 1
    assert stored_version(session).signature_id == row.signature_id


def test_amend_without_a_reason_is_refused(client: Any, session: Session, locked: Any) -> None:
    before = counts(session)
    response = upload(client, f"/protocols/{CODE}/amend", AMENDED_TEXT, reason="  ")
    assert_refused_with(response, "reason", "required")
    assert counts(session) == before


def test_edit_of_a_draft_without_a_reason_is_refused(client: Any, session: Session, registered: Any) -> None:
    before = counts(session)
    response = upload(client, f"{VERSION_1}/edit", EDITED_TEXT)
    assert_refused_with(response, "reason", "required")
    assert counts(session) == before
    assert stored_version(session).content_hash == EXAMPLE_HASH


def test_invalid_amendment_is_refused_and_stores_nothing(client: Any, session: Session, locked: Any) -> None:
    case = next(c for c in INVALID_CASES if c.case_id == "primary_endpoint_at_unknown_visit")
    before = counts(session)
    response = upload(client, f"/protocols/{CODE}/amend", case_text(case), reason="Move the endpoint")
    assert_refused_with(response, case.expected_path, case.expected_rule)
    assert counts(session) == before


# -- who may do what -------------------------------------------------------------------------------


def test_coordinator_views_but_may_not_edit_lock_or_amend(
    app: Any, session: Session, registered: Any, make_site: Any, make_user: Any
) -> None:
    make_site("LON")
    make_user("cora", f"coordinator:{CODE}:LON")
    client = app.test_client()
    assert sign_in(client, "cora").status_code == 302
    response = client.get(VERSION_1)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert element_text(text, "content-hash") == EXAMPLE_HASH
    assert f"{VERSION_1}/edit" not in text
    assert f"{VERSION_1}/lock" not in text
    before = counts(session)

    token = token_of(client, VERSION_1)
    edit = client.post(
        f"{VERSION_1}/edit",
        data={"csrf_token": token, "text": EDITED_TEXT, "reason": "A coordinator's change"},
    )
    assert edit.status_code == 403
    lock_response = client.post(
        f"{VERSION_1}/lock",
        data={"csrf_token": token, "password": PASSWORD, "approve": "y"},
    )
    assert lock_response.status_code == 403
    amend = client.post(
        f"/protocols/{CODE}/amend",
        data={"csrf_token": token, "text": AMENDED_TEXT, "reason": "A coordinator's amendment"},
    )
    assert amend.status_code == 403

    assert counts(session) == before
    row = stored_version(session)
    assert (row.status, row.content_hash) == ("draft", EXAMPLE_HASH)


@pytest.mark.parametrize(
    "path",
    [f"{VERSION_1}/edit", f"{VERSION_1}/lock", f"/protocols/{CODE}/amend"],
    ids=["edit", "lock", "amend"],
)
def test_coordinator_gets_403_before_any_form_is_shown_or_checked(
    app: Any, session: Session, registered: Any, make_site: Any, make_user: Any, path: str
) -> None:
    """Permission is checked first: no form page, and an incomplete form is 403, not 422."""
    make_site("LON")
    make_user("cora", f"coordinator:{CODE}:LON")
    client = app.test_client()
    assert sign_in(client, "cora").status_code == 302
    before = counts(session)
    assert client.get(path).status_code == 403
    response = client.post(path, data={"csrf_token": token_of(client, VERSION_1), "text": "arms: ["})
    assert response.status_code == 403
    assert counts(session) == before


@pytest.mark.parametrize(
    "path",
    [
        "/protocols",
        "/protocols/new",
        VERSION_1,
        f"{VERSION_1}/edit",
        f"{VERSION_1}/lock",
        f"/protocols/{CODE}/diff",
    ],
)
def test_anonymous_user_is_sent_to_sign_in(client: Any, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/sign-in"


@pytest.mark.parametrize("grants", [(), ("sponsor:OTHER-01",)], ids=["no_grant", "other_trial"])
def test_user_without_a_grant_in_the_trial_gets_403(
    app: Any, registered: Any, make_trial: Any, make_user: Any, grants: tuple[str, ...]
) -> None:
    make_trial("OTHER-01", "Another trial")
    make_user("olga", *grants)
    client = app.test_client()
    assert sign_in(client, "olga").status_code == 302
    assert client.get(VERSION_1).status_code == 403
    assert client.get(f"/protocols/{CODE}/diff").status_code == 403
    assert CODE not in client.get("/protocols").get_data(as_text=True)


# -- CSRF ------------------------------------------------------------------------------------------


def test_register_without_csrf_token_is_refused(client: Any, session: Session, admin: Any) -> None:
    assert sign_in(client, "ada").status_code == 302
    before = counts(session)
    response = client.post(
        "/protocols/new",
        data={"file": (io.BytesIO(EXAMPLE_TEXT.encode("utf-8")), "protocol.yaml")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422  # the form checks its token and says it expired
    assert "the form has expired" in response.get_data(as_text=True)
    assert counts(session) == before


def test_lock_without_csrf_token_is_refused(client: Any, session: Session, registered: Any) -> None:
    before = counts(session)
    response = client.post(f"{VERSION_1}/lock", data={"password": PASSWORD, "approve": "y"})
    assert response.status_code == 400
    assert counts(session) == before
    assert stored_version(session).status == "draft"
