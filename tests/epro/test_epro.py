"""Participant self-report (ePRO): issuing a one-time link for a due questionnaire, answering it
without an account, and every way a link is refused (used, expired, revoked, unknown: one
neutral page that stores nothing)."""

import hashlib
import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, text
from sqlmodel import Session, col

from tests.assessments.conftest import (
    ARMS,
    BASE,
    CODE,
    TODAY,
    counts,
    make_participant,
    ok,
    participant_id,
    problem,
    rules,
)
from tests.conftest import bearer, csrf_token, set_up_example_trial, sign_in
from trials.assessments.models import Assessment, DataQuery
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.dblock import services as dblock
from trials.epro.models import EproLink
from trials.randomization.models import AllocationSlot
from trials.safety.models import Notification, SafetyEvent

__all__ = ["make_participant"]

STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "man": "manny:coordinator:TRIAL:MAN",
    "clin_lds": "cleo:clinician:TRIAL:LDS",
    "blinded": "bea:statistician_blinded:TRIAL",
}
# Randomized 40 days ago: W06 (day 42, window 37-47) is due today, W04 (23-33) has closed.
DAYS_AGO = 40
ANSWERS = {1: 1, 2: 2, 3: 1, 4: 0, 5: 1, 6: 0, 7: 1, 8: 0, 9: 0, 10: 1}


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    return set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x05" * 32)


@pytest.fixture
def staff(app: Any, people: dict[str, Principal]) -> Any:
    client = app.test_client()
    assert sign_in(client, "cora").status_code == 302
    return client


