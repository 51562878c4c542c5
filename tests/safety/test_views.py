"""The safety events page and the clinician's follow-up form: site scoping, overdue first, the
follow-up stored through the service with its audit entry, bad input that stores nothing, and
the roles refused."""

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from tests.assessments.conftest import CODE, counts, make_participant, phq9
from tests.conftest import csrf_token, set_up_example_trial, sign_in
from trials.assessments import services as assessments
from trials.assessments.models import AssessmentCreate
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.safety.models import SafetyEvent

__all__ = ["make_participant"]

EVENTS = f"/trials/{CODE}/safety-events"
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "man": "manny:coordinator:TRIAL:MAN",
    "clin_lds": "cleo:clinician:TRIAL:LDS",
    "clin_man": "max:clinician:TRIAL:MAN",
    "monitor": "mona:monitor:TRIAL",
    "admin": "ada:admin",
}


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    return set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x05" * 32)


@pytest.fixture
def as_user(app: Any) -> Any:
    def make(username: str) -> Any:
        client = app.test_client()
        assert sign_in(client, username).status_code == 302
        return client

    return make


def text_of(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def raise_event(
    session: Session, people: dict[str, Principal], label: str, *, item9: int = 2, overdue: bool = False
) -> SafetyEvent:
    """A PHQ-9 with item 9 = `item9` entered for `label` (an LDS participant), and its event."""
    by = people["lds"] if label.startswith("LDS") else people["man"]
    data = AssessmentCreate.model_validate(
        {
            "instrument": "PHQ-9",
            "assessed_on": (datetime.now(UTC).date() - timedelta(days=40)).isoformat(),
            "items": phq9(1, 1, 1, 1, 1, 1, 1, 1, item9),
        }
    )
    _assessment, events = assessments.submit(
        CODE, label, data, session=session, by=by, today=datetime.now(UTC).date()
    )
    (event,) = events
    if overdue:
        with audit.reason(session, "test: the follow-up deadline lies in the past"):
            event.due_at = datetime.now(UTC) - timedelta(hours=1)
            session.add(event)
    session.flush()
    return event


def test_the_list_shows_overdue_first_and_site_staff_only_their_site(
    session: Session, people: dict[str, Principal], make_participant: Any, as_user: Any
) -> None:
    lds_open = raise_event(session, people, make_participant("LDS"))
    lds_overdue = raise_event(session, people, make_participant("LDS"), overdue=True)
    man = raise_event(session, people, make_participant("MAN"))

    page = text_of(as_user("cora").get(EVENTS))
    assert str(lds_open.id) in page
    assert str(lds_overdue.id) in page
    assert str(man.id) not in page  # another site's event
    assert page.index(str(lds_overdue.id)) < page.index(str(lds_open.id))  # overdue first
    assert "OVERDUE" in page
    assert "1 overdue" in page
    assert "Record follow-up" not in page  # a coordinator does not follow up

    sponsor_page = text_of(as_user("sam").get(EVENTS))
    assert all(str(e.id) in sponsor_page for e in (lds_open, lds_overdue, man))
    assert "Record follow-up" not in sponsor_page

    clinician_page = text_of(as_user("cleo").get(EVENTS))
    assert f"{EVENTS}/{lds_open.id}/follow-up" in clinician_page
    assert str(man.id) not in clinician_page

    only_overdue = text_of(as_user("sam").get(f"{EVENTS}?show=overdue"))
    assert str(lds_overdue.id) in only_overdue
    assert str(lds_open.id) not in only_overdue


def test_home_and_participant_page_link_the_safety_events(
    session: Session, people: dict[str, Principal], make_participant: Any, as_user: Any
) -> None:
    label = make_participant("LDS")
    raise_event(session, people, label)
    client = as_user("cleo")
    assert f'href="{EVENTS}"' in client.get("/").get_data(as_text=True)
    page = text_of(client.get(f"/trials/{CODE}/participants/{label}"))
    assert f'href="{EVENTS}?participant={label}"' in page
    assert "1 open" in page
    filtered = text_of(client.get(f"{EVENTS}?participant={label}"))
    assert f"safety events of {label}" in filtered


def test_a_clinician_records_the_follow_up_through_the_service_with_its_audit_entry(
    session: Session, people: dict[str, Principal], make_participant: Any, as_user: Any
) -> None:
    event = raise_event(session, people, make_participant("LDS"), overdue=True)
    client = as_user("cleo")
    path = f"{EVENTS}/{event.id}/follow-up"
    form = client.get(path)
    assert form.status_code == 200
    assert "item 9 = 2" in text_of(form)
    assert "OVERDUE" in text_of(form)
    for name in ("risk_assessment_done", "referral", "notes"):
        assert f'name="{name}"' in form.get_data(as_text=True)
    response = client.post(
        path,
        data={
            "csrf_token": csrf_token(form.get_data(as_text=True)),
            "risk_assessment_done": "yes",
            "referral": "GP, same day",
            "notes": "Called the participant; safety plan agreed",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    session.expire_all()
    stored = session.get(SafetyEvent, event.id)
    assert stored is not None
    assert (stored.status, stored.risk_assessment_done, stored.referral, stored.followed_up_by) == (
        "closed",
        True,
        "GP, same day",
        "cleo",
    )
    entry = session.scalars(
        select(AuditEntry).where(
            col(AuditEntry.table_name) == "safety_event",
            col(AuditEntry.record_id) == str(event.id),
            col(AuditEntry.field) == "status",
            col(AuditEntry.username) == "cleo",
        )
    ).one()
    assert (entry.username, entry.role, entry.new_value) == ("cleo", "clinician", '"closed"')
    assert entry.reason == "Called the participant; safety plan agreed"
    listed = text_of(client.get(EVENTS))
    assert "closed" in listed
    assert "referral: GP, same day" in listed
    # A second follow-up of the closed event is refused and changes nothing.
    again = client.get(path)
    assert "This event is closed" in text_of(again)
    assert "follow-up-form" not in text_of(again)


def test_a_follow_up_without_the_risk_assessment_answer_shows_the_field_error_and_stores_nothing(
    session: Session, people: dict[str, Principal], make_participant: Any, as_user: Any
) -> None:
    event = raise_event(session, people, make_participant("LDS"))
    client = as_user("cleo")
    path = f"{EVENTS}/{event.id}/follow-up"
    form = client.get(path)
    before = counts(session)
    response = client.post(
        path,
        data={"csrf_token": csrf_token(form.get_data(as_text=True)), "referral": "x" * 2001},
    )
    assert response.status_code == 422
    page = text_of(response)
    assert "Not saved: nothing was stored" in page
    assert re.search(r'id="risk_assessment_done-error">say whether a risk assessment was done<', page)
    assert re.search(r'id="referral-error">[^<]*2000', page)
    assert counts(session) == before
    session.expire_all()
    stored = session.get(SafetyEvent, event.id)
    assert stored is not None
    assert stored.status == "open"


@pytest.mark.parametrize(
    ("username", "status"),
    [("cora", 403), ("sam", 403), ("mona", 403), ("max", 404), ("ada", 403)],
)
def test_only_a_clinician_of_the_events_site_gets_the_follow_up_form(
    session: Session,
    people: dict[str, Principal],
    make_participant: Any,
    as_user: Any,
    username: str,
    status: int,
) -> None:
    event = raise_event(session, people, make_participant("LDS"))
    client = as_user(username)
    path = f"{EVENTS}/{event.id}/follow-up"
    assert client.get(path).status_code == status
    token = csrf_token(client.get("/account").get_data(as_text=True))
    before = counts(session)
    assert client.post(path, data={"csrf_token": token, "risk_assessment_done": "yes"}).status_code == status
    assert counts(session) == before


def test_the_admin_without_a_trial_role_may_not_see_the_list(
    people: dict[str, Principal], as_user: Any
) -> None:
    assert as_user("ada").get(EVENTS).status_code == 403
    assert f'href="{EVENTS}"' not in as_user("ada").get("/").get_data(as_text=True)


def test_an_unknown_event_is_not_found(people: dict[str, Principal], as_user: Any) -> None:
    assert as_user("cleo").get(f"{EVENTS}/00000000-0000-0000-0000-000000000000/follow-up").status_code == 404


def test_an_unknown_filter_is_refused_with_its_field(people: dict[str, Principal], as_user: Any) -> None:
    assert as_user("cleo").get(f"{EVENTS}?show=bogus").status_code == 422
