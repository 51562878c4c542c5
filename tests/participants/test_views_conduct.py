"""The coordinator's conduct pages: screening on the participant list, enrolment and
randomization on the participant page. Each form stores through the service with its audit
entry; bad input shows the error beside its field and stores nothing; roles that may not act
are refused (403, or 404 for another site's participant)."""

import html
import re
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from protocols import services as protocols
from protocols.document import example_protocol_path
from tests.assessments.conftest import ARMS, CODE, TODAY
from tests.conftest import PASSWORD, csrf_token, set_up_example_trial, sign_in
from trials.core.accounts import services as accounts
from trials.core.accounts.permissions import Principal
from trials.core.audit.models import AuditEntry
from trials.participants import services as participants
from trials.participants.models import Participant, ScreeningCreate
from trials.randomization import services as randomization
from trials.randomization.models import AllocationSlot

PARTICIPANTS = f"/trials/{CODE}/participants"
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "man": "manny:coordinator:TRIAL:MAN",
    "clin_lds": "cleo:clinician:TRIAL:LDS",
    "blinded": "bea:statistician_blinded:TRIAL",
    "monitor": "mona:monitor:TRIAL",
}


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    return set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x05" * 32)


@pytest.fixture
def as_user(app: Any) -> Any:
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


def stored(session: Session) -> dict[str, int]:
    session.expire_all()
    return {
        "participants": int(session.scalar(select(func.count()).select_from(Participant)) or 0),
        "slots used": int(
            session.scalar(
                select(func.count())
                .select_from(AllocationSlot)
                .where(col(AllocationSlot.participant_id).is_not(None))
            )
            or 0
        ),
        "audit": int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0),
    }


def screened(session: Session, by: Principal, site: str = "LDS", *, enrol: bool = False) -> str:
    data = ScreeningCreate.model_validate(
        {
            "site_code": site,
            "screened_on": TODAY - timedelta(days=3),
            "age_years": 30,
            "screening_phq9": 12,
            "inclusion_met": True,
            "exclusion_present": False,
        }
    )
    label = participants.screen(CODE, data, session=session, by=by, today=TODAY).label
    if enrol:
        participants.enrol(CODE, label, TODAY - timedelta(days=2), session=session, by=by, today=TODAY)
    session.flush()
    return label


def post(client: Any, page_path: str, action: str, data: dict[str, str]) -> Any:
    token = csrf_token(client.get(page_path).get_data(as_text=True))
    return client.post(action, data={**data, "csrf_token": token})


def screening(**overrides: str) -> dict[str, str]:
    data = {
        "site_code": "LDS",
        "screened_on": TODAY.isoformat(),
        "age_years": "34",
        "screening_phq9": "14",
        "inclusion_met": "y",
    }
    return {**data, **overrides}


def audit_rows(session: Session, table: str, record_id: Any) -> list[AuditEntry]:
    return list(
        session.scalars(
            select(AuditEntry).where(AuditEntry.table_name == table, AuditEntry.record_id == str(record_id))
        ).all()
    )


# -- screening ----------------------------------------------------------------------------------


def test_the_list_offers_screening_at_the_coordinators_sites_with_todays_date(
    people: dict[str, Principal], as_user: Any
) -> None:
    page = text_of(as_user("cora").get(PARTICIPANTS))
    assert "Screen a participant" in page
    form = re.search(r'<form[^>]*id="screen-form".*?</form>', page, re.S)
    assert form
    assert re.findall(r'<option[^>]*value="([^"]+)"', form.group(0)) == ["LDS"]
    assert re.search(rf'id="screened_on"[^>]*value="{TODAY.isoformat()}"', form.group(0))
    for name in (
        "site_code",
        "screened_on",
        "age_years",
        "screening_phq9",
        "inclusion_met",
        "exclusion_present",
    ):
        assert f'<label for="{name}">' in form.group(0), name
    for username in ("mona", "bea", "sam", "cleo"):
        assert "screen-form" not in as_user(username).get(PARTICIPANTS).get_data(as_text=True), username


