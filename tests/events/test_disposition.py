"""Disposition and intercurrent events through the JSON API: dates and reasons, one end of study
per participant (changed or retracted only with a reason), `withdrawal_date` for the paths that
refuse data after a withdrawal, site scoping, and no way to delete one."""

import threading
import uuid
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col

from tests.assessments.conftest import (
    BASE,
    CODE,
    CONSENTED,
    TODAY,
    chain_verifies,
    ok,
    participant_id,
    problem,
    rules,
)
from tests.events.conftest import committed_trial, stored
from tests.participants.test_services import run_workers
from trials.core.accounts import services as accounts
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.core.db import make_engine
from trials.core.errors import Conflict
from trials.events import services
from trials.events.models import DispositionCreate, DispositionEvent

RANDOMIZED = TODAY - timedelta(days=40)  # make_participant's default


def ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def record(client: Any, label: str, headers: dict[str, str], kind: str, on: str, **extra: Any) -> Any:
    body = {
        "kind": kind,
        "event_date": on,
        "reason": extra.pop("reason", "as told by the participant"),
        **extra,
    }
    return client.post(f"{BASE}/participants/{label}/disposition-events", json=body, headers=headers)


def change(client: Any, event_id: str, headers: dict[str, str], **body: Any) -> Any:
    return client.post(f"{BASE}/disposition-events/{event_id}/change", json=body, headers=headers)


def retract(client: Any, event_id: str, headers: dict[str, str], reason: Any = "found again") -> Any:
    return client.post(
        f"{BASE}/disposition-events/{event_id}/retract", json={"reason": reason}, headers=headers
    )


