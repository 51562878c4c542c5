"""Database lock per trial: after the sponsor locks it, no entry or change of the trial's data by
any path (refused with 409, nothing stored); unlock needs the sponsor and a reason; both
audited; other trials unaffected."""

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlmodel import Session, col

from protocols import services as protocols
from protocols.document import example_protocol_path
from tests.assessments.conftest import (
    BASE,
    CODE,
    CONSENTED,
    TODAY,
    chain_verifies,
    day,
    ok,
    phq9,
    problem,
    rules,
)
from tests.conftest import (
    PASSWORD,
    bearer,
    create_user_with_grants,
    query_rows,
    run_cli,
    set_up_example_trial,
    site_and_user_makers,
)
from trials.assessments.models import Assessment
from trials.core.accounts import services as accounts
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.core.db import make_engine
from trials.core.errors import Conflict
from trials.dblock import services as dblock
from trials.dblock.models import DatabaseLock
from trials.participants import services as participants
from trials.participants.models import Participant, ScreeningCreate
from trials.randomization import services as randomization
from trials.randomization.models import AllocationSlot

OTHER = "MOOD-CBT-02"
CLEAN = phq9(1, 1, 1, 1, 1, 1, 1, 1, 0)
STAFF = {
    "sponsor": "sam:sponsor:TRIAL",
    "lds": "cora:coordinator:TRIAL:LDS",
    "blinded": "bea:statistician_blinded:TRIAL",
}


def screening(site: str = "LDS") -> dict[str, Any]:
    return {
        "site_code": site,
        "screened_on": CONSENTED.isoformat(),
        "age_years": 30,
        "screening_phq9": 12,
        "inclusion_met": True,
        "exclusion_present": False,
    }


def register_other_trial(session: Session, sponsor: Principal) -> Principal:
    """A second trial (the example protocol under another code), locked; its coordinator."""
    text = example_protocol_path().read_bytes().replace(CODE.encode(), OTHER.encode())
    protocols.register(protocols.Source(text, "yaml"), session=session, by=accounts.SYSTEM)
    _user, other_sponsor = create_user_with_grants(session, "otto", f"sponsor:{OTHER}")
    protocols.lock(OTHER, 1, password=PASSWORD, session=session, by=other_sponsor, lockout_threshold=6)
    return create_user_with_grants(session, "olga", f"coordinator:{OTHER}:LDS")[1]


@pytest.fixture
def people(session: Session, make_site: Any, make_user: Any) -> dict[str, Principal]:
    people = set_up_example_trial(session, make_site, make_user, STAFF, live_seed=b"\x03" * 32)
    people["other"] = register_other_trial(session, people["sponsor"])
    session.flush()
    return people


@pytest.fixture
def h(session: Session, people: dict[str, Principal]) -> dict[str, dict[str, str]]:
    return {name: bearer(session, principal) for name, principal in people.items()}


@pytest.fixture
def make_participant(session: Session, people: dict[str, Principal]) -> Callable[..., str]:
    def make(status: str = "randomized") -> str:
        by = people["lds"]
        data = ScreeningCreate.model_validate({**screening(), "screened_on": CONSENTED})
        label = participants.screen(CODE, data, session=session, by=by, today=TODAY).label
        if status in ("enrolled", "randomized"):
            participants.enrol(CODE, label, CONSENTED, session=session, by=by, today=TODAY)
        if status == "randomized":
            randomization.randomize(CODE, label, session=session, by=by)
        session.flush()
        return label

    return make


def lock(client: Any, headers: dict[str, str], reason: str | None = "final data review done") -> Any:
    return client.post(f"{BASE}/database-lock", json={"reason": reason}, headers=headers)


def unlock(client: Any, headers: dict[str, str], reason: str | None = "query resolution") -> Any:
    return client.post(f"{BASE}/database-unlock", json={"reason": reason}, headers=headers)


def stored(session: Session) -> dict[str, int]:
    session.expire_all()

    def count(query: Any) -> int:
        return int(session.scalar(query) or 0)

    return {
        "participants": count(select(func.count()).select_from(Participant)),
        "randomized": count(
            select(func.count())
            .select_from(AllocationSlot)
            .where(col(AllocationSlot.participant_id).isnot(None))
        ),
        "assessments": count(select(func.count()).select_from(Assessment)),
        "audit": count(select(func.count()).select_from(AuditEntry)),
    }


def submit(client: Any, label: str, headers: dict[str, str]) -> Any:
    body = {"instrument": "PHQ-9", "assessed_on": day(0, 0), "items": CLEAN}
    return client.post(f"{BASE}/participants/{label}/assessments", json=body, headers=headers)


