"""Participant web pages and the assessment entry form: site scoping, blinding, the form's
bad inputs that show field errors and store nothing, safety alerts, corrections, and the data
the live total is computed from."""

import html
import json
import re
import shutil
import subprocess
import uuid
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from analysis.scoring import RULES, prorated_total
from tests.assessments.conftest import (
    ARMS,
    CODE,
    CONSENTED,
    TODAY,
    counts,
    make_participant,
    participant_id,
)
from tests.conftest import csrf_token, set_up_example_trial, sign_in
from trials.assessments.models import Assessment, DataQuery
from trials.core.accounts.permissions import Principal
from trials.core.audit.models import AuditEntry
from trials.dblock import services as dblock
from trials.safety.models import Notification, SafetyEvent

__all__ = ["make_participant"]

PARTICIPANTS = f"/trials/{CODE}/participants"
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


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    return set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x04" * 32)


@pytest.fixture
def as_user(app: Any) -> Any:
    """as_user("cora") -> a test client signed in as that user."""

    def make(username: str) -> Any:
        client = app.test_client()
        response = sign_in(client, username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return make


def text_of(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def without_csrf(page: str) -> str:
    """The page without its CSRF tokens (random text that could contain anything)."""
    return re.sub(r"<input[^>]*csrf_token[^>]*>", "", page)


def no_arm_in(page: str) -> None:
    page = without_csrf(page).replace(CODE, "")
    for arm in ARMS:
        assert arm not in page, f"arm {arm} shown"


def element(page: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*id="{re.escape(element_id)}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no #{element_id} in the page"
    return html.unescape(match.group(2))


def flashes(page: str) -> list[tuple[str, str, str]]:
    """(category, role, text) of each flashed message."""
    return [
        (c, r, html.unescape(re.sub(r"<[^>]+>", "", t)).strip())
        for c, r, t in re.findall(r'<div class="flash (\w+)" role="(\w+)">(.*?)</div>', page, re.S)
    ]


def form_path(label: str, instrument: str = "PHQ-9") -> str:
    return f"{PARTICIPANTS}/{label}/assessments/new?instrument={instrument}"


def post_form(
    client: Any,
    label: str,
    items: dict[int, Any],
    *,
    assessed_on: str | None = None,
    instrument: str = "PHQ-9",
    follow: bool = False,
) -> Any:
    page = client.get(form_path(label, instrument))
    assert page.status_code == 200, page.get_data(as_text=True)
    data = {f"item_{n}": str(v) for n, v in items.items()}
    data["assessed_on"] = assessed_on if assessed_on is not None else TODAY.isoformat()
    data["csrf_token"] = csrf_token(page.get_data(as_text=True))
    return client.post(form_path(label, instrument), data=data, follow_redirects=follow)


CLEAN = {1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1, 8: 1, 9: 0, 10: 1}


def assert_redirects_to_participant(response: Any, label: str) -> None:
    assert response.status_code == 302, response.get_data(as_text=True)
    assert urlsplit(response.headers["Location"]).path == f"{PARTICIPANTS}/{label}"


# -- pages and access ------------------------------------------------------------------------------


def test_home_links_the_participant_list_for_roles_that_view_the_trial(
    people: dict[str, Principal], as_user: Any
) -> None:
    link = f'href="{PARTICIPANTS}"'
    assert link in as_user("cora").get("/").get_data(as_text=True)
    assert link in as_user("mona").get("/").get_data(as_text=True)
    assert link not in as_user("ada").get("/").get_data(as_text=True)


def test_the_list_is_site_scoped_searchable_and_filtered_by_status(
    people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    randomized = make_participant("LDS")
    enrolled = make_participant("LDS", randomize=False)
    other_site = make_participant("MAN")
    cora = as_user("cora")

    page = text_of(cora.get(PARTICIPANTS))
    assert randomized in page
    assert enrolled in page
    assert other_site not in page  # another site's participant is not listed

    page = text_of(cora.get(PARTICIPANTS, query_string={"status": "randomized"}))
    assert randomized in page
    assert enrolled not in page
    page = text_of(cora.get(PARTICIPANTS, query_string={"status": "enrolled"}))
    assert enrolled in page
    assert randomized not in page
    page = text_of(cora.get(PARTICIPANTS, query_string={"q": enrolled.lower()}))
    assert enrolled in page
    assert randomized not in page

    refused = cora.get(PARTICIPANTS, query_string={"status": "happy"})
    assert refused.status_code == 422
    assert "status" in text_of(refused)

    page = text_of(as_user("sam").get(PARTICIPANTS))  # trial-wide roles see every site
    assert all(label in page for label in (randomized, enrolled, other_site))
    assert as_user("ada").get(PARTICIPANTS).status_code == 403


def test_another_sites_participant_is_a_404_page_like_a_missing_one(
    people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    other_site = make_participant("MAN")
    cora = as_user("cora")
    for label in (other_site, "LDS-9999"):
        for path in (
            f"{PARTICIPANTS}/{label}",
            form_path(label),
            f"{PARTICIPANTS}/{label}/identifiers",
        ):
            response = cora.get(path)
            assert response.status_code == 404, path
            assert response.mimetype == "text/html"
    assert as_user("manny").get(f"{PARTICIPANTS}/{other_site}").status_code == 200


def test_anonymous_visitors_are_sent_to_sign_in(app: Any, people: dict[str, Principal]) -> None:
    response = app.test_client().get(PARTICIPANTS)
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/sign-in"


def test_the_participant_page_shows_schedule_dates_states_and_the_arm_to_unblinded_site_staff(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=40)
    randomized_on = TODAY - timedelta(days=40)
    page = as_user("cora").get(f"{PARTICIPANTS}/{label}")
    assert page.status_code == 200
    text = text_of(page)
    # Coordinators are not blinded by the example protocol: the arm is shown.
    assert element(text, "arm").strip() in ARMS
    schedule = element(page.get_data(as_text=True), "schedule")
    w04 = randomized_on + timedelta(days=28)
    w06_first, w06_last = randomized_on + timedelta(days=37), randomized_on + timedelta(days=47)
    assert w04.isoformat() in schedule
    assert f"{w06_first.isoformat()} to {w06_last.isoformat()}" in schedule
    row = re.search(r"<strong>W06</strong>.*?</tr>", schedule, re.S)
    assert row
    assert "PHQ-9: due" in row.group(0)
    assert "GAD-7: due" in row.group(0)
    row = re.search(r"<strong>W02</strong>.*?</tr>", schedule, re.S)
    assert row
    assert "PHQ-9: missed" in row.group(0)
    row = re.search(r"<strong>W08</strong>.*?</tr>", schedule, re.S)
    assert row
    assert "PHQ-9: upcoming" in row.group(0)
    assert f'href="{form_path(label)}"' in page.get_data(as_text=True)


@pytest.mark.parametrize("username", ["bea", "mona"])
def test_blinded_roles_see_no_arm_in_the_list_or_the_page(
    people: dict[str, Principal], as_user: Any, make_participant: Any, username: str
) -> None:
    label = make_participant("LDS")
    client = as_user(username)
    for path in (PARTICIPANTS, f"{PARTICIPANTS}/{label}"):
        response = client.get(path)
        assert response.status_code == 200
        no_arm_in(response.get_data(as_text=True))
    assert 'id="arm"' not in client.get(f"{PARTICIPANTS}/{label}").get_data(as_text=True)
    # ...whereas the unblinded statistician sees it
    page = as_user("ulf").get(f"{PARTICIPANTS}/{label}").get_data(as_text=True)
    assert element(page, "arm").strip() in ARMS


def test_only_site_staff_who_enter_data_get_the_form(
    people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    assert as_user("cora").get(form_path(label)).status_code == 200
    for username in ("cleo", "sam", "bea", "mona"):
        assert as_user(username).get(form_path(label)).status_code == 403, username
    assert as_user("cora").get(form_path(label, "BDI-II")).status_code == 422


# -- the form ------------------------------------------------------------------------------


def test_the_form_has_a_labelled_fieldset_per_item_and_carries_the_scoring_rule(
    people: dict[str, Principal], as_user: Any, make_participant: Any, app: Any
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    page = client.get(form_path(label)).get_data(as_text=True)
    for n in range(1, 11):
        fieldset = re.search(rf'<fieldset id="item-{n}"[^>]*>(.*?)</fieldset>', page, re.S)
        assert fieldset, f"no fieldset for item {n}"
        assert "<legend>" in fieldset.group(1)
        values = re.findall(rf'name="item_{n}" value="([^"]*)"', fieldset.group(1))
        assert values == ["0", "1", "2", "3", ""]  # 0-3 and an explicit "not answered"
        checked = re.findall(r'<input[^>]*value="([^"]*)" checked>', fieldset.group(1))
        assert checked == [""]  # nothing is answered for them: "not answered" is chosen
    assert "Not at all" in page
    assert "Nearly every day" in page
    assert "Extremely difficult" in element(page, "item-10")  # item 10 has its own answers
    data = json.loads(html.unescape(element(page, "scoring-rule")))
    expected = asdict(RULES["PHQ-9"])
    assert {k: data[k] for k in expected} == json.loads(json.dumps(expected))
    assert data["n_scored"] == 9
    assert 'src="/static/js/assessment-form.js"' in page
    with client.get("/static/js/assessment-form.js") as script:
        assert script.status_code == 200
        assert "javascript" in script.mimetype
        assert "scoring-rule" in script.get_data(as_text=True)
    assert element(page, "live-total").startswith("Not scorable: 0 of 9 items answered")

    gad = client.get(form_path(label, "GAD-7")).get_data(as_text=True)
    assert 'id="item-8"' not in gad
    assert json.loads(html.unescape(element(gad, "scoring-rule")))["min_answered"] == 6


def test_the_form_stores_a_phq9_and_shows_its_total_and_severity(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    response = post_form(client, label, {**CLEAN, 1: 3, 2: 2})
    assert_redirects_to_participant(response, label)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    messages = flashes(page)
    assert any(c == "success" and "Total 11 · moderate" in t for c, _r, t in messages), messages
    assert not any(c == "danger" for c, _r, _t in messages)
    session.expire_all()
    stored = session.scalars(
        select(Assessment).where(col(Assessment.participant_id) == participant_id(session, label))
    ).one()
    assert stored.item_1 == 3
    assert stored.item_9 == 0
    assert stored.item_10 == 1
    assert (stored.source, stored.entered_by, stored.assessed_on) == ("site", "cora", TODAY)
    row = element(page, f"assessment-{stored.id}")
    assert "11" in row
    assert "moderate" in row


@pytest.mark.parametrize(
    ("item", "value", "rule"),
    [
        (3, "4", "range"),
        (3, "-1", "range"),
        (3, "two", "int_type"),
        (9, "1.5", "int_type"),
        (10, "4", "range"),
    ],
)
def test_a_bad_item_is_shown_in_its_fieldset_and_nothing_is_stored(
    session: Session,
    people: dict[str, Principal],
    as_user: Any,
    make_participant: Any,
    item: int,
    value: str,
    rule: str,
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    before = counts(session)
    response = post_form(client, label, {**CLEAN, item: value})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    fieldset = element(page, f"item-{item}")
    beside = element(page, f"item-{item}-error")
    assert beside, fieldset
    assert f"items.{item}" not in beside  # beside its item, without the field's name
    assert f'data-rule="{rule}"' in fieldset
    assert "nothing was stored" in element(page, "form-errors")
    assert counts(session) == before


def test_a_missing_item_9_stays_missing_and_raises_its_safety_event(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    items: dict[int, Any] = {n: v for n, v in CLEAN.items() if n != 9}
    items[8] = ""  # the explicit "not answered" choice is missing too
    response = post_form(client, label, items)
    assert_redirects_to_participant(response, label)
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    session.expire_all()
    stored = session.scalars(
        select(Assessment).where(col(Assessment.participant_id) == participant_id(session, label))
    ).one()
    assert stored.item_9 is None
    assert stored.item_8 is None
    events = session.scalars(select(SafetyEvent).where(col(SafetyEvent.assessment_id) == stored.id)).all()
    assert [e.kind for e in events] == ["item9_missing"]
    alerts = [t for c, r, t in flashes(page) if c == "danger" and r == "alert"]
    assert alerts
    assert "the site's clinicians have been notified" in alerts[0]
    assert "Not scorable: 7 of 9 items answered" in page  # 7 of 9, but item 9 is required


def test_item_9_of_one_or_more_raises_an_event_and_notifies_the_sites_clinicians_in_the_request(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    response = post_form(client, label, {**CLEAN, 9: 2}, follow=True)
    assert response.status_code == 200
    alerts = [t for c, r, t in flashes(response.get_data(as_text=True)) if c == "danger" and r == "alert"]
    assert len(alerts) == 1
    assert alerts[0].lower().startswith("safety event raised")
    assert "the site's clinicians have been notified" in alerts[0]
    session.expire_all()
    event = session.scalars(
        select(SafetyEvent).where(col(SafetyEvent.participant_id) == participant_id(session, label))
    ).one()
    assert (event.kind, event.item9) == ("item9_positive", 2)
    notified = session.scalars(
        select(Notification).where(col(Notification.safety_event_id) == event.id)
    ).all()
    assert len(notified) == 1  # cleo, the LDS clinician
    assert "item9_positive" in notified[0].subject
    assert "Open safety events" in response.get_data(as_text=True)
    assert "PHQ-9 item 9" in element(response.get_data(as_text=True), "safety-events")


@pytest.mark.parametrize(
    ("when", "rule"),
    [
        ((TODAY + timedelta(days=2)).isoformat(), "not_future"),
        ((CONSENTED - timedelta(days=1)).isoformat(), "not_before_consent"),
        ("2026-13-45", "date_format"),
        ("yesterday", "date_format"),
        ("", "required"),
    ],
)
def test_a_bad_date_is_shown_beside_the_date_and_nothing_is_stored(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any, when: str, rule: str
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    before = counts(session)
    response = post_form(client, label, CLEAN, assessed_on=when)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    beside = element(page, "assessed_on-error")
    assert beside
    assert not beside.startswith("assessed_on")  # beside its field, without the field's name
    assert re.search(rf'id="assessed_on-error" data-rule="{rule}"', page)
    assert counts(session) == before
    # the valid items keep their answers and the server shows their total
    assert element(page, "live-total") == "Total 8 · mild"
    assert re.search(r'name="item_1" value="1" checked', page)


def test_a_bad_date_and_a_bad_item_are_both_shown(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    response = post_form(as_user("cora"), label, {**CLEAN, 2: "two"}, assessed_on="soon")
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert element(page, "assessed_on-error") == "'soon' is not a date (YYYY-MM-DD)"
    assert element(page, "item-2-error") == "must be an integer or null"


def test_a_duplicate_is_refused_with_409_and_nothing_is_stored(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    assert_redirects_to_participant(post_form(client, label, CLEAN), label)
    before = counts(session)
    response = post_form(client, label, {**CLEAN, 9: 3})
    assert response.status_code == 409
    assert "correct it" in element(response.get_data(as_text=True), "form-errors")
    assert counts(session) == before


def test_a_locked_database_refuses_the_form_and_stores_nothing(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    page = client.get(form_path(label))
    dblock.lock_database(CODE, reason="final data review", session=session, by=people["sponsor"])
    session.flush()
    before = counts(session)
    data = {f"item_{n}": str(v) for n, v in {**CLEAN, 9: 2}.items()}
    data.update(assessed_on=TODAY.isoformat(), csrf_token=csrf_token(page.get_data(as_text=True)))
    response = client.post(form_path(label), data=data)
    assert response.status_code == 409
    assert "locked" in element(response.get_data(as_text=True), "form-errors")
    assert counts(session) == before  # not even the item-9 safety event


def test_the_form_needs_its_csrf_token(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    before = counts(session)
    data = {f"item_{n}": str(v) for n, v in CLEAN.items()}
    for token in ({}, {"csrf_token": "x"}):
        response = client.post(form_path(label), data={**data, "assessed_on": TODAY.isoformat(), **token})
        # Refused by the form itself: shown again with the answers given and why it was refused.
        assert response.status_code == 422
        page = response.get_data(as_text=True)
        assert "the form has expired: reload the page and send it again" in page
        assert re.search(rf'name="item_1" value="{CLEAN[1]}"[^>]*checked', page), "answers kept"
    assert counts(session) == before


def test_writes_to_other_sites_or_by_other_roles_are_refused_and_store_nothing(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    other_site = make_participant("MAN")
    waiting = make_participant("LDS", randomize=False)
    cora, cleo = as_user("cora"), as_user("cleo")
    token = csrf_token(cora.get("/account").get_data(as_text=True))
    before = counts(session)
    data = {**{f"item_{n}": str(v) for n, v in CLEAN.items()}, "assessed_on": TODAY.isoformat()}
    assert cora.post(form_path(other_site), data={**data, "csrf_token": token}).status_code == 404
    assert cora.post(form_path("LDS-9999"), data={**data, "csrf_token": token}).status_code == 404
    response = cora.post(form_path(waiting), data={**data, "csrf_token": token})
    assert response.status_code == 409
    assert "not randomized" in element(response.get_data(as_text=True), "form-errors")
    token = csrf_token(cleo.get("/account").get_data(as_text=True))
    assert cleo.post(form_path(waiting), data={**data, "csrf_token": token}).status_code == 403
    assert counts(session) == before


# -- corrections -------------------------------------------------------------------------------


def test_a_correction_needs_a_reason_and_keeps_the_old_value_on_the_audit_trail(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    assert_redirects_to_participant(post_form(client, label, CLEAN), label)
    session.expire_all()
    stored = session.scalars(
        select(Assessment).where(col(Assessment.participant_id) == participant_id(session, label))
    ).one()
    path = f"/trials/{CODE}/assessments/{stored.id}/edit"
    page = client.get(path)
    assert page.status_code == 200
    assert re.search(r'name="item_3" value="1" checked', page.get_data(as_text=True))
    data = {f"item_{n}": str(v) for n, v in {**CLEAN, 3: 2}.items()}
    data["csrf_token"] = csrf_token(page.get_data(as_text=True))

    before = counts(session)
    refused = client.post(path, data={**data, "reason": "  "})
    assert refused.status_code == 422
    assert "reason" in element(refused.get_data(as_text=True), "reason-error")
    refused = client.post(path, data={**data, "item_4": "7", "reason": "typo"})
    assert refused.status_code == 422
    assert element(refused.get_data(as_text=True), "item-4-error") == "7 is outside 0-3"
    assert counts(session) == before

    response = client.post(path, data={**data, "reason": "transcription error on the paper form"})
    assert_redirects_to_participant(response, label)
    session.expire_all()
    assert session.get(Assessment, stored.id).item_3 == 2  # type: ignore[union-attr]
    entry = session.scalars(
        select(AuditEntry)
        .where(col(AuditEntry.record_id) == str(stored.id), col(AuditEntry.field) == "item_3")
        .where(col(AuditEntry.action) == "update")
    ).one()
    assert (entry.old_value, entry.new_value) == ("1", "2")
    assert entry.reason == "transcription error on the paper form"
    assert entry.username == "cora"
    assert entry.channel == "web"
    assert as_user("cleo").get(path).status_code == 403
    assert as_user("manny").get(path).status_code == 404


def test_a_correction_that_reveals_item_9_raises_the_alert(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    post_form(client, label, CLEAN)
    session.expire_all()
    stored = session.scalars(
        select(Assessment).where(col(Assessment.participant_id) == participant_id(session, label))
    ).one()
    path = f"/trials/{CODE}/assessments/{stored.id}/edit"
    data = {f"item_{n}": str(v) for n, v in {**CLEAN, 9: 1}.items()}
    data["csrf_token"] = csrf_token(client.get(path).get_data(as_text=True))
    response = client.post(path, data={**data, "reason": "item 9 misread"}, follow_redirects=True)
    alerts = [t for c, _r, t in flashes(response.get_data(as_text=True)) if c == "danger"]
    assert len(alerts) == 1
    assert "the site's clinicians have been notified" in alerts[0]


def test_an_out_of_window_date_opens_a_data_query_shown_on_the_page(
    session: Session, people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS", randomized_days_ago=40)
    client = as_user("cora")
    day_20 = (TODAY - timedelta(days=40) + timedelta(days=20)).isoformat()  # between W02 and W04
    response = post_form(client, label, CLEAN, assessed_on=day_20, follow=True)
    page = response.get_data(as_text=True)
    assert any("out of window" in t for _c, _r, t in flashes(page))
    session.expire_all()
    query = session.scalars(
        select(DataQuery).where(col(DataQuery.participant_id) == participant_id(session, label))
    ).one()
    assert query.rule == "out_of_window"
    assert query.message in text_of(response)


# -- the live total ------------------------------------------------------------------------------

SCRIPT = Path(__file__).resolve().parents[2] / "trials" / "static" / "js" / "assessment-form.js"


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")
def test_the_scripts_live_total_equals_the_servers_for_every_kind_of_answer_set() -> None:
    """Runs the script's scoring with Node.js over systematic answer sets of each instrument
    and compares it with analysis.scoring and the words the server shows."""
    from trials.assessments.views import rule_data, score_text

    cases = []
    for code, rule in RULES.items():
        patterns = []
        for missing in range(rule.n_items + 1):
            for start in range(4):
                answers: dict[int, int | None] = {n: (n * 7 + start) % 4 for n in range(1, rule.n_items + 1)}
                for n in range(1, missing + 1):
                    answers[(n * 5 + start) % rule.n_items + 1] = None
                patterns.append(answers)
        patterns.append(dict.fromkeys(range(1, rule.n_items + 1), 3))
        patterns.append({**dict.fromkeys(range(1, rule.n_items + 1), 3), 2: None})
        for answers in patterns:
            result = prorated_total(answers, rule)
            cases.append(
                {
                    "code": code,
                    "answers": {str(k): v for k, v in answers.items()},
                    "expected": {
                        "total": result.total,
                        "prorated": result.prorated,
                        "items_answered": result.items_answered,
                        "severity": result.severity,
                    },
                    "text": score_text(result, rule),
                }
            )
    rules = {code: rule_data(rule) for code, rule in RULES.items()}
    program = f"""
const {{ score, describe }} = require({json.dumps(str(SCRIPT))});
const rules = {json.dumps(rules)};
const cases = {json.dumps(cases)};
const out = cases.map(c => {{
  const r = score(rules[c.code], c.answers);
  return {{ result: r, text: describe(rules[c.code], r) }};
}});
process.stdout.write(JSON.stringify(out));
"""
    ran = subprocess.run(["node", "-e", program], capture_output=True, text=True, timeout=60, check=True)
    results = json.loads(ran.stdout)
    assert len(results) == len(cases) > 100
    for case, got in zip(cases, results, strict=True):
        assert got["result"] == case["expected"], case
        assert got["text"] == case["text"], case


def test_assessment_ids_in_urls_must_be_uuids(people: dict[str, Principal], as_user: Any) -> None:
    client = as_user("cora")
    assert client.get(f"/trials/{CODE}/assessments/not-a-uuid/edit").status_code == 404
    assert client.get(f"/trials/{CODE}/assessments/{uuid.uuid4()}/edit").status_code == 404


def test_the_visit_due_today_is_shown_on_the_page_and_the_form(
    people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    client = as_user("cora")
    label = make_participant("LDS", randomized_days_ago=40)  # day 40: W06's window (37-47) is open
    closes = (TODAY + timedelta(days=7)).isoformat()
    page = text_of(client.get(f"{PARTICIPANTS}/{label}"))
    due = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", element(page, "due-now"))).strip()
    assert due == f"Due now: W06 PHQ-9 (window closes {closes}), W06 GAD-7 (window closes {closes})"
    assert ">PHQ-9 (due)</a>" in page
    form = text_of(client.get(form_path(label)))
    assert "Today falls in W06 Week 6" in re.sub(r"<[^>]+>", "", element(form, "visit-due"))
    # Randomized 20 days ago: between W02 (11-17) and W04 (23-33), nothing is due.
    waiting = make_participant("LDS", randomized_days_ago=20)
    page = text_of(client.get(f"{PARTICIPANTS}/{waiting}"))
    opens = (TODAY + timedelta(days=3)).isoformat()
    assert f"next: W04 Week 4, window {opens}" in re.sub(r"<[^>]+>", "", element(page, "due-now"))
    form = text_of(client.get(form_path(waiting)))
    assert f"the next, W04 Week 4, opens {opens}" in re.sub(r"<[^>]+>", "", element(form, "visit-due"))