def test_end_of_study_and_intercurrent_events_are_recorded_with_date_and_reason(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    stopped = ok(
        record(client, label, h["lds"], "stopped_app_use", ago(30), reason="no app activity for 14 days"), 201
    )
    started = ok(
        record(
            client,
            label,
            h["clin_lds"],
            "started_other_treatment",
            ago(25),
            reason="GP prescribed sertraline",
            other_treatment="antidepressant",
        ),
        201,
    )
    crisis = ok(
        record(
            client,
            label,
            h["clin_lds"],
            "crisis_treatment_change",
            ago(20),
            reason="referred to the crisis team",
        ),
        201,
    )
    withdrawn = ok(
        record(client, label, h["lds"], "withdrawal_by_subject", ago(10), reason="too busy to continue"), 201
    )

    assert (stopped["kind"], stopped["category"], stopped["event_date"], stopped["reason"]) == (
        "stopped_app_use",
        "intercurrent",
        ago(30),
        "no app activity for 14 days",
    )
    assert (started["other_treatment"], started["recorded_by"]) == ("antidepressant", "cleo")
    assert crisis["other_treatment"] is None
    assert (withdrawn["category"], withdrawn["status"], withdrawn["recorded_by"]) == (
        "end_of_study",
        "current",
        "cora",
    )
    listed = ok(client.get(f"{BASE}/participants/{label}/disposition-events", headers=h["sponsor"]))
    assert [e["id"] for e in listed] == [stopped["id"], started["id"], crisis["id"], withdrawn["id"]]
    only = ok(client.get(f"{BASE}/disposition-events?kind=withdrawal_by_subject", headers=h["monitor"]))
    assert [e["id"] for e in only] == [withdrawn["id"]]
    problem(client.get(f"{BASE}/disposition-events?kind=withdrawn", headers=h["monitor"]), 422)
    entries = session.scalars(
        select(AuditEntry).where(
            col(AuditEntry.record_id) == withdrawn["id"], col(AuditEntry.action) == "insert"
        )
    ).all()
    assert {e.field for e in entries} >= {"kind", "event_date", "reason", "participant_id"}
    assert {(e.username, e.role) for e in entries} == {("cora", "coordinator")}
    chain_verifies(session)


@pytest.mark.parametrize(
    ("kind", "on", "extra", "field", "rule"),
    [
        ("withdrawal_by_subject", (TODAY + timedelta(days=1)).isoformat(), {}, "event_date", "not_future"),
        (
            "withdrawal_by_subject",
            (CONSENTED - timedelta(days=1)).isoformat(),
            {},
            "event_date",
            "not_before_consent",
        ),
        (
            "stopped_app_use",
            (RANDOMIZED - timedelta(days=1)).isoformat(),
            {},
            "event_date",
            "not_before_randomization",
        ),
        (
            "completed",
            (RANDOMIZED - timedelta(days=1)).isoformat(),
            {},
            "event_date",
            "not_before_randomization",
        ),
        ("started_other_treatment", ago(5), {}, "other_treatment", "required_for_kind"),
        ("changed_other_treatment", ago(5), {}, "other_treatment", "required_for_kind"),
        ("stopped_app_use", ago(5), {"other_treatment": "psychotherapy"}, "other_treatment", "not_for_kind"),
        (
            "lost_to_follow_up",
            ago(5),
            {"other_treatment": "psychotherapy"},
            "other_treatment",
            "not_for_kind",
        ),
        ("started_other_treatment", ago(5), {"other_treatment": "yoga"}, "other_treatment", "literal_error"),
        ("withdrawn", ago(5), {}, "kind", "literal_error"),
        ("withdrawal_by_subject", ago(5), {"reason": ""}, "reason", "string_too_short"),
        (
            "withdrawal_by_subject",
            ago(5),
            {"reason": "moved\u200b away"},
            "reason",
            "string_pattern_mismatch",
        ),
        ("withdrawal_by_subject", ago(5), {"reason": "x" * 2001}, "reason", "string_too_long"),
        ("withdrawal_by_subject", ago(5), {"reason": None}, "reason", "string_type"),
        ("withdrawal_by_subject", "05/01/2026", {}, "event_date", "date_type"),
    ],
)
def test_every_bad_value_is_refused_naming_the_field_and_rule_and_nothing_is_stored(
    client: Any,
    session: Session,
    h: Any,
    make_participant: Any,
    kind: str,
    on: str,
    extra: dict[str, Any],
    field: str,
    rule: str,
) -> None:
    label = make_participant()
    before = stored(session)
    found = problem(record(client, label, h["lds"], kind, on, **extra), 422)
    assert (field, rule) in rules(found)
    assert stored(session) == before


def test_a_missing_reason_is_named(client: Any, h: Any, make_participant: Any) -> None:
    label = make_participant()
    body = {"kind": "lost_to_follow_up", "event_date": ago(3)}
    found = problem(
        client.post(f"{BASE}/participants/{label}/disposition-events", json=body, headers=h["lds"]), 422
    )
    assert rules(found) == {("reason", "missing")}


def test_events_after_randomization_need_a_randomized_participant(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant(randomize=False)
    before = stored(session)
    for kind, extra in (
        ("stopped_app_use", {}),
        ("started_other_treatment", {"other_treatment": "psychotherapy"}),
        ("completed", {}),
    ):
        assert (
            "not randomized" in problem(record(client, label, h["lds"], kind, ago(5), **extra), 409)["detail"]
        )
    assert stored(session) == before
    # Withdrawal before randomization is a disposition too (CONSORT: enrolled, not randomized).
    ok(record(client, label, h["lds"], "withdrawal_by_subject", ago(5)), 201)


def test_one_end_of_study_per_participant_changed_or_retracted_only_with_a_reason(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    lost = ok(
        record(client, label, h["lds"], "lost_to_follow_up", ago(12), reason="no answer to 3 calls"), 201
    )
    before = stored(session)
    for kind in ("completed", "withdrawal_by_subject", "lost_to_follow_up"):
        found = problem(record(client, label, h["lds"], kind, ago(2)), 409)
        assert "already has an end of study" in found["detail"]
    # Intercurrent events after the end of study are refused; before it, they are recorded.
    found = problem(record(client, label, h["lds"], "stopped_app_use", ago(5)), 422)
    assert rules(found) == {("event_date", "not_after_end_of_study")}
    found = problem(change(client, lost["id"], h["lds"], kind="completed", event_date=ago(2)), 422)
    assert rules(found) == {("change_reason", "missing")}
    assert stored(session) == before

    # Found again: the lost-to-follow-up is superseded by a change with a reason.
    completed = ok(
        change(
            client,
            lost["id"],
            h["lds"],
            kind="completed",
            event_date=ago(2),
            reason="attended the week 12 visit",
            change_reason="participant found again and attended the final visit",
        )
    )
    assert (completed["id"], completed["kind"], completed["event_date"]) == (lost["id"], "completed", ago(2))
    session.expire_all()
    entries = {
        e.field: e
        for e in session.scalars(
            select(AuditEntry).where(
                col(AuditEntry.record_id) == lost["id"], col(AuditEntry.action) == "update"
            )
        )
    }
    assert set(entries) == {"kind", "event_date", "reason"}
    assert (entries["kind"].old_value, entries["kind"].new_value) == ('"lost_to_follow_up"', '"completed"')
    assert {e.reason for e in entries.values()} == {"participant found again and attended the final visit"}
    chain_verifies(session)


def test_a_retracted_end_of_study_frees_the_place_and_stays_on_record(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    lost = ok(record(client, label, h["lds"], "lost_to_follow_up", ago(12)), 201)
    before = stored(session)
    found = problem(retract(client, lost["id"], h["lds"], reason="  "), 422)
    assert rules(found) == {("reason", "string_too_short")}
    problem(retract(client, lost["id"], h["sponsor"]), 403)
    problem(retract(client, lost["id"], h["man"]), 404)
    assert stored(session) == before

    retracted = ok(retract(client, lost["id"], h["clin_lds"], reason="found again: was abroad"))
    assert (retracted["status"], retracted["retracted_by"]) == ("retracted", "cleo")
    assert retracted["retracted_at"] is not None
    problem(retract(client, lost["id"], h["lds"]), 409)
    problem(change(client, lost["id"], h["lds"], event_date=ago(11), change_reason="typo"), 409)
    ok(record(client, label, h["lds"], "stopped_app_use", ago(5)), 201)  # in the trial again
    done = ok(record(client, label, h["lds"], "completed", ago(1)), 201)
    listed = ok(client.get(f"{BASE}/participants/{label}/disposition-events", headers=h["monitor"]))
    assert [(e["kind"], e["status"]) for e in listed] == [
        ("lost_to_follow_up", "retracted"),
        ("stopped_app_use", "current"),
        ("completed", "current"),
    ]
    assert services.end_of_study(participant_id(session, label), session=session).id == uuid.UUID(done["id"])  # type: ignore[union-attr]
    entry = session.scalars(
        select(AuditEntry).where(
            col(AuditEntry.record_id) == lost["id"],
            col(AuditEntry.field) == "status",
            col(AuditEntry.action) == "update",
        )
    ).one()
    assert (entry.old_value, entry.new_value, entry.reason) == (
        '"current"',
        '"retracted"',
        "found again: was abroad",
    )
    chain_verifies(session)


def test_the_database_holds_one_current_end_of_study_whatever_path_writes_it(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    first = ok(record(client, label, h["lds"], "withdrawal_by_investigator", ago(3)), 201)
    pid = participant_id(session, label)
    second = DispositionEvent(
        trial_id=session.get(DispositionEvent, uuid.UUID(first["id"])).trial_id,  # type: ignore[union-attr]
        site_id=session.get(DispositionEvent, uuid.UUID(first["id"])).site_id,  # type: ignore[union-attr]
        participant_id=pid,
        kind="completed",
        event_date=date.fromisoformat(ago(1)),
        reason="written around the service",
        recorded_by="cora",
    )
    with pytest.raises(IntegrityError), session.begin_nested():  # noqa: PT012 - the flush fails
        session.add(second)
        session.flush()
    assert services.end_of_study(pid, session=session).id == uuid.UUID(first["id"])  # type: ignore[union-attr]


def test_withdrawal_date(client: Any, session: Session, h: Any, make_participant: Any) -> None:
    label = make_participant()
    pid = participant_id(session, label)
    assert services.withdrawal_date(pid, session=session) is None
    ok(record(client, label, h["lds"], "stopped_app_use", ago(20)), 201)
    assert services.withdrawal_date(pid, session=session) is None  # stopping the app is no withdrawal
    withdrawn = ok(record(client, label, h["lds"], "withdrawal_by_subject", ago(15)), 201)
    assert services.withdrawal_date(pid, session=session) == date.fromisoformat(ago(15))
    ok(change(client, withdrawn["id"], h["lds"], event_date=ago(14), change_reason="date misread"))
    assert services.withdrawal_date(pid, session=session) == date.fromisoformat(ago(14))
    ok(
        change(
            client,
            withdrawn["id"],
            h["lds"],
            kind="withdrawal_by_investigator",
            change_reason="the PI decided",
        )
    )
    assert services.withdrawal_date(pid, session=session) == date.fromisoformat(ago(14))
    ok(
        change(
            client,
            withdrawn["id"],
            h["lds"],
            kind="lost_to_follow_up",
            change_reason="mistaken for a withdrawal",
        )
    )
    assert services.withdrawal_date(pid, session=session) is None  # lost, not withdrawn
    ok(
        change(
            client,
            withdrawn["id"],
            h["lds"],
            kind="withdrawal_by_subject",
            change_reason="confirmed by letter",
        )
    )
    assert services.withdrawal_date(pid, session=session) == date.fromisoformat(ago(14))
    ok(retract(client, withdrawn["id"], h["lds"], reason="entered for the wrong participant"))
    assert services.withdrawal_date(pid, session=session) is None
    # Another participant's withdrawal is not this one's.
    other = make_participant()
    ok(record(client, other, h["lds"], "withdrawal_by_subject", ago(3)), 201)
    assert services.withdrawal_date(pid, session=session) is None
    assert services.withdrawal_date(participant_id(session, other), session=session) == date.fromisoformat(
        ago(3)
    )


def test_site_scoping_and_read_only_roles(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    lds, man = make_participant("LDS"), make_participant("MAN")
    lds_event = ok(record(client, lds, h["lds"], "stopped_app_use", ago(5)), 201)
    man_event = ok(record(client, man, h["man"], "stopped_app_use", ago(5)), 201)
    before = stored(session)
    for who in ("man", "clin_man"):
        problem(record(client, lds, h[who], "lost_to_follow_up", ago(2)), 404)
        problem(change(client, lds_event["id"], h[who], event_date=ago(4), change_reason="x"), 404)
        problem(retract(client, lds_event["id"], h[who]), 404)
        problem(client.get(f"{BASE}/participants/{lds}/disposition-events", headers=h[who]), 404)
    for who in ("sponsor", "monitor", "blinded", "unblinded"):
        problem(record(client, lds, h[who], "lost_to_follow_up", ago(2)), 403)
        problem(change(client, lds_event["id"], h[who], event_date=ago(4), change_reason="x"), 403)
        listed = ok(client.get(f"{BASE}/disposition-events", headers=h[who]))
        assert {e["id"] for e in listed} == {lds_event["id"], man_event["id"]}
    assert stored(session) == before
    assert [e["id"] for e in ok(client.get(f"{BASE}/disposition-events", headers=h["lds"]))] == [
        lds_event["id"]
    ]


def test_a_disposition_event_cannot_be_deleted_by_the_orm_nor_by_sql(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    event_id = uuid.UUID(ok(record(client, make_participant(), h["lds"], "completed", ago(1)), 201)["id"])
    event = session.get(DispositionEvent, event_id)
    assert event is not None
    session.delete(event)
    with pytest.raises(Conflict, match="cannot be deleted"):
        session.flush()
    session.expunge_all()
    with pytest.raises(DBAPIError, match="disposition events cannot be deleted"), session.begin_nested():
        session.connection().execute(text("DELETE FROM disposition_event"))
    assert session.get(DispositionEvent, event_id) is not None
    chain_verifies(session)


def test_concurrent_end_of_study_records_leave_exactly_one(
    fresh_database_url: str, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Eight requests at once, each an end of study of the same participant: one is recorded,
    seven are refused as conflicts (never a database error)."""
    people = committed_trial(
        fresh_database_url, {"sponsor": "sam:sponsor:TRIAL", "lds": "cora:coordinator:TRIAL:LDS"}
    )
    workers = 8
    engine = make_engine(fresh_database_url, pool_size=workers, max_overflow=0)
    outcomes: list[str] = []
    lock = threading.Lock()
    kinds = ("withdrawal_by_subject", "lost_to_follow_up", "completed", "withdrawal_by_investigator")

    def work(k: int) -> None:
        with Session(engine, expire_on_commit=False) as session:
            audit.set_actor(session, accounts.actor_for(people["lds"], "api"))
            data = DispositionCreate.model_validate(
                {"kind": kinds[k % len(kinds)], "event_date": TODAY, "reason": f"worker {k}"}
            )
            try:
                services.record_disposition(
                    CODE, "LDS-0001", data, session=session, by=people["lds"], today=TODAY
                )
                session.commit()
                outcome = "recorded"
            except Conflict:
                session.rollback()
                outcome = "conflict"
        with lock:
            outcomes.append(outcome)

    try:
        elapsed = run_workers(workers, work)
        with capsys.disabled():
            print(f"\n[{backend}] {workers} concurrent end-of-study records: {elapsed:.2f} s")
        assert sorted(outcomes) == ["conflict"] * (workers - 1) + ["recorded"]
        with Session(engine) as session:
            rows = session.exec(select(DispositionEvent)).all()
            assert len(rows) == 1
            assert audit.verify_chain(session.connection()).ok
    finally:
        engine.dispose()
