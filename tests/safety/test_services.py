"""Safety events: undeletable, followed up only by a clinician of the site, escalated when
overdue, listed per site and never hidden by blinding."""

import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col

from tests.assessments.conftest import BASE, CODE, chain_verifies, counts, day, ok, phq9, problem
from trials.core.audit.models import AuditEntry
from trials.core.errors import Conflict
from trials.safety import services
from trials.safety.models import Notification, OutboxMessage, SafetyEvent


def positive(client: Any, h: Any, label: str, visit_day: int = 14) -> dict[str, Any]:
    created = ok(
        client.post(
            f"{BASE}/participants/{label}/assessments",
            json={
                "instrument": "PHQ-9",
                "assessed_on": day(visit_day),
                "items": phq9(1, 1, 1, 1, 1, 1, 1, 1, 1),
            },
            headers=h["lds" if label.startswith("LDS") else "man"],
        ),
        201,
    )
    [event] = created["safety_events"]
    return dict(event)


def test_a_safety_event_cannot_be_deleted_by_the_orm_nor_by_sql(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    event = positive(client, h, make_participant())
    stored = session.get(SafetyEvent, uuid.UUID(event["id"]))
    assert stored is not None
    session.delete(stored)
    with pytest.raises(Conflict, match="cannot be deleted"):
        session.flush()
    session.expunge_all()
    with pytest.raises(DBAPIError, match="cannot be deleted"), session.begin_nested():
        session.connection().execute(text("DELETE FROM safety_event"))
    assert session.get(SafetyEvent, uuid.UUID(event["id"])) is not None
    chain_verifies(session)


def test_follow_up_by_a_clinician_of_the_site_closes_the_event(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    event = positive(client, h, make_participant())
    url = f"{BASE}/safety-events/{event['id']}/follow-up"
    answer = {"risk_assessment_done": True, "referral": "crisis team", "notes": "called the participant"}
    before = counts(session)
    problem(client.post(url, json=answer, headers=h["lds"]), 403)  # a coordinator
    problem(client.post(url, json=answer, headers=h["clin_man"]), 404)  # another site's clinician
    problem(client.post(url, json=answer, headers=h["sponsor"]), 403)
    problem(
        client.post(f"{BASE}/safety-events/{uuid.uuid4()}/follow-up", json=answer, headers=h["clin_lds"]), 404
    )
    assert counts(session) == before

    closed = ok(client.post(url, json=answer, headers=h["clin_lds"]))
    assert (closed["status"], closed["followed_up_by"], closed["risk_assessment_done"]) == (
        "closed",
        "cleo",
        True,
    )
    assert closed["referral"] == "crisis team"
    assert closed["followed_up_at"] is not None
    problem(client.post(url, json=answer, headers=h["clin_lds2"]), 409)
    entry = session.scalars(
        select(AuditEntry).where(
            col(AuditEntry.record_id) == event["id"],
            col(AuditEntry.field) == "status",
            col(AuditEntry.action) == "update",
        )
    ).one()
    assert (entry.old_value, entry.new_value, entry.reason) == (
        '"open"',
        '"closed"',
        "called the participant",
    )
    assert entry.role == "clinician"
    chain_verifies(session)


def test_events_are_listed_per_site_and_never_hidden_by_blinding(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    lds = positive(client, h, make_participant("LDS"))
    man = positive(client, h, make_participant("MAN"))
    assert [e["id"] for e in ok(client.get(f"{BASE}/safety-events", headers=h["lds"]))] == [lds["id"]]
    assert [e["id"] for e in ok(client.get(f"{BASE}/safety-events", headers=h["clin_man"]))] == [man["id"]]
    for who in ("sponsor", "blinded"):
        assert {e["id"] for e in ok(client.get(f"{BASE}/safety-events", headers=h[who]))} == {
            lds["id"],
            man["id"],
        }


def test_escalate_overdue_escalates_only_overdue_open_events_and_notifies_sponsors(
    client: Any, session: Session, h: Any, make_participant: Any, people: Any
) -> None:
    overdue = positive(client, h, make_participant())
    followed = positive(client, h, make_participant())
    ok(
        client.post(
            f"{BASE}/safety-events/{followed['id']}/follow-up",
            json={"risk_assessment_done": True},
            headers=h["clin_lds"],
        )
    )
    stored = session.get(SafetyEvent, uuid.UUID(overdue["id"]))
    assert stored is not None
    assert services.escalate_overdue(CODE, session=session, now=stored.due_at - timedelta(minutes=1)) == []

    later = stored.due_at + timedelta(hours=1)
    escalated = services.escalate_overdue(CODE, session=session, now=later)
    assert [e.id for e in escalated] == [stored.id]
    assert stored.escalated_at == later
    sponsor = people["sponsor"].user_id
    notes = session.scalars(select(Notification).where(col(Notification.user_id) == sponsor)).all()
    mails = session.scalars(select(OutboxMessage).where(col(OutboxMessage.user_id) == sponsor)).all()
    assert [n.safety_event_id for n in notes] == [m.safety_event_id for m in mails] == [stored.id]
    assert "OVERDUE" in mails[0].subject
    entry = session.scalars(
        select(AuditEntry).where(
            col(AuditEntry.record_id) == overdue["id"], col(AuditEntry.field) == "escalated_at"
        )
    ).one()
    assert entry.reason is not None
    assert "overdue" in entry.reason
    assert services.escalate_overdue(CODE, session=session, now=later + timedelta(hours=5)) == []  # once
    listed = {e["id"]: e for e in ok(client.get(f"{BASE}/safety-events", headers=h["sponsor"]))}
    assert listed[overdue["id"]]["escalated_at"] is not None
    chain_verifies(session)


def test_signals() -> None:
    def kinds(**kw: Any) -> list[str]:
        args = {"instrument": "PHQ-9", "item9": 0, "total": 10, "baseline_total": 10, "threshold": 6} | kw
        return [k.value for k in services.signals(**args)]

    assert kinds() == []
    assert kinds(item9=1) == ["item9_positive"]
    assert kinds(item9=None, total=None) == ["item9_missing"]
    assert kinds(total=16) == ["deterioration"]
    assert kinds(total=15) == []
    assert kinds(baseline_total=None, total=27) == []
    assert kinds(instrument="GAD-7", item9=None) == []
