"""The adverse event and disposition forms and the participant page's lists of them: stored
through the events services with their audit entries, bad input shown beside its field with
nothing stored, and refused to roles and sites that may not record them."""

import html
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from tests.assessments.conftest import CODE, TODAY
from tests.conftest import csrf_token, sign_in
from tests.events.conftest import make_participant, no_arm_in, stored
from trials.core.accounts.permissions import Principal
from trials.core.audit.models import AuditEntry
from trials.events.models import AdverseEvent, DispositionEvent
from trials.participants.models import Participant
from trials.safety.models import Notification

__all__ = ["make_participant"]

PARTICIPANTS = f"/trials/{CODE}/participants"


@pytest.fixture
def as_user(app: Any, people: dict[str, Principal]) -> Any:
    def make(username: str) -> Any:
        client = app.test_client()
        response = sign_in(client, username)
        assert response.status_code == 302, response.get_data(as_text=True)
        return client

    return make


def text_of(response: Any) -> str:
    return html.unescape(response.get_data(as_text=True))


def field_error(page: str, name: str) -> str:
    match = re.search(rf'<small class="field-error" id="{name}-error">(.*?)</small>', page, re.S)
    assert match, f"no error beside {name}"
    return html.unescape(match.group(1))


def ae_path(label: str) -> str:
    return f"{PARTICIPANTS}/{label}/adverse-events/new"


def ds_path(label: str) -> str:
    return f"{PARTICIPANTS}/{label}/disposition-events/new"


def send(client: Any, path: str, data: dict[str, Any]) -> Any:
    token = csrf_token(client.get(path).get_data(as_text=True))
    return client.post(path, data={**data, "csrf_token": token})


def ae(**changes: Any) -> dict[str, Any]:
    data = {
        "term": "Headache",
        "onset_date": (TODAY - timedelta(days=5)).isoformat(),
        "end_date": (TODAY - timedelta(days=3)).isoformat(),
        "severity": "mild",
        "relatedness": "unlikely",
        "action": "none",
        "outcome": "recovered_resolved",
    }
    return {k: v for k, v in {**data, **changes}.items() if v is not None}


def audited(session: Session, table: str, record_id: Any) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.table_name == table, AuditEntry.record_id == str(record_id))
        ).all()
    )


def assert_back_to_page(response: Any, label: str) -> None:
    assert response.status_code == 302, response.get_data(as_text=True)
    assert urlsplit(response.headers["Location"]).path == f"{PARTICIPANTS}/{label}"


# -- adverse events ------------------------------------------------------------------------------


def test_the_adverse_event_form_is_for_the_sites_coordinators_and_clinicians(
    people: dict[str, Principal], as_user: Any, make_participant: Any
) -> None:
    label = make_participant("LDS")
    for username in ("cora", "cleo"):
        page = text_of(as_user(username).get(ae_path(label)))
        for name in (
            "term",
            "onset_date",
            "end_date",
            "serious",
            "severity",
            "relatedness",
            "action",
            "outcome",
        ):
            assert f'<label for="{name}">' in page, name
        assert re.search(rf'id="onset_date"[^>]*value="{TODAY.isoformat()}"', page)
        assert page.count('name="serious_criteria"') == 6
        assert "<legend>Serious because" in page
        participant_page = as_user(username).get(f"{PARTICIPANTS}/{label}").get_data(as_text=True)
        assert f'href="{ae_path(label)}"' in participant_page
        assert f'href="{ds_path(label)}"' in participant_page
    for username in ("moe", "bea", "sam", "una"):
        client = as_user(username)
        assert client.get(ae_path(label)).status_code == 403, username
        assert client.get(ds_path(label)).status_code == 403, username
        assert f'href="{ae_path(label)}"' not in client.get(f"{PARTICIPANTS}/{label}").get_data(as_text=True)
    for username in ("manny", "max"):
        assert as_user(username).get(ae_path(label)).status_code == 404, username


