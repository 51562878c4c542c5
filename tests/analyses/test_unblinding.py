"""Unblinding the trial: a locked plan and a locked database first, the sponsor or the unblinded
statistician, a reason; once, for good, on the audit trail."""

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from tests.assessments.conftest import BASE, CODE, chain_verifies, ok, problem, rules
from tests.conftest import bearer, set_up_example_trial
from trials.analyses.models import TrialUnblinding
from trials.core.audit.models import AuditEntry
from trials.core.errors import Conflict
from trials.dblock import services as dblock

STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "stat": "stella:statistician_unblinded:TRIAL",
    "blind": "blake:statistician_blinded:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "monitor": "mona:monitor:TRIAL",
}


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Any]:
    return set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x09" * 32)


@pytest.fixture
def h(session: Session, people: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {name: bearer(session, principal) for name, principal in people.items()}


def unblind(client: Any, headers: dict[str, str], reason: Any = "final analysis per SAP section 9") -> Any:
    return client.post(
        f"{BASE}/unblinding", json={} if reason is ... else {"reason": reason}, headers=headers
    )


def lock(session: Session, people: dict[str, Any]) -> None:
    dblock.lock_database(CODE, reason="all queries resolved", session=session, by=people["sponsor"])
    session.flush()


def records(session: Session) -> int:
    return len(session.exec(select(TrialUnblinding)).all())


def test_unblinding_needs_the_database_lock_a_reason_and_the_right_role(
    client: Any, session: Session, people: dict[str, Any], h: dict[str, dict[str, str]]
) -> None:
    assert ok(client.get(f"{BASE}/unblinding", headers=h["blind"]))["unblinded"] is False
    assert "not locked" in problem(unblind(client, h["sponsor"]), 409)["detail"]
    lock(session, people)
    assert rules(problem(unblind(client, h["sponsor"], reason="  "), 422)) == {("reason", "required")}
    for who in ("blind", "lds", "monitor"):
        assert "sponsor or the unblinded statistician" in problem(unblind(client, h[who]), 403)["detail"]
    assert records(session) == 0

    done = ok(unblind(client, h["stat"]), 201)
    assert done["unblinded"] is True
    assert done["unblinded_by"] == "stella"
    assert done["reason"] == "final analysis per SAP section 9"
    assert done["protocol_version"] == 1
    assert done["database_locked_at"] is not None
    assert ok(client.get(f"{BASE}/unblinding", headers=h["monitor"]))["unblinded"] is True
    assert "already unblinded" in problem(unblind(client, h["sponsor"]), 409)["detail"]
    assert records(session) == 1

    # Arm-level results were released on these data: the database stays locked.
    with pytest.raises(Conflict, match="stays locked"):
        dblock.unlock_database(CODE, reason="one more correction", session=session, by=people["sponsor"])
    assert dblock.is_locked(people["sponsor"].grants[0].trial_id, session)
    (record,) = session.exec(select(TrialUnblinding)).all()
    entries = session.exec(
        select(AuditEntry).where(
            col(AuditEntry.table_name) == "trial_unblinding", col(AuditEntry.record_id) == str(record.id)
        )
    ).all()
    assert {e.reason for e in entries} == {"final analysis per SAP section 9"}
    assert {e.username for e in entries} == {"stella"}
    chain_verifies(session)


def test_the_unblinding_is_final(
    client: Any, session: Session, people: dict[str, Any], h: dict[str, dict[str, str]]
) -> None:
    lock(session, people)
    ok(unblind(client, h["sponsor"]), 201)
    record = session.exec(select(TrialUnblinding)).one()
    record.reason = "something else"
    session.add(record)
    with pytest.raises(Conflict, match="cannot be changed"):
        session.flush()
    session.expire_all()
    with pytest.raises(DBAPIError, match="cannot be changed or undone"), session.begin_nested():
        session.connection().execute(text("DELETE FROM trial_unblinding"))
    with pytest.raises(DBAPIError, match="cannot be changed or undone"), session.begin_nested():
        session.connection().execute(text("UPDATE trial_unblinding SET reason = 'x'"))
    assert records(session) == 1


def test_a_trial_without_a_locked_plan_cannot_be_unblinded(
    client: Any, session: Session, make_site: Any, make_user: Any
) -> None:
    from protocols import services as protocols
    from protocols.document import example_protocol_path
    from trials.core.accounts import services as accounts

    source = protocols.Source(example_protocol_path().read_bytes(), "yaml")
    for site in source.parse().document.sites:
        make_site(site.code, site.name, site.country)
    protocols.register(source, session=session, by=accounts.SYSTEM)
    sponsor = make_user("sid", f"sponsor:{CODE}")[1]
    dblock.lock_database(CODE, reason="locked early", session=session, by=sponsor)
    session.flush()
    assert "no locked protocol" in problem(unblind(client, bearer(session, sponsor)), 409)["detail"]
