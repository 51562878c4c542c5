"""Assessments through the JSON API: bad inputs that store nothing, visit windows, duplicates
and corrections, and the safety events a PHQ-9 raises in the same request."""

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlmodel import Session, col

from tests.assessments.conftest import (
    BASE,
    CODE,
    TODAY,
    chain_verifies,
    counts,
    day,
    no_arm_in,
    ok,
    participant_id,
    phq9,
    problem,
    rules,
)
from trials.assessments.models import Assessment, DataQuery
from trials.assessments.services import assign_visit
from trials.core.audit.models import AuditEntry
from trials.safety.models import Notification, OutboxMessage, SafetyEvent

CLEAN = phq9(1, 1, 1, 1, 1, 1, 1, 1, 0)


def body(
    items: dict[str, Any] | None = None, assessed_on: str | None = None, **changes: Any
) -> dict[str, Any]:
    return {
        "instrument": "PHQ-9",
        "assessed_on": assessed_on or day(14),
        "items": CLEAN if items is None else items,
        **changes,
    }


def submit(client: Any, label: str, headers: dict[str, str], **kwargs: Any) -> Any:
    return client.post(f"{BASE}/participants/{label}/assessments", json=body(**kwargs), headers=headers)


# -- bad inputs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "field", "rule"),
    [
        ({**CLEAN, "3": 4}, "items.3", "range"),
        ({**CLEAN, "3": -1}, "items.3", "range"),
        ({**CLEAN, "3": "two"}, "items.3", "int_type"),
        ({**CLEAN, "3": 1.5}, "items.3", "int_type"),
        ({**CLEAN, "3": True}, "items.3", "int_type"),
        ({**CLEAN, "11": 1}, "items.11", "unknown_item"),
        ({**CLEAN, "x": 1}, "items.x", "unknown_item"),
        ({**CLEAN, "10": 4}, "items.10", "range"),
    ],
)
def test_a_bad_item_is_422_naming_the_item_and_nothing_is_stored(
    client: Any, session: Session, h: Any, make_participant: Any, items: dict[str, Any], field: str, rule: str
) -> None:
    label = make_participant()
    before = counts(session)
    found = rules(problem(submit(client, label, h["lds"], items=items), 422))
    assert (field, rule) in found, found
    assert counts(session) == before


@pytest.mark.parametrize(
    ("assessed_on", "rule"),
    [((TODAY.toordinal() + 2), "not_future"), ((TODAY.toordinal() - 91), "not_before_consent")],
)
def test_a_bad_date_is_422_naming_the_rule(
    client: Any, session: Session, h: Any, make_participant: Any, assessed_on: int, rule: str
) -> None:
    label = make_participant()
    before = counts(session)
    when = TODAY.fromordinal(assessed_on).isoformat()
    assert rules(problem(submit(client, label, h["lds"], assessed_on=when), 422)) == {("assessed_on", rule)}
    assert counts(session) == before


def test_an_assessment_dated_after_a_withdrawal_is_refused(
    client: Any, session: Session, h: Any, make_participant: Any, people: Any
) -> None:
    from trials.events import services as events
    from trials.events.models import DispositionCreate

    label = make_participant()
    withdrawn = DispositionCreate.model_validate(
        {"kind": "withdrawal_by_subject", "event_date": day(20), "reason": "no longer wishes to take part"}
    )
    events.record_disposition(CODE, label, withdrawn, session=session, by=people["lds"], today=TODAY)
    session.flush()
    before = counts(session)
    assert rules(problem(submit(client, label, h["lds"], assessed_on=day(28)), 422)) == {
        ("assessed_on", "not_after_withdrawal")
    }
    assert counts(session) == before
    ok(submit(client, label, h["lds"], assessed_on=day(14)), 201)  # before the withdrawal: accepted