def test_an_adverse_event_is_recorded_with_its_audit_entry_and_listed(
    people: dict[str, Principal], as_user: Any, make_participant: Any, session: Session
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    response = send(client, ae_path(label), ae())
    assert_back_to_page(response, label)
    row = session.scalars(select(AdverseEvent)).one()
    assert (row.term, row.serious, row.severity, row.reported_by) == ("Headache", False, "mild", "cora")
    assert row.end_date == TODAY - timedelta(days=3)
    assert {e.username for e in audited(session, "adverse_event", row.id)} == {"cora"}
    page = text_of(client.get(f"{PARTICIPANTS}/{label}"))
    assert f"Adverse event “Headache” recorded for {label}." in page
    section = re.search(r'<section id="adverse-events".*?</section>', page, re.S)
    assert section
    assert "Headache" in section.group(0)
    assert "recovered / resolved" in section.group(0)


def test_a_serious_adverse_event_notifies_the_sponsors(
    people: dict[str, Principal], as_user: Any, make_participant: Any, session: Session
) -> None:
    label = make_participant("LDS")
    client = as_user("cleo")
    response = send(
        client,
        ae_path(label),
        ae(
            term="Hospitalised for suicidal ideation",
            end_date=None,
            serious="y",
            serious_criteria=["hospitalization", "other_medically_important"],
            severity="severe",
            relatedness="not_related",
            action="app_use_interrupted",
            outcome="recovering_resolving",
        ),
    )
    assert_back_to_page(response, label)
    row = session.scalars(select(AdverseEvent)).one()
    assert row.serious
    assert row.criteria() == ["hospitalization", "other_medically_important"]
    recipients = set(
        session.scalars(
            select(Notification.user_id).where(col(Notification.adverse_event_id) == row.id)
        ).all()
    )
    assert len(recipients) == 2  # both sponsors
    page = text_of(client.get(f"{PARTICIPANTS}/{label}"))
    assert "The trial's sponsors have been notified." in page
    assert "hospitalization, other medically important" in page
    section = re.search(r'<section id="adverse-events".*?</section>', page, re.S)
    assert section
    no_arm_in(section.group(0))  # the event carries no arm


def test_bad_adverse_event_input_shows_errors_beside_the_fields_and_stores_nothing(
    people: dict[str, Principal], as_user: Any, make_participant: Any, session: Session
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    before = stored(session)
    response = send(
        client,
        ae_path(label),
        ae(
            term="   ",
            serious="y",
            end_date=(TODAY - timedelta(days=9)).isoformat(),
            severity="",
        ),
    )
    assert response.status_code == 422
    page = text_of(response)
    assert "Not saved: nothing was stored." in page
    assert field_error(page, "term")
    assert not field_error(page, "term").startswith("term:")  # beside the field, no field name
    assert field_error(page, "severity")
    assert not field_error(page, "severity").startswith("severity:")  # beside the field, no field name
    assert stored(session) == before
    # the service's rules, all at once, beside their fields
    response = send(client, ae_path(label), ae(serious="y", end_date=(TODAY - timedelta(days=9)).isoformat()))
    assert response.status_code == 422
    page = text_of(response)
    assert "at least one criterion" in field_error(page, "serious_criteria")
    assert "before the onset date" in field_error(page, "end_date")
    assert 'value="Headache"' in response.get_data(as_text=True)  # what was typed is kept
    response = send(
        client, ae_path(label), ae(onset_date=(TODAY + timedelta(days=1)).isoformat(), end_date=None)
    )
    assert response.status_code == 422
    assert "in the future" in field_error(text_of(response), "onset_date")
    assert stored(session) == before


def test_adverse_events_are_refused_for_another_site_and_roles_that_do_not_record(
    people: dict[str, Principal], as_user: Any, make_participant: Any, session: Session
) -> None:
    label = make_participant("LDS")
    clients = {name: as_user(name) for name in ("moe", "sam", "manny")}
    before = stored(session)
    assert send(clients["moe"], f"{PARTICIPANTS}/{label}", ae()).status_code == 405  # the page is not a form
    token = csrf_token(clients["moe"].get(PARTICIPANTS).get_data(as_text=True))
    assert clients["moe"].post(ae_path(label), data={**ae(), "csrf_token": token}).status_code == 403
    token = csrf_token(clients["sam"].get(PARTICIPANTS).get_data(as_text=True))
    assert clients["sam"].post(ae_path(label), data={**ae(), "csrf_token": token}).status_code == 403
    token = csrf_token(clients["manny"].get(PARTICIPANTS).get_data(as_text=True))
    assert clients["manny"].post(ae_path(label), data={**ae(), "csrf_token": token}).status_code == 404
    assert stored(session) == before


def test_the_forms_do_not_open_for_a_participant_not_enrolled(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    from trials.participants import services as participants
    from trials.participants.models import ScreeningCreate

    data = ScreeningCreate.model_validate(
        {
            "site_code": "LDS",
            "screened_on": TODAY.isoformat(),
            "age_years": 30,
            "screening_phq9": 12,
            "inclusion_met": True,
            "exclusion_present": False,
        }
    )
    label = participants.screen(CODE, data, session=session, by=people["lds"], today=TODAY).label
    session.flush()
    client = as_user("cora")
    for path in (ae_path(label), ds_path(label)):
        response = client.get(path)
        assert response.status_code == 409, path
        assert f"{label} is not enrolled" in text_of(response)
        assert '<label for="onset_date">' not in text_of(response)
        assert '<label for="event_date">' not in text_of(response)
    assert f'href="{ae_path(label)}"' not in client.get(f"{PARTICIPANTS}/{label}").get_data(as_text=True)


def test_a_form_without_its_csrf_token_stores_nothing(
    people: dict[str, Principal], as_user: Any, make_participant: Any, session: Session
) -> None:
    label = make_participant("LDS")
    randomize = f"{PARTICIPANTS}/{make_participant('LDS', randomize=False)}/randomize"
    client = as_user("cora")
    before = stored(session)
    for token in (None, "an-expired-or-forged-token"):
        data = ae(term="Nausea after the evening module") | ({"csrf_token": token} if token else {})
        response = client.post(ae_path(label), data=data)
        # The form checks its own token: it comes back with what was typed and says it expired.
        assert response.status_code == 422
        page = text_of(response)
        assert "the form has expired: reload the page and send it again" in page
        assert 'value="Nausea after the evening module"' in page
        assert 'value="mild" selected' in page or re.search(r'<option selected value="mild"', page)
        assert stored(session) == before
    # A form that does not check its own token is still refused before its view (the global check).
    assert client.post(randomize, data={"confirm": "y"}).status_code == 400
    assert stored(session) == before


# -- disposition and intercurrent events --------------------------------------------------------------


def test_disposition_and_intercurrent_events_are_recorded_and_listed(
    people: dict[str, Principal], as_user: Any, make_participant: Any, session: Session
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    page = text_of(client.get(ds_path(label)))
    for name in ("kind", "event_date", "reason", "other_treatment"):
        assert f'<label for="{name}">' in page, name
    assert re.search(rf'id="event_date"[^>]*value="{TODAY.isoformat()}"', page)
    when = (TODAY - timedelta(days=10)).isoformat()
    response = send(
        client,
        ds_path(label),
        {
            "kind": "started_other_treatment",
            "event_date": when,
            "reason": "GP prescribed sertraline",
            "other_treatment": "antidepressant",
        },
    )
    assert_back_to_page(response, label)
    response = send(
        client,
        ds_path(label),
        {
            "kind": "withdrawal_by_subject",
            "event_date": TODAY.isoformat(),
            "reason": "No longer wishes to take part",
        },
    )
    assert_back_to_page(response, label)
    rows = session.scalars(select(DispositionEvent).order_by(col(DispositionEvent.event_date))).all()
    assert [(r.kind, r.other_treatment, r.recorded_by) for r in rows] == [
        ("started_other_treatment", "antidepressant", "cora"),
        ("withdrawal_by_subject", None, "cora"),
    ]
    for row in rows:
        assert audited(session, "disposition_event", row.id)
    page = text_of(client.get(f"{PARTICIPANTS}/{label}"))
    assert "Withdrawal by the participant recorded" in page
    section = re.search(r'<section id="disposition".*?</section>', page, re.S)
    assert section
    assert "started another treatment" in section.group(0)
    assert "end of study" in section.group(0)
    # the blinded statistician sees the list, no arm and no link to record
    bea_page = as_user("bea").get(f"{PARTICIPANTS}/{label}").get_data(as_text=True)
    assert "GP prescribed sertraline" in bea_page
    assert f'href="{ds_path(label)}"' not in bea_page
    no_arm_in(re.sub(r"<input[^>]*csrf_token[^>]*>", "", bea_page))


def test_bad_disposition_input_shows_errors_beside_the_fields_and_stores_nothing(
    people: dict[str, Principal], as_user: Any, make_participant: Any, session: Session
) -> None:
    label = make_participant("LDS")
    client = as_user("cora")
    before = stored(session)
    response = send(
        client,
        ds_path(label),
        {"kind": "changed_other_treatment", "event_date": TODAY.isoformat(), "reason": "dose changed"},
    )
    assert response.status_code == 422
    assert "antidepressant or psychotherapy" in field_error(text_of(response), "other_treatment")
    response = send(client, ds_path(label), {"kind": "", "event_date": "", "reason": ""})
    assert response.status_code == 422
    page = text_of(response)
    for name in ("kind", "event_date", "reason"):
        assert field_error(page, name)
        assert not field_error(page, name).startswith(f"{name}:")
    response = send(
        client,
        ds_path(label),
        {"kind": "stopped_app_use", "reason": "x", "event_date": (TODAY - timedelta(days=300)).isoformat()},
    )
    assert response.status_code == 422
    assert "before the consent date" in field_error(text_of(response), "event_date")
    assert stored(session) == before


def test_disposition_is_refused_for_another_site_and_roles_that_do_not_record(
    people: dict[str, Principal], as_user: Any, make_participant: Any, session: Session
) -> None:
    label = make_participant("LDS")
    clients = {name: as_user(name) for name in ("moe", "bea", "manny")}
    before = stored(session)
    data = {"kind": "stopped_app_use", "event_date": TODAY.isoformat(), "reason": "stopped"}
    for name, status in (("moe", 403), ("bea", 403), ("manny", 404)):
        token = csrf_token(clients[name].get(PARTICIPANTS).get_data(as_text=True))
        assert clients[name].post(ds_path(label), data={**data, "csrf_token": token}).status_code == status, (
            name
        )
    assert stored(session) == before


def test_an_adverse_event_arising_from_a_safety_event_is_linked_from_its_follow_up(
    people: dict[str, Principal], as_user: Any, make_participant: Any, session: Session
) -> None:
    from tests.assessments.conftest import phq9
    from trials.assessments import services as assessments
    from trials.assessments.models import AssessmentCreate
    from trials.safety.models import SafetyEvent

    labels = [make_participant("LDS"), make_participant("LDS")]
    for label in labels:
        data = AssessmentCreate.model_validate(
            {
                "instrument": "PHQ-9",
                "assessed_on": TODAY.isoformat(),
                "items": phq9(1, 1, 1, 1, 1, 1, 1, 1, 2),
            }
        )
        assessments.submit(CODE, label, data, session=session, by=people["lds"], today=TODAY)
    session.flush()
    event, other = (
        session.scalars(
            select(SafetyEvent).join_from(SafetyEvent, Participant).where(Participant.label == label)
        ).one()
        for label in labels
    )
    client = as_user("cleo")
    follow_up = text_of(client.get(f"/trials/{CODE}/safety-events/{event.id}/follow-up"))
    link = html.unescape(re.search(r'<a href="([^"]+)" id="record-ae">', follow_up).group(1))
    assert urlsplit(link).path == ae_path(labels[0])
    form = text_of(client.get(link))
    assert re.search(rf'<option selected value="{event.id}">', form), "the event is chosen already"
    assert str(other.id) not in form  # only the participant's own events are offered
    before = stored(session)
    # Another participant's safety event is refused beside the field, and nothing is stored.
    response = send(client, link, ae(term="Low mood", safety_event_id=str(other.id)))
    assert response.status_code == 422
    assert f"is not a safety event of {labels[0]}" in field_error(text_of(response), "safety_event_id")
    assert stored(session) == before
    response = send(client, link, ae(term="Low mood", safety_event_id=str(event.id)))
    assert_back_to_page(response, labels[0])
    row = session.scalars(select(AdverseEvent).where(AdverseEvent.term == "Low mood")).one()
    assert row.safety_event_id == event.id
    page = text_of(client.get(f"{PARTICIPANTS}/{labels[0]}"))
    assert "Low mood (arising from a safety event)" in re.sub(r"<[^>]+>", "", page)
