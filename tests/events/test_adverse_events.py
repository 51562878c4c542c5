"""Adverse events through the JSON API: recording by site staff, every validation rule naming
its field, site scoping and read-only roles, serious events notifying every sponsor in the same
request, changes under a reason on the audit trail, and no way to delete one."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from tests.assessments.conftest import BASE, CONSENTED, TODAY, chain_verifies, ok, phq9, problem, rules
from tests.conftest import bearer
from tests.events.conftest import no_arm_in, stored
from trials.core.audit.models import AuditEntry
from trials.core.errors import Conflict
from trials.events import terms
from trials.events.models import AdverseEvent
from trials.safety.models import Notification, OutboxMessage

ONSET = (TODAY - timedelta(days=10)).isoformat()


def ae(**changes: Any) -> dict[str, Any]:
    body = {
        "term": "Headache after evening sessions",
        "onset_date": ONSET,
        "end_date": None,
        "serious": False,
        "serious_criteria": [],
        "severity": "mild",
        "relatedness": "possible",
        "action": "none",
        "outcome": "recovering_resolving",
    }
    body.update(changes)
    return body


SERIOUS = {
    "term": "Overdose of paracetamol",
    "serious": True,
    "serious_criteria": ["hospitalization", "life_threatening"],
    "severity": "severe",
    "relatedness": "unlikely",
    "action": "app_use_interrupted",
    "outcome": "recovering_resolving",
}


def record(client: Any, label: str, headers: dict[str, str], **changes: Any) -> Any:
    return client.post(f"{BASE}/participants/{label}/adverse-events", json=ae(**changes), headers=headers)


def change(client: Any, event_id: str, headers: dict[str, str], **body: Any) -> Any:
    return client.post(f"{BASE}/adverse-events/{event_id}/change", json=body, headers=headers)


def test_site_staff_record_an_adverse_event_that_carries_no_arm(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    created = ok(record(client, label, h["lds"]), 201)
    assert created["participant_label"] == label
    assert created["site_code"] == "LDS"
    assert (created["term"], created["onset_date"], created["end_date"]) == (
        "Headache after evening sessions",
        ONSET,
        None,
    )
    assert (created["serious"], created["serious_criteria"]) == (False, [])
    assert (created["severity"], created["relatedness"], created["action"], created["outcome"]) == (
        "mild",
        "possible",
        "none",
        "recovering_resolving",
    )
    assert created["reported_by"] == "cora"
    assert "arm" not in " ".join(created)
    by_clinician = ok(record(client, label, h["clin_lds"], term="Eye strain"), 201)
    assert by_clinician["reported_by"] == "cleo"

    got = ok(client.get(f"{BASE}/adverse-events/{created['id']}", headers=h["lds"]))
    assert got == created
    listed = ok(client.get(f"{BASE}/participants/{label}/adverse-events", headers=h["sponsor"]))
    assert {e["id"] for e in listed} == {created["id"], by_clinician["id"]}

    entries = session.scalars(
        select(AuditEntry).where(
            col(AuditEntry.record_id) == created["id"], col(AuditEntry.action) == "insert"
        )
    ).all()
    assert {e.field for e in entries} >= {"term", "onset_date", "serious", "severity", "outcome"}
    assert {(e.username, e.role) for e in entries} == {("cora", "coordinator")}
    chain_verifies(session)


def test_the_stored_codes_map_to_cdisc_submission_values() -> None:
    for variable, codes in (
        ("AESEV", terms.SEVERITIES),
        ("AEREL", terms.RELATEDNESS),
        ("AEACN", terms.APP_ACTIONS),
        ("AEACNDEV", terms.APP_ACTIONS),
        ("AEOUT", terms.OUTCOMES),
        ("DSCAT", terms.DISPOSITION_KINDS),
        ("DSDECOD", terms.DISPOSITION_KINDS),
    ):
        assert set(terms.SDTM[variable]) == set(codes), variable
        assert all(v.isascii() and v == v.upper() and len(v) <= 200 for v in terms.SDTM[variable].values())
    assert set(terms.SERIOUS_CRITERION_VARIABLES) == set(terms.SERIOUS_CRITERIA)
    assert terms.SDTM["AEOUT"]["not_recovered_not_resolved"] == "NOT RECOVERED/NOT RESOLVED"
    assert terms.SDTM["DSDECOD"]["withdrawal_by_subject"] == "WITHDRAWAL BY SUBJECT"
    assert terms.SDTM["DSDECOD"]["lost_to_follow_up"] == "LOST TO FOLLOW-UP"
    assert terms.SDTM["DSCAT"]["completed"] == "DISPOSITION EVENT"
    assert terms.SDTM["DSCAT"]["stopped_app_use"] == "OTHER EVENT"


# -- bad inputs ------------------------------------------------------------------------------------

FUTURE = (TODAY + timedelta(days=1)).isoformat()


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"serious": True}, "serious_criteria", "required_if_serious"),
        ({"serious_criteria": ["disability"]}, "serious_criteria", "only_if_serious"),
        (
            {"serious": True, "serious_criteria": ["disability", "disability"]},
            "serious_criteria",
            "unique",
        ),
        ({"serious": True, "serious_criteria": ["surgery"]}, "serious_criteria[0]", "literal_error"),
        (
            {"end_date": (TODAY - timedelta(days=11)).isoformat(), "outcome": "recovered_resolved"},
            "end_date",
            "not_before_onset",
        ),
        ({"onset_date": FUTURE}, "onset_date", "not_future"),
        ({"end_date": FUTURE, "outcome": "recovered_resolved"}, "end_date", "not_future"),
        ({"onset_date": (CONSENTED - timedelta(days=1)).isoformat()}, "onset_date", "not_before_consent"),
        ({"end_date": ONSET}, "end_date", "not_while_ongoing"),
        ({"outcome": "fatal", "end_date": ONSET}, "serious_criteria", "death_if_fatal"),
        ({"serious": True, "serious_criteria": ["death"]}, "outcome", "fatal_if_death"),
        ({"severity": "life-threatening"}, "severity", "literal_error"),
        ({"severity": "MILD"}, "severity", "literal_error"),
        ({"relatedness": "maybe"}, "relatedness", "literal_error"),
        ({"action": "dose reduced"}, "action", "literal_error"),
        ({"outcome": "resolved"}, "outcome", "literal_error"),
        ({"outcome": None}, "outcome", "literal_error"),
        ({"term": "   "}, "term", "string_too_short"),
        ({"term": "x" * 201}, "term", "string_too_long"),
        ({"term": "head\u202eache"}, "term", "string_pattern_mismatch"),
        ({"term": 42}, "term", "string_type"),
        ({"onset_date": 1767225600}, "onset_date", "date_type"),
        ({"onset_date": f"{ONSET}T00:00:00"}, "onset_date", "date_type"),
        ({"onset_date": "2026-02-30"}, "onset_date", "date_from_datetime_parsing"),
        ({"serious": "false"}, "serious", "bool_type"),
        ({"serious": 0}, "serious", "bool_type"),
        ({"safety_event_id": str(uuid.uuid4())}, "safety_event_id", "same_participant"),
        ({"safety_event_id": "not-a-uuid"}, "safety_event_id", "uuid_parsing"),
        ({"arm": "CBT"}, "arm", "extra_forbidden"),
    ],
)
def test_every_bad_value_is_refused_naming_the_field_and_rule_and_nothing_is_stored(
    client: Any,
    session: Session,
    h: Any,
    make_participant: Any,
    changes: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    label = make_participant()
    before = stored(session)
    found = problem(record(client, label, h["lds"], **changes), 422)
    assert (field, rule) in rules(found)
    assert all(field in e["message"] for e in found["errors"] if e["field"] == field)
    assert stored(session) == before


def test_a_missing_field_is_named(client: Any, session: Session, h: Any, make_participant: Any) -> None:
    label = make_participant()
    body = ae()
    del body["severity"]
    found = problem(
        client.post(f"{BASE}/participants/{label}/adverse-events", json=body, headers=h["lds"]), 422
    )
    assert rules(found) == {("severity", "missing")}


def test_a_safety_event_of_another_participant_cannot_be_linked(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    first, second = make_participant(), make_participant()
    assessment = ok(
        client.post(
            f"{BASE}/participants/{first}/assessments",
            json={
                "instrument": "PHQ-9",
                "assessed_on": (TODAY - timedelta(days=26)).isoformat(),
                "items": phq9(1, 1, 1, 1, 1, 1, 1, 1, 2),
            },
            headers=h["lds"],
        ),
        201,
    )
    [safety_event] = assessment["safety_events"]
    found = problem(record(client, second, h["lds"], safety_event_id=safety_event["id"]), 422)
    assert rules(found) == {("safety_event_id", "same_participant")}
    linked = ok(record(client, first, h["clin_lds"], safety_event_id=safety_event["id"]), 201)
    assert linked["safety_event_id"] == safety_event["id"]


# -- who may ---------------------------------------------------------------------------------------


def test_site_scoping_and_read_only_roles(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    lds, man = make_participant("LDS"), make_participant("MAN")
    lds_event = ok(record(client, lds, h["lds"]), 201)
    man_event = ok(record(client, man, h["man"]), 201)
    read_only = bearer(session, _principal(session, "cora"), scope="read")
    before = stored(session)
    # Another site's participant and event look exactly like missing ones.
    for who in ("man", "clin_man"):
        problem(record(client, lds, h[who]), 404)
        problem(client.get(f"{BASE}/adverse-events/{lds_event['id']}", headers=h[who]), 404)
        problem(change(client, lds_event["id"], h[who], outcome="recovered_resolved", change_reason="x"), 404)
        problem(client.get(f"{BASE}/participants/{lds}/adverse-events", headers=h[who]), 404)
    # Trial-wide roles read but never write.
    for who in ("sponsor", "monitor", "blinded", "unblinded"):
        problem(record(client, lds, h[who]), 403)
        problem(change(client, lds_event["id"], h[who], outcome="recovered_resolved", change_reason="x"), 403)
        listed = ok(client.get(f"{BASE}/adverse-events", headers=h[who]))
        assert {e["id"] for e in listed} == {lds_event["id"], man_event["id"]}
    problem(record(client, lds, read_only), 403)
    assert stored(session) == before
    assert [e["id"] for e in ok(client.get(f"{BASE}/adverse-events", headers=h["lds"]))] == [lds_event["id"]]
    assert [e["id"] for e in ok(client.get(f"{BASE}/adverse-events", headers=h["clin_man"]))] == [
        man_event["id"]
    ]
    problem(client.get(f"{BASE}/adverse-events/{uuid.uuid4()}", headers=h["sponsor"]), 404)
    problem(client.get("/api/v1/trials/NO-SUCH-TRIAL/adverse-events", headers=h["sponsor"]), 404)


def _principal(session: Session, username: str) -> Any:
    from trials.core.accounts import services as accounts

    return accounts.load_principal(accounts.get_user(username, session=session), session=session)


def test_only_an_enrolled_participant_has_adverse_events(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    from trials.participants import services as participants
    from trials.participants.models import ScreeningCreate

    screening = ScreeningCreate.model_validate(
        {
            "site_code": "LDS",
            "screened_on": CONSENTED,
            "age_years": 30,
            "screening_phq9": 12,
            "inclusion_met": True,
            "exclusion_present": False,
        }
    )
    screened = participants.screen(
        "MOOD-CBT-01", screening, session=session, by=_principal(session, "cora"), today=TODAY
    ).label
    before = stored(session)
    assert "not enrolled" in problem(record(client, screened, h["lds"]), 409)["detail"]
    assert stored(session) == before
    enrolled = make_participant(randomize=False)
    ok(record(client, enrolled, h["lds"]), 201)  # from consent on, randomized or not


# -- serious events ----------------------------------------------------------------------------------


def test_a_serious_event_notifies_every_sponsor_in_the_same_request_without_an_arm(
    client: Any, session: Session, h: Any, make_participant: Any, people: Any
) -> None:
    label = make_participant()
    ok(record(client, label, h["lds"]), 201)  # not serious: nobody is notified
    assert (
        session.scalars(select(Notification).where(col(Notification.adverse_event_id).isnot(None))).all()
        == []
    )

    created = ok(record(client, label, h["clin_lds"], **SERIOUS), 201)
    assert created["serious"] is True
    assert created["serious_criteria"] == ["life_threatening", "hospitalization"]  # the vocabulary's order
    stored_event = session.get(AdverseEvent, uuid.UUID(created["id"]))
    assert stored_event is not None
    assert (stored_event.serious_hospitalization, stored_event.serious_life_threatening) == (True, True)
    assert stored_event.serious_death is False

    notes = session.scalars(
        select(Notification).where(col(Notification.adverse_event_id) == stored_event.id)
    ).all()
    mails = session.scalars(
        select(OutboxMessage).where(col(OutboxMessage.adverse_event_id) == stored_event.id)
    ).all()
    sponsors = {people["sponsor"].user_id, people["sponsor2"].user_id}
    assert {n.user_id for n in notes} == sponsors
    assert {m.user_id for m in mails} == sponsors
    assert {m.to for m in mails} == {"sam", "sid"}
    for message in (*notes, *mails):
        assert message.subject == f"[MOOD-CBT-01] Serious adverse event for participant {label}"
        assert "Overdose of paracetamol" in message.body
        assert "life threatening, hospitalization" in message.body
        assert "cleo" in message.body
        assert message.safety_event_id is None
        assert message.emergency_unblinding_id is None
        no_arm_in(message.subject + message.body)
    chain_verifies(session)


def test_the_sponsors_listing_shows_serious_events_first_and_filters_them(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    mild = ok(record(client, label, h["lds"], onset_date=(TODAY - timedelta(days=20)).isoformat()), 201)
    serious = ok(record(client, label, h["lds"], **SERIOUS), 201)
    later = ok(record(client, label, h["lds"], onset_date=(TODAY - timedelta(days=2)).isoformat()), 201)
    listed = ok(client.get(f"{BASE}/adverse-events", headers=h["sponsor"]))
    assert [e["id"] for e in listed] == [serious["id"], mild["id"], later["id"]]
    assert [e["serious"] for e in listed] == [True, False, False]
    only = ok(client.get(f"{BASE}/adverse-events?serious=true", headers=h["sponsor"]))
    assert [e["id"] for e in only] == [serious["id"]]
    others = ok(client.get(f"{BASE}/adverse-events?serious=false", headers=h["sponsor"]))
    assert [e["id"] for e in others] == [mild["id"], later["id"]]
    by_label = ok(client.get(f"{BASE}/adverse-events?participant={label}&serious=true", headers=h["monitor"]))
    assert [e["id"] for e in by_label] == [serious["id"]]
    for query, field in (("serious=yes", "serious"), ("serious=1", "serious"), ("sort=onset", "sort")):
        found = problem(client.get(f"{BASE}/adverse-events?{query}", headers=h["sponsor"]), 422)
        assert {f for f, _rule in rules(found)} == {field}


# -- changes ------------------------------------------------------------------------------------------


def test_a_change_needs_a_reason_and_the_audit_trail_keeps_old_and_new_values(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    created = ok(record(client, label, h["lds"]), 201)
    event_id = created["id"]
    before = stored(session)
    end = (TODAY - timedelta(days=3)).isoformat()
    found = problem(change(client, event_id, h["lds"], outcome="recovered_resolved", end_date=end), 422)
    assert rules(found) == {("change_reason", "missing")}
    found = problem(
        change(client, event_id, h["lds"], outcome="recovered_resolved", end_date=end, change_reason="  "),
        422,
    )
    assert rules(found) == {("change_reason", "string_too_short")}
    found = problem(change(client, event_id, h["lds"], severity="mild", change_reason="same again"), 422)
    assert rules(found) == {("body", "no_change")}
    found = problem(change(client, event_id, h["lds"], severity=None, change_reason="cleared"), 422)
    assert rules(found) == {("severity", "not_null")}
    # The whole event after the change is checked: an end date needs an ended outcome.
    found = problem(change(client, event_id, h["lds"], end_date=end, change_reason="ended"), 422)
    assert rules(found) == {("end_date", "not_while_ongoing")}
    found = problem(change(client, event_id, h["lds"], serious=True, change_reason="worse"), 422)
    assert rules(found) == {("serious_criteria", "required_if_serious")}
    assert stored(session) == before

    changed = ok(
        change(
            client,
            event_id,
            h["clin_lds"],
            outcome="recovered_resolved",
            end_date=end,
            change_reason="resolved at the follow-up call",
        )
    )
    assert (changed["outcome"], changed["end_date"], changed["reported_by"]) == (
        "recovered_resolved",
        end,
        "cora",
    )
    session.expire_all()
    entries = {
        e.field: e
        for e in session.scalars(
            select(AuditEntry).where(
                col(AuditEntry.record_id) == event_id, col(AuditEntry.action) == "update"
            )
        )
    }
    assert set(entries) == {"outcome", "end_date"}
    assert (entries["outcome"].old_value, entries["outcome"].new_value) == (
        '"recovering_resolving"',
        '"recovered_resolved"',
    )
    assert (entries["end_date"].old_value, entries["end_date"].new_value) == (None, f'"{end}"')
    assert {(e.reason, e.username, e.role) for e in entries.values()} == {
        ("resolved at the follow-up call", "cleo", "clinician")
    }
    assert (
        session.scalars(select(Notification).where(col(Notification.adverse_event_id).isnot(None))).all()
        == []
    )
    chain_verifies(session)


def test_an_event_changed_to_serious_notifies_the_sponsors_once(
    client: Any, session: Session, h: Any, make_participant: Any, people: Any
) -> None:
    label = make_participant()
    event_id = ok(record(client, label, h["lds"]), 201)["id"]
    ok(
        change(
            client,
            event_id,
            h["clin_lds"],
            serious=True,
            serious_criteria=["hospitalization"],
            severity="severe",
            change_reason="admitted to hospital overnight",
        )
    )
    notes = session.scalars(
        select(Notification).where(col(Notification.adverse_event_id) == uuid.UUID(event_id))
    ).all()
    assert {n.user_id for n in notes} == {people["sponsor"].user_id, people["sponsor2"].user_id}
    assert all("changed to serious" in n.body and "admitted to hospital overnight" in n.body for n in notes)
    # Still serious after a further change: no second notification.
    ok(
        change(
            client,
            event_id,
            h["clin_lds"],
            serious_criteria=["hospitalization", "other_medically_important"],
            change_reason="assessed as medically important",
        )
    )
    assert (
        len(
            session.scalars(
                select(OutboxMessage).where(col(OutboxMessage.adverse_event_id) == uuid.UUID(event_id))
            ).all()
        )
        == 2
    )
    # Back to not serious needs the criteria cleared too.
    found = problem(change(client, event_id, h["clin_lds"], serious=False, change_reason="reassessed"), 422)
    assert rules(found) == {("serious_criteria", "only_if_serious")}
    back = ok(
        change(
            client, event_id, h["clin_lds"], serious=False, serious_criteria=[], change_reason="reassessed"
        )
    )
    assert (back["serious"], back["serious_criteria"]) == (False, [])
    chain_verifies(session)


# -- never deleted ---------------------------------------------------------------------------------


def test_an_adverse_event_cannot_be_deleted_by_the_orm_nor_by_sql(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    event_id = uuid.UUID(ok(record(client, make_participant(), h["lds"]), 201)["id"])
    stored_event = session.get(AdverseEvent, event_id)
    assert stored_event is not None
    session.delete(stored_event)
    with pytest.raises(Conflict, match="cannot be deleted"):
        session.flush()
    session.expunge_all()
    with pytest.raises(DBAPIError, match="adverse events cannot be deleted"), session.begin_nested():
        session.connection().execute(text("DELETE FROM adverse_event"))
    assert session.get(AdverseEvent, event_id) is not None
    chain_verifies(session)