def test_after_lock_every_entry_is_409_and_stores_nothing(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    screened, enrolled, randomized = (make_participant(s) for s in ("screened", "enrolled", "randomized"))
    body = ok(lock(client, h["sponsor"]), 201)
    assert body["locked"] is True
    assert body["locked_by"] == "sam"
    before = stored(session)

    found = problem(client.post(f"{BASE}/participants", json=screening(), headers=h["lds"]), 409)
    assert f"the database of trial {CODE} is locked" in found["detail"]
    problem(
        client.post(
            f"{BASE}/participants/{screened}/enrol",
            json={"consent_date": CONSENTED.isoformat()},
            headers=h["lds"],
        ),
        409,
    )
    problem(client.post(f"{BASE}/participants/{enrolled}/randomize", headers=h["lds"]), 409)
    problem(submit(client, randomized, h["lds"]), 409)
    assert stored(session) == before
    assert dblock.is_locked(people_trial_id(session), session)

    # The services and the ORM refuse too, whatever the path.
    participant = session.scalars(select(Participant).where(col(Participant.label) == screened)).one()
    nested = session.begin_nested()
    participant.age_years = 31
    session.add(participant)
    with pytest.raises(Conflict, match="locked"):
        session.flush()
    nested.rollback()
    assert stored(session) == before
    chain_verifies(session)


def people_trial_id(session: Session) -> Any:
    return participants.trial_by_code(CODE, session=session).id


def test_lock_and_unlock_are_audited_with_who_and_why(
    client: Any, session: Session, h: Any, make_participant: Any
) -> None:
    label = make_participant("enrolled")
    ok(lock(client, h["sponsor"]), 201)
    problem(lock(client, h["sponsor"]), 409)  # already locked
    found = problem(unlock(client, h["sponsor"], reason=None), 422)
    assert {f for f, _r in rules(found)} == {"reason"}
    problem(unlock(client, h["sponsor"], reason="   "), 422)
    ok(unlock(client, h["sponsor"], reason="late lab values to enter"))
    problem(unlock(client, h["sponsor"]), 409)  # not locked

    session.expire_all()
    entries = session.scalars(
        select(AuditEntry).where(col(AuditEntry.table_name) == "database_lock").order_by(col(AuditEntry.seq))
    ).all()
    inserted = [e for e in entries if e.action == "insert"]
    deleted = [e for e in entries if e.action == "delete"]
    assert inserted
    assert deleted
    assert {(e.username, e.role, e.reason) for e in inserted} == {
        ("sam", "sponsor", "final data review done")
    }
    assert {(e.username, e.role, e.reason) for e in deleted} == {
        ("sam", "sponsor", "late lab values to enter")
    }
    assert all(e.trial_id == people_trial_id(session) for e in entries)
    assert session.scalar(select(func.count()).select_from(DatabaseLock)) == 0

    # Entry works again after unlock.
    ok(client.post(f"{BASE}/participants/{label}/randomize", headers=h["lds"]))
    ok(client.post(f"{BASE}/participants", json=screening(), headers=h["lds"]), 201)
    chain_verifies(session)


def test_only_the_sponsor_may_lock_or_unlock(client: Any, session: Session, h: Any) -> None:
    before = stored(session)
    problem(lock(client, h["lds"]), 403)
    problem(lock(client, h["blinded"]), 403)
    problem(lock(client, h["other"]), 403)
    assert stored(session) == before
    ok(lock(client, h["sponsor"]), 201)
    before = stored(session)
    problem(unlock(client, h["lds"]), 403)
    problem(unlock(client, h["blinded"]), 403)
    assert stored(session) == before
    assert dblock.is_locked(people_trial_id(session), session)


def test_another_trial_is_unaffected(client: Any, session: Session, h: Any) -> None:
    ok(lock(client, h["sponsor"]), 201)
    created = ok(
        client.post(f"/api/v1/trials/{OTHER}/participants", json=screening(), headers=h["other"]), 201
    )
    assert created["label"].startswith("LDS-")
    problem(client.post(f"{BASE}/participants", json=screening(), headers=h["lds"]), 409)
    chain_verifies(session)


def test_the_command_line_locks_and_unlocks(fresh_database_url: str) -> None:
    url = fresh_database_url
    engine = make_engine(url)
    with Session(engine) as session:
        audit.set_actor(session, audit.Actor.system())

        make_site, make_user = site_and_user_makers(session)

        set_up_example_trial(session, make_site, make_user, STAFF)
        session.commit()
    engine.dispose()

    result = run_cli(url, "db-lock", CODE, "--reason", "final review", "--as", "cora")
    assert result.exit_code == 1, result.output
    assert "sponsor" in result.output
    result = run_cli(url, "db-lock", CODE, "--reason", "final review", "--as", "sam", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["locked"] is True
    args = ["--site", "LDS", "--screened-on", CONSENTED.isoformat(), "--age", "30", "--phq9", "12"]
    result = run_cli(
        url, "participants", "screen", CODE, *args, "--inclusion-met", "--no-exclusion", "--as", "cora"
    )
    assert result.exit_code == 1, result.output
    assert "locked" in result.output
    assert query_rows(url, "SELECT count(*) FROM participant")[0][0] == 0
    result = run_cli(url, "db-unlock", CODE, "--reason", "  ", "--as", "sam")
    assert result.exit_code == 1, result.output
    assert "reason" in result.output
    result = run_cli(url, "db-unlock", CODE, "--reason", "late data", "--as", "sam", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"trial_code": CODE, "locked": False, "reason": "late data"}
    result = run_cli(
        url, "participants", "screen", CODE, *args, "--inclusion-met", "--no-exclusion", "--as", "cora"
    )
    assert result.exit_code == 0, result.output
    reasons = query_rows(
        url,
        "SELECT action, username, role, reason FROM audit_entry"
        " WHERE table_name = 'database_lock' AND field = 'locked_by' ORDER BY seq",
    )
    assert [tuple(r) for r in reasons] == [
        ("insert", "sam", "sponsor", "final review"),
        ("delete", "sam", "sponsor", "late data"),
    ]