def test_screening_stores_through_the_service_with_its_audit_entry(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    client = as_user("cora")
    response = post(client, PARTICIPANTS, PARTICIPANTS, screening())
    assert response.status_code == 302, response.get_data(as_text=True)
    label = urlsplit(response.headers["Location"]).path.rsplit("/", 1)[1]
    assert label.startswith("LDS-")
    row = session.scalars(select(Participant).where(Participant.label == label)).one()
    assert (row.status, row.age_years, row.screening_phq9, row.eligible) == ("screened", 34, 14, True)
    entries = audit_rows(session, "participant", row.id)
    assert entries
    assert {e.username for e in entries} == {"cora"}
    page = text_of(client.get(response.headers["Location"]))
    assert f"{label} screened: eligible" in page


def test_a_screen_failure_is_stored_with_its_reasons(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    response = post(as_user("cora"), PARTICIPANTS, PARTICIPANTS, screening(age_years="15", inclusion_met=""))
    assert response.status_code == 302
    label = urlsplit(response.headers["Location"]).path.rsplit("/", 1)[1]
    row = session.scalars(select(Participant).where(Participant.label == label)).one()
    assert (row.status, row.eligible) == ("screen_failed", False)
    assert {r["rule"] for r in participants.reasons_of(row)} == {"age", "inclusion"}


def test_bad_screening_input_shows_errors_beside_the_fields_and_stores_nothing(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    client = as_user("cora")
    before = stored(session)
    response = post(
        client,
        PARTICIPANTS,
        PARTICIPANTS,
        screening(age_years="thirty", screening_phq9="40", screened_on="yesterday"),
    )
    assert response.status_code == 422
    page = text_of(response)
    assert field_error(page, "age_years")
    assert not field_error(page, "age_years").startswith("age_years:")  # beside the field, no field name
    assert field_error(page, "screening_phq9")
    assert not field_error(page, "screening_phq9").startswith(
        "screening_phq9:"
    )  # beside the field, no field name
    assert "YYYY-MM-DD" in field_error(page, "screened_on")
    assert "Not saved: nothing was stored." in page
    assert re.search(r'<details id="screen" open>', page)
    assert stored(session) == before
    # a future date, refused by the service
    response = post(
        client, PARTICIPANTS, PARTICIPANTS, screening(screened_on=(TODAY + timedelta(days=1)).isoformat())
    )
    assert response.status_code == 422
    assert "in the future" in field_error(text_of(response), "screened_on")
    # another site's code
    response = post(client, PARTICIPANTS, PARTICIPANTS, screening(site_code="MAN"))
    assert response.status_code == 403
    assert stored(session) == before


def test_roles_that_do_not_enter_data_cannot_screen(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    clients = {username: as_user(username) for username in ("mona", "bea")}
    before = stored(session)  # after the sign-ins, which are audited
    for username, client in clients.items():
        response = post(client, PARTICIPANTS, PARTICIPANTS, screening())
        assert response.status_code == 403, username
    assert stored(session) == before


# -- enrolment ----------------------------------------------------------------------------------


def test_enrolment_from_the_participant_page(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    label = screened(session, people["lds"])
    client = as_user("cora")
    path = f"{PARTICIPANTS}/{label}"
    page = text_of(client.get(path))
    assert re.search(rf'id="consent_date"[^>]*value="{TODAY.isoformat()}"', page)
    assert '<label for="consent_date">' in page
    response = post(client, path, f"{path}/enrol", {"consent_date": TODAY.isoformat()})
    assert response.status_code == 302, response.get_data(as_text=True)
    row = session.scalars(select(Participant).where(Participant.label == label)).one()
    session.refresh(row)
    assert (row.status, row.consent_date) == ("enrolled", TODAY)
    reasons = {e.reason for e in audit_rows(session, "participant", row.id) if e.field == "status"}
    assert f"enrolled on informed consent dated {TODAY.isoformat()}" in reasons
    page = text_of(client.get(path))
    assert f"{label} enrolled" in page
    assert 'id="consent_date"' not in page  # enrolled: no second enrolment


def test_a_bad_consent_date_shows_its_error_and_stores_nothing(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    label = screened(session, people["lds"])
    client = as_user("cora")
    path = f"{PARTICIPANTS}/{label}"
    before = stored(session)
    for value, words in (((TODAY + timedelta(days=2)).isoformat(), "in the future"), ("", "YYYY-MM-DD")):
        response = post(client, path, f"{path}/enrol", {"consent_date": value})
        assert response.status_code == 422
        assert words in field_error(text_of(response), "consent_date")
    assert stored(session) == before
    row = session.scalars(select(Participant).where(Participant.label == label)).one()
    session.refresh(row)
    assert row.status == "screened"


def test_enrolment_is_refused_to_other_roles_and_sites(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    label = screened(session, people["lds"])
    path = f"{PARTICIPANTS}/{label}"
    mona, manny = as_user("mona"), as_user("manny")
    before = stored(session)
    assert 'id="consent_date"' not in mona.get(path).get_data(as_text=True)
    assert post(mona, path, f"{path}/enrol", {"consent_date": TODAY.isoformat()}).status_code == 403
    token = csrf_token(manny.get(PARTICIPANTS).get_data(as_text=True))
    assert (
        manny.post(f"{path}/enrol", data={"consent_date": TODAY.isoformat(), "csrf_token": token}).status_code
        == 404
    )
    assert stored(session) == before


# -- randomization ------------------------------------------------------------------------------


def test_randomization_needs_its_confirmation_then_shows_the_arm_to_unblinded_staff(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    label = screened(session, people["lds"], enrol=True)
    client = as_user("cora")
    path = f"{PARTICIPANTS}/{label}"
    action = f"{path}/randomize"
    assert f'href="{action}"' in client.get(path).get_data(as_text=True)
    form = text_of(client.get(action))
    assert '<label for="confirm">' in form
    before = stored(session)
    response = post(client, action, action, {})
    assert response.status_code == 422
    assert "tick to confirm" in field_error(text_of(response), "confirm")
    assert stored(session) == before

    response = post(client, action, action, {"confirm": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    participant = session.scalars(select(Participant).where(Participant.label == label)).one()
    slot = randomization.slot_of(participant, session=session)
    assert slot is not None
    assert slot.randomized_by == "cora"
    assert audit_rows(session, "allocation_slot", slot.id)
    page = text_of(client.get(path))
    assert f"{label} randomized to arm {slot.arm_code}." in page  # the example does not blind investigators
    assert f'href="{action}"' not in page
    assert client.get(action).status_code == 409  # no second randomization
    assert post(client, path, action, {"confirm": "y"}).status_code == 409


def test_randomization_is_refused_to_other_roles_and_sites(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    label = screened(session, people["lds"], enrol=True)
    action = f"{PARTICIPANTS}/{label}/randomize"
    clients = {username: as_user(username) for username in ("mona", "bea", "sam", "cleo", "manny")}
    before = stored(session)
    for username in ("mona", "bea", "sam", "cleo"):
        client = clients[username]
        assert client.get(action).status_code == 403, username
        assert post(client, f"{PARTICIPANTS}/{label}", action, {"confirm": "y"}).status_code == 403
        assert f'href="{action}"' not in client.get(f"{PARTICIPANTS}/{label}").get_data(as_text=True)
    assert clients["manny"].get(action).status_code == 404
    assert stored(session) == before


def test_a_screened_participant_is_not_randomized(
    people: dict[str, Principal], as_user: Any, session: Session
) -> None:
    label = screened(session, people["lds"])
    client = as_user("cora")
    action = f"{PARTICIPANTS}/{label}/randomize"
    assert f'href="{action}"' not in client.get(f"{PARTICIPANTS}/{label}").get_data(as_text=True)
    form = client.get(action)  # the form does not open: the page says why
    assert form.status_code == 409
    assert "not enrolled" in text_of(form)
    assert '<label for="confirm">' not in text_of(form)
    response = post(client, f"{PARTICIPANTS}/{label}", action, {"confirm": "y"})
    assert response.status_code == 409
    assert "not enrolled" in text_of(response)


# -- a protocol that blinds the investigators ------------------------------------------------------


@pytest.fixture
def blinded_trial(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    """The example protocol with investigators blinded, locked and live."""
    text = example_protocol_path().read_text()
    blinded = "blinded_roles: [investigator, outcome_assessor, statistician, data_manager]"
    changed = text.replace("blinded_roles: [outcome_assessor, statistician, data_manager]", blinded)
    assert changed != text
    source = protocols.Source(changed.encode(), "yaml")
    for site in source.parse().document.sites:
        make_site(site.code, site.name, site.country)
    protocols.register(source, session=session, by=accounts.SYSTEM)
    people = {
        "sponsor": make_user("sam", f"sponsor:{CODE}")[1],
        "lds": make_user("cora", f"coordinator:{CODE}:LDS")[1],
    }
    protocols.lock(CODE, 1, password=PASSWORD, session=session, by=people["sponsor"], lockout_threshold=6)
    randomization.go_live(
        CODE, session=session, by=people["sponsor"], seed=b"\x06" * 32, slots_per_stratum=12
    )
    session.flush()
    return people


def test_a_blinded_coordinator_sees_randomized_without_the_arm(
    blinded_trial: dict[str, Principal], as_user: Any, session: Session
) -> None:
    label = screened(session, blinded_trial["lds"], enrol=True)
    client = as_user("cora")
    action = f"{PARTICIPANTS}/{label}/randomize"
    response = post(client, action, action, {"confirm": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)
    page = client.get(f"{PARTICIPANTS}/{label}").get_data(as_text=True)
    assert f"{label} randomized." in html.unescape(page)
    assert 'id="arm"' not in page
    visible = re.sub(r"<input[^>]*csrf_token[^>]*>", "", page).replace(CODE, "")
    for arm in ARMS:
        assert arm not in visible, arm