def issue_on_the_web(client: Any, label: str, visit: str = "W06", instrument: str = "PHQ-9") -> str:
    """Press the participant page's button; returns the token from the address shown once."""
    page = client.get(f"/trials/{CODE}/participants/{label}")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert f'name="visit_code" value="{visit}"' in body
    response = client.post(
        f"/trials/{CODE}/participants/{label}/epro-links",
        data={"csrf_token": csrf_token(body), "visit_code": visit, "instrument": instrument},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    url = html.unescape(
        re.search(r'id="epro-url">([^<]+)<', response.get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    )
    path = urlsplit(url).path
    assert path.startswith("/epro/")
    return path.removeprefix("/epro/")


def answer(app: Any, token: str, items: dict[int, Any] | None = None) -> Any:
    """The participant, in their own browser: open the link and send the answers."""
    client = app.test_client()
    page = client.get(f"/epro/{token}")
    assert page.status_code == 200, page.get_data(as_text=True)
    data = {f"item_{n}": str(v) for n, v in (ANSWERS if items is None else items).items()}
    data["csrf_token"] = csrf_token(page.get_data(as_text=True))
    return client.post(f"/epro/{token}", data=data)


def link_of(session: Session, token: str) -> EproLink:
    session.expire_all()
    digest = hashlib.sha256(token.encode()).hexdigest()
    return session.scalars(select(EproLink).where(col(EproLink.token_sha256) == digest)).one()


NOT_VALID = "This link is not valid"


def assert_not_valid(response: Any) -> str:
    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert NOT_VALID in page
    return page


# -- the whole way -------------------------------------------------------------------------------


def test_issue_open_and_answer_a_link_as_the_participant(
    session: Session, app: Any, staff: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)
    assert len(token) >= 43  # 32 random bytes, url-safe
    link = link_of(session, token)
    assert link.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert (link.visit_code, link.instrument, link.created_by) == ("W06", "PHQ-9", "cora")
    assert timedelta(hours=71, minutes=59) < link.expires_at - link.created_at <= timedelta(hours=72)
    # The token itself is stored nowhere: not in the link's row, not on the audit trail.
    rows = session.connection().execute(text("SELECT * FROM epro_link")).all()
    assert all(token not in str(value) for row in rows for value in row)
    entries = session.scalars(select(AuditEntry).where(col(AuditEntry.table_name) == "epro_link")).all()
    assert entries
    assert all(
        token not in (e.new_value or "") and link.token_sha256 not in (e.new_value or "") for e in entries
    )

    client = app.test_client()
    page = client.get(f"/epro/{token}")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    body = re.sub(r"<input[^>]*csrf_token[^>]*>", "", page.get_data(as_text=True))
    for secret in (CODE, "MoodStep", "LDS", label, "Leeds", *ARMS, "<nav"):
        assert secret not in body, secret
    assert body.count("<fieldset") == 10
    assert "Not answered" not in body  # the participant just leaves a question out

    before = counts(session)
    data = {f"item_{n}": str(v) for n, v in ANSWERS.items()}
    response = client.post(
        f"/epro/{token}", data={**data, "csrf_token": csrf_token(page.get_data(as_text=True))}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "Thank you" in response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    session.expire_all()
    stored = session.scalars(
        select(Assessment).where(col(Assessment.participant_id) == participant_id(session, label))
    ).one()
    assert stored.source == "participant"
    assert stored.entered_by == f"participant:{label}"
    assert (stored.visit_code, stored.assessed_on, stored.in_window) == ("W06", TODAY, True)
    assert stored.items() == ANSWERS
    link = link_of(session, token)
    assert link.used_at is not None
    assert link.assessment_id == stored.id
    # Who entered it, on the audit trail: the participant, on the web.
    inserted = session.scalars(
        select(AuditEntry).where(
            col(AuditEntry.record_id) == str(stored.id), col(AuditEntry.action) == "insert"
        )
    ).all()
    assert inserted
    assert {(e.username, e.role, e.channel, e.user_id) for e in inserted} == {
        (f"participant:{label}", "participant", "web", None)
    }
    used = session.scalars(
        select(AuditEntry).where(
            col(AuditEntry.record_id) == str(link.id), col(AuditEntry.field) == "used_at"
        )
    ).one()
    assert used.username == f"participant:{label}"
    assert used.reason is not None
    after = counts(session)
    assert after["assessments"] == before["assessments"] + 1
    assert after["events"] == before["events"]  # item 9 was 0
    report = audit.verify_chain(session.connection())
    assert report.ok, report

    # The site sees it as self-reported.
    page = staff.get(f"/trials/{CODE}/participants/{label}").get_data(as_text=True)
    assert "(self-report)" in page


def test_a_used_link_is_refused_and_stores_nothing(
    session: Session, app: Any, staff: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)
    client = app.test_client()
    page = client.get(f"/epro/{token}")
    form_token = csrf_token(page.get_data(as_text=True))
    data = {f"item_{n}": str(v) for n, v in ANSWERS.items()}
    assert client.post(f"/epro/{token}", data={**data, "csrf_token": form_token}).status_code == 200
    before = counts(session)
    assert_not_valid(client.get(f"/epro/{token}"))
    assert_not_valid(client.post(f"/epro/{token}", data={**data, "csrf_token": form_token}))
    assert counts(session) == before


def test_used_expired_revoked_and_unknown_links_get_one_and_the_same_page(
    session: Session, app: Any, staff: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    used = issue_on_the_web(staff, label, "W06", "PHQ-9")
    assert answer(app, used).status_code == 200
    expired = issue_on_the_web(staff, label, "W06", "GAD-7")
    link = link_of(session, expired)
    with audit.reason(session, "test: the link's time has passed"):
        link.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.add(link)
    session.flush()
    revoked = issue_on_the_web(staff, label, "W06", "GAD-7")  # supersedes the expired one
    page = staff.get(f"/trials/{CODE}/participants/{label}").get_data(as_text=True)
    revoke_path = f"/trials/{CODE}/epro-links/{link_of(session, revoked).id}/revoke"
    assert f'action="{revoke_path}"' in page
    response = staff.post(revoke_path, data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    assert link_of(session, revoked).revoked_at is not None

    client = app.test_client()
    before = counts(session)
    pages = set()
    for token in (used, expired, revoked, "x" * 43, "not-a-token", "a" * 400):
        pages.add(assert_not_valid(client.get(f"/epro/{token}")))
    assert len(pages) == 1  # never says which
    assert counts(session) == before


def test_refused_posts_store_nothing(session: Session, app: Any, staff: Any, make_participant: Any) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)
    client = app.test_client()
    form_token = csrf_token(client.get(f"/epro/{token}").get_data(as_text=True))
    link = link_of(session, token)
    with audit.reason(session, "test: the link's time has passed"):
        link.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        session.add(link)
    session.flush()
    before = counts(session)
    data = {f"item_{n}": str(v) for n, v in {**ANSWERS, 9: 3}.items()}
    assert_not_valid(client.post(f"/epro/{token}", data={**data, "csrf_token": form_token}))
    assert_not_valid(client.post(f"/epro/{'y' * 43}", data={**data, "csrf_token": form_token}))
    assert counts(session) == before
    assert link_of(session, token).used_at is None


def test_the_participants_form_needs_its_csrf_token(
    session: Session, app: Any, staff: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)
    client = app.test_client()
    client.get(f"/epro/{token}")
    before = counts(session)
    data = {f"item_{n}": str(v) for n, v in ANSWERS.items()}
    assert client.post(f"/epro/{token}", data=data).status_code == 400
    assert counts(session) == before
    assert link_of(session, token).used_at is None


def test_a_tampered_answer_is_refused_beside_its_question_and_the_link_still_works(
    session: Session, app: Any, staff: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)
    before = counts(session)
    response = answer(app, token, {**ANSWERS, 4: 4, 7: "two"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    for item in (4, 7):
        fieldset = re.search(rf'<fieldset id="item-{item}"[^>]*>(.*?)</fieldset>', page, re.S)
        assert fieldset
        assert "field-error" in fieldset.group(1)
    assert counts(session) == before
    assert link_of(session, token).used_at is None
    assert answer(app, token).status_code == 200


def test_item_9_through_the_link_raises_the_safety_event_and_notifies_the_clinicians(
    session: Session, app: Any, staff: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)
    response = answer(app, token, {**ANSWERS, 9: 2})
    assert response.status_code == 200
    assert "call your local emergency number" in response.get_data(as_text=True)
    session.expire_all()
    event = session.scalars(
        select(SafetyEvent).where(col(SafetyEvent.participant_id) == participant_id(session, label))
    ).one()
    assert (event.kind, event.item9) == ("item9_positive", 2)
    notes = session.scalars(select(Notification).where(col(Notification.safety_event_id) == event.id)).all()
    assert len(notes) == 1  # cleo, the site's clinician


def test_a_skipped_item_9_is_missing_not_zero(
    session: Session, app: Any, staff: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)
    assert answer(app, token, {n: v for n, v in ANSWERS.items() if n != 9}).status_code == 200
    session.expire_all()
    stored = session.scalars(
        select(Assessment).where(col(Assessment.participant_id) == participant_id(session, label))
    ).one()
    assert stored.item_9 is None
    kinds = session.scalars(select(SafetyEvent.kind).where(col(SafetyEvent.assessment_id) == stored.id)).all()
    assert list(kinds) == ["item9_missing"]


def test_answered_after_the_window_closed_it_is_kept_for_its_visit_with_a_data_query(
    session: Session, app: Any, staff: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)  # W06: days 37-47, today is day 40
    slot = session.scalars(
        select(AllocationSlot).where(col(AllocationSlot.participant_id) == participant_id(session, label))
    ).one()
    with audit.reason(session, "test: the link is answered on day 48"):
        slot.randomized_at = datetime.now(UTC) - timedelta(days=48)
        session.add(slot)
    session.flush()
    assert answer(app, token).status_code == 200
    session.expire_all()
    stored = session.scalars(
        select(Assessment).where(col(Assessment.participant_id) == participant_id(session, label))
    ).one()
    assert (stored.visit_code, stored.in_window) == ("W06", False)  # not reassigned to W08
    query = session.scalars(select(DataQuery).where(col(DataQuery.assessment_id) == stored.id)).one()
    assert query.rule == "out_of_window"
    assert "W06" in query.message


def test_a_locked_database_refuses_the_questionnaire_cleanly(
    session: Session, app: Any, staff: Any, people: dict[str, Principal], make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)
    client = app.test_client()
    form_token = csrf_token(client.get(f"/epro/{token}").get_data(as_text=True))
    dblock.lock_database(CODE, reason="final data review", session=session, by=people["sponsor"])
    session.flush()
    before = counts(session)
    page = client.get(f"/epro/{token}")
    assert page.status_code == 409
    assert "cannot be accepted" in page.get_data(as_text=True)
    data = {f"item_{n}": str(v) for n, v in {**ANSWERS, 9: 1}.items()}
    response = client.post(f"/epro/{token}", data={**data, "csrf_token": form_token})
    assert response.status_code == 409
    assert "Nothing was saved" in response.get_data(as_text=True)
    assert counts(session) == before
    # and no link can be issued meanwhile
    refused = staff.post(
        f"/trials/{CODE}/participants/{label}/epro-links",
        data={
            "csrf_token": csrf_token(staff.get("/account").get_data(as_text=True)),
            "visit_code": "W06",
            "instrument": "GAD-7",
        },
    )
    assert refused.status_code == 409


# -- issuing ---------------------------------------------------------------------------------------


def test_the_api_issues_a_link_once_and_lists_links_without_their_address(
    session: Session, client: Any, people: dict[str, Principal], make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    headers = bearer(session, people["lds"])
    path = f"{BASE}/participants/{label}/epro-links"
    issued = ok(client.post(path, json={"visit_code": "W06", "instrument": "GAD-7"}, headers=headers), 201)
    assert issued["state"] == "active"
    assert urlsplit(issued["url"]).path.startswith("/epro/")
    token = urlsplit(issued["url"]).path.removeprefix("/epro/")
    assert link_of(session, token).instrument == "GAD-7"
    listed = ok(client.get(path, headers=headers))
    assert [link["id"] for link in listed] == [issued["id"]]
    assert "url" not in listed[0]
    assert token not in str(listed)
    # a second link for the same questionnaire supersedes the first
    ok(client.post(path, json={"visit_code": "W06", "instrument": "GAD-7"}, headers=headers), 201)
    states = sorted(link["state"] for link in ok(client.get(path, headers=headers)))
    assert states == ["active", "revoked"]


@pytest.mark.parametrize(
    ("body", "status", "field", "rule"),
    [
        ({"visit_code": "W04", "instrument": "PHQ-9"}, 422, "visit_code", "due"),  # window closed
        ({"visit_code": "W08", "instrument": "PHQ-9"}, 422, "visit_code", "due"),  # not open yet
        ({"visit_code": "W99", "instrument": "PHQ-9"}, 422, "visit_code", "known"),
        ({"visit_code": "W06", "instrument": "PHQ-8"}, 422, "instrument", "visit_instrument"),
        ({"visit_code": "W06", "instrument": "BDI"}, 422, "instrument", "literal_error"),
        ({"visit_code": "W06"}, 422, "instrument", "missing"),
    ],
)
def test_a_link_is_issued_only_for_a_questionnaire_due_today(
    session: Session,
    client: Any,
    people: dict[str, Principal],
    make_participant: Any,
    body: dict[str, Any],
    status: int,
    field: str,
    rule: str,
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    headers = bearer(session, people["lds"])
    before = counts(session)
    found = rules(
        problem(client.post(f"{BASE}/participants/{label}/epro-links", json=body, headers=headers), status)
    )
    assert (field, rule) in found, found
    assert counts(session) == before


def test_links_are_for_the_sites_staff_and_randomized_participants_only(
    session: Session, client: Any, people: dict[str, Principal], make_participant: Any
) -> None:
    other_site = make_participant("MAN", randomized_days_ago=DAYS_AGO)
    waiting = make_participant("LDS", randomize=False)
    done = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    body = {"visit_code": "W06", "instrument": "PHQ-9"}
    lds = bearer(session, people["lds"])
    ok(
        client.post(
            f"{BASE}/participants/{done}/assessments",
            json={"instrument": "PHQ-9", "assessed_on": TODAY.isoformat(), "items": {"1": 0, "9": 0}},
            headers=lds,
        ),
        201,
    )
    before = session.scalar(select(EproLink.id).limit(1))
    problem(client.post(f"{BASE}/participants/{other_site}/epro-links", json=body, headers=lds), 404)
    problem(client.post(f"{BASE}/participants/LDS-9999/epro-links", json=body, headers=lds), 404)
    problem(client.post(f"{BASE}/participants/{waiting}/epro-links", json=body, headers=lds), 409)
    found = problem(client.post(f"{BASE}/participants/{done}/epro-links", json=body, headers=lds), 409)
    assert "already has" in found["detail"]
    for who in ("clin_lds", "blinded", "sponsor"):
        problem(
            client.post(
                f"{BASE}/participants/{done}/epro-links", json=body, headers=bearer(session, people[who])
            ),
            403,
        )
    problem(client.post(f"{BASE}/participants/{done}/epro-links", json=body), 401)
    assert before is None
    assert session.scalar(select(EproLink.id).limit(1)) is None


def test_another_sites_staff_can_neither_issue_nor_revoke_a_link_on_the_web(
    session: Session, app: Any, staff: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=DAYS_AGO)
    token = issue_on_the_web(staff, label)
    link = link_of(session, token)
    manny = app.test_client()
    assert sign_in(manny, "manny").status_code == 302
    form_token = csrf_token(manny.get("/account").get_data(as_text=True))
    before = counts(session)
    issued = manny.post(
        f"/trials/{CODE}/participants/{label}/epro-links",
        data={"csrf_token": form_token, "visit_code": "W06", "instrument": "GAD-7"},
    )
    assert issued.status_code == 404
    revoked = manny.post(f"/trials/{CODE}/epro-links/{link.id}/revoke", data={"csrf_token": form_token})
    assert revoked.status_code == 404
    assert counts(session) == before
    assert link_of(session, token).revoked_at is None
    assert session.scalars(select(EproLink)).all() == [link]