def test_phq8_has_no_item_9_and_an_unknown_instrument_is_refused(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    before = counts(session)
    found = rules(problem(submit(client, label, h["lds"], instrument="PHQ-8"), 422))
    assert ("items.9", "unknown_item") in found
    found = rules(problem(submit(client, label, h["lds"], instrument="BDI"), 422))
    assert {f for f, _r in found} == {"instrument"}
    assert counts(session) == before


def test_unknown_or_other_sites_participant_is_404_and_not_randomized_is_409(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    other = make_participant("MAN")
    waiting = make_participant(randomize=False)
    before = counts(session)
    problem(submit(client, "LDS-9999", h["lds"]), 404)
    problem(submit(client, other, h["lds"]), 404)
    problem(submit(client, waiting, h["lds"]), 409)
    problem(submit(client, other, h["clin_man"]), 403)  # a clinician does not enter data
    assert counts(session) == before


def test_a_duplicate_is_409_unless_corrected(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    first = ok(submit(client, label, h["lds"]), 201)
    before = counts(session)
    found = problem(submit(client, label, h["lds"], assessed_on=day(15)), 409)
    assert "correct" in found["detail"]
    assert counts(session) == before

    corrected = ok(
        client.post(
            f"{BASE}/assessments/{first['id']}/correct",
            json={"items": {**CLEAN, "3": 2}, "reason": "transcription error on the paper form"},
            headers=h["lds"],
        )
    )
    assert corrected["items"]["3"] == 2
    assert corrected["total"] == first["total"] + 1
    session.expire_all()
    assert session.get(Assessment, uuid.UUID(first["id"])) is not None
    entry = session.scalars(
        select(AuditEntry).where(
            col(AuditEntry.table_name) == "assessment",
            col(AuditEntry.record_id) == first["id"],
            col(AuditEntry.field) == "item_3",
            col(AuditEntry.action) == "update",
        )
    ).one()
    assert (entry.old_value, entry.new_value) == ("1", "2")
    assert entry.reason == "transcription error on the paper form"
    assert entry.username == "cora"
    chain_verifies(session)


def test_a_correction_needs_a_reason_and_valid_items_and_the_site(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    first = ok(submit(client, label, h["lds"]), 201)
    url = f"{BASE}/assessments/{first['id']}/correct"
    before = counts(session)
    assert ("reason", "missing") in rules(
        problem(client.post(url, json={"items": CLEAN}, headers=h["lds"]), 422)
    )
    problem(client.post(url, json={"items": CLEAN, "reason": "  "}, headers=h["lds"]), 422)
    found = rules(problem(client.post(url, json={"items": {"9": 7}, "reason": "r"}, headers=h["lds"]), 422))
    assert found == {("items.9", "range")}
    problem(client.post(url, json={"items": CLEAN, "reason": "r"}, headers=h["man"]), 404)
    problem(
        client.post(f"{BASE}/assessments/{first['participant_label']}/correct", json={}, headers=h["lds"]),
        404,
    )
    assert counts(session) == before


# -- what is stored ----------------------------------------------------------------------------


def test_items_are_stored_as_given_and_the_answer_scores_them(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    # Item 3 missing: prorated from 8 of 9 items, item 9 answered (0).
    created = ok(submit(client, label, h["lds"], items=phq9(2, 2, None, 2, 2, 2, 2, 2, 0, **{"10": 1})), 201)
    assert created["visit_code"] == "W02"
    assert created["in_window"] is True
    assert created["items"] == {
        "1": 2,
        "2": 2,
        "3": None,
        "4": 2,
        "5": 2,
        "6": 2,
        "7": 2,
        "8": 2,
        "9": 0,
        "10": 1,
    }
    assert (created["total"], created["prorated"], created["items_answered"]) == (16, True, 8)
    assert created["severity"] == "moderately severe"
    assert created["safety_events"] == []
    assert created["data_queries"] == []
    assert created["source"] == "site"
    assert created["entered_by"] == "cora"
    stored = session.get(Assessment, uuid.UUID(created["id"]))
    assert stored is not None
    assert stored.item_3 is None
    assert stored.item_9 == 0
    assert stored.item_10 == 1
    no_arm_in(str(created))
    chain_verifies(session)


def test_visits_are_assigned_by_window_and_out_of_window_data_raise_a_query(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    in_window = ok(submit(client, label, h["lds"], assessed_on=day(14)), 201)
    assert (in_window["visit_code"], in_window["in_window"]) == ("W02", True)
    gad7 = {str(n): 1 for n in range(1, 8)}
    late = ok(submit(client, label, h["lds"], instrument="GAD-7", items=gad7, assessed_on=day(20)), 201)
    assert (late["visit_code"], late["in_window"]) == ("W02", False)
    assert [q["rule"] for q in late["data_queries"]] == ["out_of_window"]
    query = session.scalars(
        select(DataQuery).where(col(DataQuery.assessment_id) == uuid.UUID(late["id"]))
    ).one()
    assert (query.rule, query.status) == ("out_of_window", "open")
    assert query.participant_id == participant_id(session, label)
    assert "day 20" in query.message
    assert (
        session.scalars(
            select(DataQuery).where(col(DataQuery.assessment_id) == uuid.UUID(in_window["id"]))
        ).all()
        == []
    )
    chain_verifies(session)


def test_visit_assignment_by_windows() -> None:
    from protocols.document import load_example_protocol

    visits = list(load_example_protocol().visits)
    assert assign_visit(14, visits).visit_code == "W02"
    assert assign_visit(-14, visits).visit_code == "BL"
    assert assign_visit(17, visits).in_window is True
    assert (assign_visit(20, visits).visit_code, assign_visit(20, visits).in_window) == ("W02", False)
    assert (assign_visit(22, visits).visit_code, assign_visit(22, visits).in_window) == ("W04", False)
    assert (assign_visit(200, visits).visit_code, assign_visit(200, visits).in_window) == ("W12", False)


# -- safety events in the same request ---------------------------------------------------------


def test_item_9_positive_raises_an_event_notifications_and_outbox_rows(
    client: Any, session: Session, h: Any, make_participant: Any, people: Any
) -> None:
    label = make_participant()
    created = ok(submit(client, label, h["lds"], items=phq9(1, 1, 1, 1, 1, 1, 1, 1, 2)), 201)
    [event] = created["safety_events"]
    assert (event["kind"], event["item9"], event["status"]) == ("item9_positive", 2, "open")
    assert event["participant_label"] == label
    session.expire_all()
    stored = session.get(SafetyEvent, uuid.UUID(event["id"]))
    assert stored is not None
    assert stored.assessment_id == uuid.UUID(created["id"])
    assert (stored.due_at - stored.created_at).total_seconds() == 24 * 3600
    notified = session.scalars(
        select(Notification).where(col(Notification.safety_event_id) == stored.id)
    ).all()
    clinicians = {people["clin_lds"].user_id, people["clin_lds2"].user_id}
    assert {n.user_id for n in notified} == clinicians  # the site's clinicians, not MAN's
    outbox = session.scalars(
        select(OutboxMessage).where(col(OutboxMessage.safety_event_id) == stored.id)
    ).all()
    assert {m.user_id for m in outbox} == clinicians
    assert {m.to for m in outbox} == {"cleo", "clara"}
    for message in [*notified, *outbox]:
        assert label in message.subject
        no_arm_in(message.subject + message.body)
    assert all(m.sent_at is None for m in outbox)
    chain_verifies(session)


@pytest.mark.parametrize("item9", ["null", "absent"])
def test_a_missing_item_9_is_kept_null_and_flagged(
    client: Any, session: Session, h: Any, make_participant: Any, item9: str
) -> None:
    label = make_participant()
    items: dict[str, Any] = phq9(1, 1, 1, 1, 1, 1, 1, 1)
    if item9 == "null":
        items["9"] = None
    created = ok(submit(client, label, h["lds"], items=items), 201)
    assert [e["kind"] for e in created["safety_events"]] == ["item9_missing"]
    assert created["safety_events"][0]["item9"] is None
    assert created["total"] is None  # item 9 is required for prorating: never read as 0
    stored = session.get(Assessment, uuid.UUID(created["id"]))
    assert stored is not None
    assert stored.item_9 is None
    chain_verifies(session)


def test_gad7_and_phq8_raise_no_item_9_event(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    gad7 = ok(
        submit(client, label, h["lds"], instrument="GAD-7", items={str(n): 3 for n in range(1, 8)}), 201
    )
    phq8 = ok(
        submit(client, label, h["lds"], instrument="PHQ-8", items={str(n): 3 for n in range(1, 9)}), 201
    )
    assert gad7["safety_events"] == phq8["safety_events"] == []
    assert phq8["total"] == 24


def test_deterioration_over_baseline_raises_an_event(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    baseline = ok(
        submit(client, label, h["lds"], items=phq9(1, 1, 1, 1, 1, 1, 1, 1, 0), assessed_on=day(0)), 201
    )
    assert (baseline["visit_code"], baseline["total"], baseline["safety_events"]) == ("BL", 8, [])
    worse_by_5 = ok(submit(client, label, h["lds"], items=phq9(2, 2, 2, 2, 2, 1, 1, 1, 0)), 201)
    assert (worse_by_5["total"], worse_by_5["safety_events"]) == (13, [])
    worse_by_6 = ok(
        submit(client, label, h["lds"], items=phq9(2, 2, 2, 2, 2, 2, 1, 1, 0), assessed_on=day(28)), 201
    )
    assert worse_by_6["total"] == 14
    assert [e["kind"] for e in worse_by_6["safety_events"]] == ["deterioration"]
    chain_verifies(session)


def test_a_correction_that_reveals_item_9_raises_its_event_once(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    first = ok(submit(client, label, h["lds"]), 201)
    url = f"{BASE}/assessments/{first['id']}/correct"
    fixed = ok(
        client.post(url, json={"items": {**CLEAN, "9": 1}, "reason": "item 9 misread"}, headers=h["lds"])
    )
    assert [e["kind"] for e in fixed["safety_events"]] == ["item9_positive"]
    again = ok(
        client.post(
            url, json={"items": {**CLEAN, "9": 2}, "reason": "item 9 misread again"}, headers=h["lds"]
        )
    )
    assert [e["kind"] for e in again["safety_events"]] == ["item9_positive"]
    chain_verifies(session)
