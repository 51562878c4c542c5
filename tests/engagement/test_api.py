"""Engagement days through the JSON API: all or nothing, errors naming the day and the field,
corrections only with a reason (the audit trail keeps the old values), site scoping, no arm."""

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from tests.assessments.conftest import (
    BASE,
    TODAY,
    chain_verifies,
    day,
    no_arm_in,
    ok,
    participant_id,
    problem,
    rules,
)
from trials.core.audit.models import AuditEntry
from trials.engagement.models import EngagementDay
from trials.participants.models import Participant


def one(n: int, sessions: Any = 1, minutes: Any = 20, modules: Any = 0) -> dict[str, Any]:
    return {"day": day(n), "sessions": sessions, "minutes": minutes, "modules_completed": modules}


def post(client: Any, label: str, headers: dict[str, str], days: list[dict[str, Any]], **extra: Any) -> Any:
    return client.post(
        f"{BASE}/participants/{label}/engagement", json={"days": days, **extra}, headers=headers
    )


def count(session: Session) -> tuple[int, int]:
    session.expire_all()
    return (
        int(session.scalar(select(func.count()).select_from(EngagementDay)) or 0),
        int(session.scalar(select(func.count()).select_from(AuditEntry)) or 0),
    )


def test_days_are_stored_and_read_back_with_totals_and_no_arm(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    answer = ok(post(client, label, h["lds"], [one(1, 2, 35, 1), one(2, 0, 0, 0), one(3, 1, 10, 0)]))
    assert [d["day"] for d in answer["days"]] == [day(1), day(2), day(3)]
    assert answer["totals"] == {"days_used": 2, "sessions": 3, "minutes": 45, "modules_completed": 1}
    assert {d["source"] for d in answer["days"]} == {"api"}
    read = client.get(f"{BASE}/participants/{label}/engagement", headers=h["lds"])
    assert ok(read) == answer
    no_arm_in(read.get_data(as_text=True))
    # App use reveals the arm (a waitlist has none): a role the protocol blinds may not read it.
    refused = client.get(f"{BASE}/participants/{label}/engagement", headers=h["blinded"])
    assert refused.status_code == 403
    assert "reveals their arm" in refused.get_json()["detail"]
    assert ok(client.get(f"{BASE}/participants/{label}/engagement", headers=h["sponsor"])) == answer
    chain_verifies(session)


@pytest.mark.parametrize(
    ("entry", "field", "rule"),
    [
        (one(2, minutes=1441), "days[1].minutes", "range"),
        (one(2, minutes=-5), "days[1].minutes", "range"),
        (one(2, sessions=2000), "days[1].sessions", "range"),
        (one(2, modules=101), "days[1].modules_completed", "range"),
        (one(2, minutes="20"), "days[1].minutes", "int_type"),
        (one(2, minutes=20.5), "days[1].minutes", "int_type"),
        (one(2, minutes=True), "days[1].minutes", "int_type"),
        (one(2, sessions=0, minutes=5), "days[1].sessions", "use_needs_a_session"),
        ({**one(2), "day": (TODAY + timedelta(days=1)).isoformat()}, "days[1].day", "not_future"),
        (one(-1), "days[1].day", "not_before_randomization"),
        ({**one(2), "day": "02/11/2026"}, "days[1].day", "date_type"),
        ({**one(2), "day": "2026-10-18T00:00:00Z"}, "days[1].day", "date_type"),
        ({**one(2), "day": 1735689600}, "days[1].day", "date_type"),
        (one(1), "days[1].day", "duplicate_in_request"),
        ({**one(2), "steps": 4000}, "days[1].steps", "extra_forbidden"),
    ],
)
def test_one_bad_day_stores_none_and_names_the_day_and_the_rule(
    client: Any, session: Session, h: Any, make_participant: Any, entry: dict[str, Any], field: str, rule: str
) -> None:
    label = make_participant()
    before = count(session)
    found = rules(problem(post(client, label, h["lds"], [one(1), entry, one(3)]), 422))
    assert (field, rule) in found, found
    assert count(session) == before


def test_a_day_already_recorded_is_corrected_only_with_a_reason(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    ok(post(client, label, h["lds"], [one(1, 1, 20, 0), one(2, 1, 15, 0)]))
    before = count(session)
    found = problem(post(client, label, h["lds"], [one(2, 2, 40, 1), one(3)]), 422)
    assert rules(found) == {("reason", "required")}
    assert day(2) in found["detail"] + str(found["errors"])
    assert count(session) == before
    # The same values again change nothing and need no reason.
    ok(post(client, label, h["lds"], [one(1, 1, 20, 0)]))
    assert count(session) == before
    answer = ok(post(client, label, h["lds"], [one(2, 2, 40, 1), one(3)], reason="app sync was late"))
    assert [(d["day"], d["minutes"]) for d in answer["days"]] == [(day(1), 20), (day(2), 40), (day(3), 20)]
    updates = session.scalars(
        select(AuditEntry)
        .where(col(AuditEntry.table_name) == "engagement_day", col(AuditEntry.action) == "update")
        .order_by(col(AuditEntry.field))
    ).all()
    assert {(e.field, e.old_value, e.new_value) for e in updates} == {
        ("minutes", "15", "40"),
        ("modules_completed", "0", "1"),
        ("sessions", "1", "2"),
    }
    assert {(e.reason, e.username) for e in updates} == {("app sync was late", "cora")}
    chain_verifies(session)


def test_site_scoping_permissions_and_randomization(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    mine, theirs, waiting = make_participant(), make_participant("MAN"), make_participant(randomize=False)
    before = count(session)
    problem(post(client, theirs, h["lds"], [one(1)]), 404)
    problem(client.get(f"{BASE}/participants/{theirs}/engagement", headers=h["lds"]), 404)
    problem(post(client, "LDS-9999", h["lds"], [one(1)]), 404)
    problem(post(client, mine, h["clin_lds"], [one(1)]), 403)  # clinicians follow up, they do not enter
    problem(post(client, mine, h["sponsor"], [one(1)]), 403)
    assert "randomiz" in problem(post(client, waiting, h["lds"], [one(1)]), 409)["detail"]
    problem(post(client, mine, h["lds"], []), 422)
    assert count(session) == before
    ok(client.get(f"{BASE}/participants/{mine}/engagement", headers=h["clin_lds"]))
    ok(client.get(f"{BASE}/participants/{theirs}/engagement", headers=h["sponsor"]))


def test_a_locked_database_refuses_engagement(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant()
    ok(client.post(f"{BASE}/database-lock", json={"reason": "final review"}, headers=h["sponsor"]), 201)
    before = count(session)
    assert "locked" in problem(post(client, label, h["lds"], [one(1)]), 409)["detail"]
    assert count(session) == before


@pytest.mark.parametrize(
    "values",
    [
        {"sessions": 1, "minutes": 1441, "modules_completed": 0},
        {"sessions": -1, "minutes": 0, "modules_completed": 0},
        {"sessions": 0, "minutes": 5, "modules_completed": 0},
        {
            "sessions": 1,
            "minutes": 5,
            "modules_completed": 0,
            "source": "import",
        },  # an import names its batch
    ],
)
def test_the_database_enforces_the_ranges_too(
    session: Session, make_participant: Any, values: dict[str, Any]
) -> None:
    label = make_participant()
    pid = participant_id(session, label)
    trial_id = session.scalars(select(Participant.trial_id).where(col(Participant.id) == pid)).one()
    session.add(EngagementDay(trial_id=trial_id, participant_id=pid, day=TODAY, **values))
    with pytest.raises(IntegrityError), session.begin_nested():
        session.flush()
