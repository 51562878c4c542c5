"""Screening against the locked protocol, site-prefixed labels, enrolment, site-scoped access."""

import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from protocols import services as protocols
from protocols.document import example_protocol_path
from tests.conftest import PASSWORD, create_user_with_grants
from trials.core.accounts import services as accounts
from trials.core.accounts.models import SiteCreate
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.audit.models import AuditEntry
from trials.core.db import make_engine
from trials.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from trials.participants import services
from trials.participants.models import Participant, ScreeningCreate, Status

CODE = "MOOD-CBT-01"
TODAY = date(2026, 11, 26)
SITE_NAMES = {
    "LDS": "Leeds Community Mental Health Research Unit",
    "MAN": "Manchester Primary Care Psychology Service",
    "BRS": "Bristol Talking Therapies Research Clinic",
}

# -- set-up helpers (plain functions: also used on databases of their own) ---------------------


def acting(session: Session, principal: Principal, channel: str = "web") -> Principal:
    """Record `principal` as the actor of the session's changes, as the web, API and CLI do."""
    audit.set_actor(session, accounts.actor_for(principal, channel))
    return principal


def add_sites(session: Session, codes: Sequence[str] = ("LDS", "MAN", "BRS")) -> None:
    audit.set_actor(session, audit.Actor.system())
    for code in codes:
        accounts.create_site(
            SiteCreate(code=code, name=SITE_NAMES.get(code, f"{code} Clinic"), country="GB"),
            session=session,
            by=accounts.SYSTEM,
        )


def new_user(session: Session, username: str, *grants: str) -> Principal:
    """new_user(s, "cora", "coordinator:MOOD-CBT-01:LDS"): like the `make_user` fixture."""
    return create_user_with_grants(session, username, *grants)[1]


def register_example(session: Session, *, lock: bool = True) -> Principal:
    """Register the example protocol (which creates the trial) and lock it as sponsor "sam"."""
    audit.set_actor(session, audit.Actor.system())
    protocols.register(
        protocols.Source(example_protocol_path().read_bytes(), "yaml"), session=session, by=accounts.SYSTEM
    )
    sponsor = new_user(session, "sam", f"sponsor:{CODE}")
    if lock:
        protocols.lock(
            CODE, 1, password=PASSWORD, session=session, by=acting(session, sponsor), lockout_threshold=6
        )
    audit.set_actor(session, audit.Actor.system())
    return sponsor


def answers(site: str = "LDS", **changes: Any) -> ScreeningCreate:
    data: dict[str, Any] = {
        "site_code": site,
        "screened_on": TODAY - timedelta(days=3),
        "age_years": 34,
        "screening_phq9": 12,
        "inclusion_met": True,
        "exclusion_present": False,
    }
    data.update(changes)
    return ScreeningCreate(**data)


def screen(session: Session, by: Principal, site: str = "LDS", **changes: Any) -> Participant:
    return services.screen(
        CODE, answers(site, **changes), session=session, by=acting(session, by), today=TODAY
    )


def enrol(
    session: Session, by: Principal, label: str, consent: date = TODAY - timedelta(days=1)
) -> Participant:
    return services.enrol(CODE, label, consent, session=session, by=acting(session, by), today=TODAY)


def entries(session: Session, **where: Any) -> list[AuditEntry]:
    query = select(AuditEntry)
    for name, value in where.items():
        query = query.where(getattr(AuditEntry, name) == value)
    return list(session.exec(query.order_by(col(AuditEntry.seq))).all())


def n_participants(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Participant)) or 0)


def chain_ok(session: Session) -> None:
    report = audit.verify_chain(session.connection())
    assert report.ok, report


def field_rules(error: InvalidInput) -> list[tuple[str, str]]:
    return [(e.field, e.rule) for e in error.errors]


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def sponsor(session: Session) -> Principal:
    add_sites(session)
    return register_example(session)


@pytest.fixture
def cora(session: Session, sponsor: Principal) -> Principal:
    return new_user(session, "cora", f"coordinator:{CODE}:LDS")


@pytest.fixture
def mads(session: Session, sponsor: Principal) -> Principal:
    return new_user(session, "mads", f"coordinator:{CODE}:MAN")


# -- screening --------------------------------------------------------------------------------


def test_an_eligible_screening_is_recorded_and_audited(session: Session, cora: Principal) -> None:
    participant = screen(session, cora, age_years=18, screening_phq9=19)
    assert participant.label == "LDS-0001"
    assert participant.status == Status.SCREENED.value
    assert participant.eligible is True
    assert participant.screen_failure_reasons is None
    assert services.reasons_of(participant) == []
    assert (participant.age_years, participant.screening_phq9) == (18, 19)
    assert participant.consent_date is None
    inserted = entries(session, table_name="participant", record_id=str(participant.id))
    assert {e.action for e in inserted} == {"insert"}
    assert {(e.username, e.role, e.channel) for e in inserted} == {("cora", "coordinator", "web")}
    assert {e.trial_id for e in inserted} == {participant.trial_id}
    values = {e.field: e.new_value for e in inserted}
    assert values["label"] == json.dumps("LDS-0001")
    assert values["status"] == json.dumps("screened")
    chain_ok(session)


@pytest.mark.parametrize(
    ("changes", "rules"),
    [
        ({"age_years": 17}, ["age"]),
        ({"age_years": 66}, ["age"]),
        ({"screening_phq9": 9}, ["screening_phq9"]),
        ({"screening_phq9": 20}, ["screening_phq9"]),
        ({"inclusion_met": False}, ["inclusion"]),
        ({"exclusion_present": True}, ["exclusion"]),
        (
            {"age_years": 70, "screening_phq9": 4, "inclusion_met": False, "exclusion_present": True},
            ["age", "screening_phq9", "inclusion", "exclusion"],
        ),
    ],
)
def test_a_screen_failure_is_recorded_with_its_reasons(
    session: Session, cora: Principal, changes: dict[str, Any], rules: list[str]
) -> None:
    participant = screen(session, cora, **changes)
    assert participant.status == Status.SCREEN_FAILED.value
    assert participant.eligible is False
    reasons = services.reasons_of(participant)
    assert [r["rule"] for r in reasons] == rules
    assert all(r["message"] for r in reasons)
    stored = session.exec(select(Participant).where(Participant.id == participant.id)).one()
    assert [r["rule"] for r in json.loads(stored.screen_failure_reasons or "[]")] == rules
    inserted = entries(session, table_name="participant", record_id=str(participant.id))
    assert {e.field: e.new_value for e in inserted}["status"] == json.dumps("screen_failed")
    chain_ok(session)


def test_failure_messages_name_the_value_and_the_rule(session: Session, cora: Principal) -> None:
    reasons = services.reasons_of(screen(session, cora, age_years=66, screening_phq9=9))
    assert reasons == [
        {"rule": "age", "message": "age 66 outside 18-65"},
        {"rule": "screening_phq9", "message": "screening PHQ-9 9 outside 10-19"},
    ]


@pytest.mark.parametrize(("age", "phq9"), [(18, 10), (65, 19), (40, 15)])
def test_the_eligibility_limits_are_inclusive(session: Session, cora: Principal, age: int, phq9: int) -> None:
    assert screen(session, cora, age_years=age, screening_phq9=phq9).eligible is True


def test_labels_are_numbered_per_site(session: Session, cora: Principal, mads: Principal) -> None:
    labels = [
        screen(session, cora).label,
        screen(session, cora, age_years=12).label,  # a screen failure takes a number too
        screen(session, mads, "MAN").label,
        screen(session, cora).label,
        screen(session, mads, "MAN").label,
    ]
    assert labels == ["LDS-0001", "LDS-0002", "MAN-0001", "LDS-0003", "MAN-0002"]


def test_a_future_screening_date_is_refused(session: Session, cora: Principal) -> None:
    with pytest.raises(InvalidInput) as refused:
        screen(session, cora, screened_on=TODAY + timedelta(days=1))
    assert field_rules(refused.value) == [("screened_on", "not_future")]
    assert "screened_on" in refused.value.detail
    assert n_participants(session) == 0
    assert screen(session, cora, screened_on=TODAY).label == "LDS-0001"  # no number was used


def test_a_site_outside_the_protocol_is_refused(session: Session, sponsor: Principal, make_site: Any) -> None:
    make_site("LON", "London Clinic", "GB")
    cora = new_user(session, "cora", f"coordinator:{CODE}:LDS")
    with pytest.raises(InvalidInput) as refused:
        screen(session, cora, "LON")
    assert field_rules(refused.value) == [("site_code", "trial_site")]
    assert n_participants(session) == 0


def test_a_protocol_site_not_set_up_is_refused(session: Session) -> None:
    add_sites(session, ["LDS"])
    register_example(session)
    cora = new_user(session, "cora", f"coordinator:{CODE}:LDS")
    with pytest.raises(InvalidInput) as refused:
        screen(session, cora, "MAN")
    assert field_rules(refused.value) == [("site_code", "exists")]


def test_screening_needs_a_locked_protocol(session: Session) -> None:
    add_sites(session)
    register_example(session, lock=False)
    cora = new_user(session, "cora", f"coordinator:{CODE}:LDS")
    with pytest.raises(Conflict, match="no locked protocol"):
        screen(session, cora)
    with pytest.raises(NotFound):
        services.screen("NO-SUCH-TRIAL", answers(), session=session, by=cora, today=TODAY)


def test_a_coordinator_cannot_screen_at_another_site(session: Session, cora: Principal) -> None:
    with pytest.raises(Forbidden):
        screen(session, cora, "MAN")
    assert n_participants(session) == 0


@pytest.mark.parametrize("grant", [f"sponsor:{CODE}", f"monitor:{CODE}", f"clinician:{CODE}:LDS", "admin"])
def test_only_coordinators_screen(session: Session, sponsor: Principal, grant: str) -> None:
    other = new_user(session, "olga", grant)
    with pytest.raises(Forbidden):
        screen(session, other)
    assert n_participants(session) == 0


def test_a_coordinator_of_another_trial_cannot_screen(session: Session, sponsor: Principal) -> None:
    accounts.create_trial(
        accounts.TrialCreate(code="OTHER-01", title="Another trial"), session=session, by=accounts.SYSTEM
    )
    outsider = new_user(session, "otto", "coordinator:OTHER-01:LDS")
    with pytest.raises(Forbidden):
        screen(session, outsider)


# -- site-scoped reading ------------------------------------------------------------------------


def test_a_coordinator_sees_only_their_sites_participants(
    session: Session, sponsor: Principal, cora: Principal, mads: Principal
) -> None:
    screen(session, cora)
    screen(session, cora, age_years=80)
    screen(session, mads, "MAN")
    assert services.get_participant(CODE, "LDS-0001", session=session, by=cora).label == "LDS-0001"
    with pytest.raises(NotFound) as hidden:
        services.get_participant(CODE, "MAN-0001", session=session, by=cora)
    with pytest.raises(NotFound) as missing:
        services.get_participant(CODE, "MAN-0099", session=session, by=cora)
    # Another site's participant is refused exactly like one that does not exist.
    assert str(hidden.value).replace("MAN-0001", "X") == str(missing.value).replace("MAN-0099", "X")
    assert [p.label for p in services.list_participants(CODE, session=session, by=cora)] == [
        "LDS-0001",
        "LDS-0002",
    ]
    assert [p.label for p in services.list_participants(CODE, session=session, by=mads)] == ["MAN-0001"]
    everyone = ["LDS-0001", "LDS-0002", "MAN-0001"]
    assert [p.label for p in services.list_participants(CODE, session=session, by=sponsor)] == everyone
    assert services.get_participant(CODE, "MAN-0001", session=session, by=sponsor).label == "MAN-0001"
    monitor = new_user(session, "mona", f"monitor:{CODE}")
    assert [p.label for p in services.list_participants(CODE, session=session, by=monitor)] == everyone


def test_a_coordinator_of_two_sites_sees_both(session: Session, sponsor: Principal, mads: Principal) -> None:
    both = new_user(session, "bob", f"coordinator:{CODE}:LDS", f"coordinator:{CODE}:MAN")
    screen(session, both)
    screen(session, both, "MAN")
    screen(session, new_user(session, "bri", f"coordinator:{CODE}:BRS"), "BRS")
    assert [p.label for p in services.list_participants(CODE, session=session, by=both)] == [
        "LDS-0001",
        "MAN-0001",
    ]


def test_people_outside_the_trial_see_nothing(session: Session, cora: Principal) -> None:
    screen(session, cora)
    for grant in ("admin", "coordinator:OTHER-01:LDS"):
        if grant != "admin":
            accounts.create_trial(
                accounts.TrialCreate(code="OTHER-01", title="Another trial"),
                session=session,
                by=accounts.SYSTEM,
            )
        outsider = new_user(session, f"out{len(grant)}", grant)
        with pytest.raises(Forbidden):
            services.list_participants(CODE, session=session, by=outsider)
        with pytest.raises(Forbidden):
            services.get_participant(CODE, "LDS-0001", session=session, by=outsider)


# -- enrolment --------------------------------------------------------------------------------


def test_enrolment_records_consent_and_is_audited(session: Session, cora: Principal) -> None:
    participant = screen(session, cora)
    consent = TODAY - timedelta(days=1)
    enrolled = enrol(session, cora, participant.label, consent)
    assert (enrolled.status, enrolled.consent_date) == (Status.ENROLLED.value, consent)
    updates = entries(session, table_name="participant", record_id=str(participant.id), action="update")
    assert {e.field: (e.old_value, e.new_value) for e in updates} == {
        "status": (json.dumps("screened"), json.dumps("enrolled")),
        "consent_date": (None, json.dumps(consent.isoformat())),
    }
    assert {(e.username, e.role, e.reason) for e in updates} == {
        ("cora", "coordinator", f"enrolled on informed consent dated {consent.isoformat()}")
    }
    consent_today = enrol(session, cora, screen(session, cora).label, TODAY)
    assert consent_today.consent_date == TODAY
    chain_ok(session)


def test_a_future_consent_date_is_refused(session: Session, cora: Principal) -> None:
    label = screen(session, cora).label
    with pytest.raises(InvalidInput) as refused:
        enrol(session, cora, label, TODAY + timedelta(days=1))
    assert field_rules(refused.value) == [("consent_date", "not_future")]
    assert "consent_date" in refused.value.detail
    participant = services.get_participant(CODE, label, session=session, by=cora)
    assert (participant.status, participant.consent_date) == ("screened", None)
    assert not entries(session, table_name="participant", record_id=str(participant.id), action="update")


def test_a_screen_failure_cannot_be_enrolled(session: Session, cora: Principal) -> None:
    label = screen(session, cora, exclusion_present=True).label
    with pytest.raises(Conflict, match="failed screening"):
        enrol(session, cora, label)
    assert services.get_participant(CODE, label, session=session, by=cora).status == "screen_failed"


def test_a_participant_is_enrolled_once(session: Session, cora: Principal) -> None:
    label = screen(session, cora).label
    enrol(session, cora, label)
    with pytest.raises(Conflict, match="already enrolled"):
        enrol(session, cora, label, TODAY)
    participant = services.get_participant(CODE, label, session=session, by=cora)
    assert participant.consent_date == TODAY - timedelta(days=1)
    assert (
        len(entries(session, table_name="participant", record_id=str(participant.id), action="update")) == 2
    )


def test_enrolment_is_for_the_sites_coordinator(
    session: Session, sponsor: Principal, cora: Principal, mads: Principal
) -> None:
    label = screen(session, cora).label
    with pytest.raises(NotFound):
        enrol(session, mads, label)
    with pytest.raises(Forbidden):
        enrol(session, sponsor, label)  # sees the participant, may not enter data
    clinician = new_user(session, "cleo", f"clinician:{CODE}:LDS")
    with pytest.raises(Forbidden):
        enrol(session, clinician, label)
    with pytest.raises(NotFound):
        enrol(session, cora, "LDS-0999")
    assert services.get_participant(CODE, label, session=session, by=cora).status == "screened"


def test_every_change_is_audited_and_the_chain_verifies(
    session: Session, cora: Principal, mads: Principal
) -> None:
    people = [screen(session, cora), screen(session, mads, "MAN"), screen(session, cora, age_years=90)]
    enrol(session, cora, people[0].label)
    enrol(session, mads, people[1].label)
    for p in people:
        inserted = entries(session, table_name="participant", record_id=str(p.id), action="insert")
        assert {e.field for e in inserted} >= {"label", "status", "site_id", "screened_on", "age_years"}
    for p in people[:2]:
        assert entries(session, table_name="participant", record_id=str(p.id), action="update")
    assert not entries(session, table_name="participant", record_id=str(people[2].id), action="update")
    chain_ok(session)


# -- concurrency --------------------------------------------------------------------------------


def run_workers(n: int, work: Callable[[int], None]) -> float:
    """Run `work(k)` for k in 0..n-1 on n threads started together; re-raise the first error."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []

    def target(k: int) -> None:
        try:
            barrier.wait()
            work(k)
        except BaseException as exc:  # collected and re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(k,)) for k in range(n)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


def test_concurrent_screenings_get_distinct_consecutive_labels(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url, pool_size=10, max_overflow=0)
    try:
        with Session(engine) as session:
            add_sites(session)
            register_example(session)
            coordinators = {
                site: new_user(session, f"co{site.lower()}", f"coordinator:{CODE}:{site}")
                for site in ("LDS", "MAN")
            }
            session.commit()

        def work(k: int) -> None:
            site = ("LDS", "MAN")[k % 2]
            with Session(engine) as session:
                for _ in range(5):
                    screen(session, coordinators[site], site)
                    session.commit()

        run_workers(10, work)
        with Session(engine) as session:
            labels = sorted(session.exec(select(Participant.label)).all())
            assert labels == [f"{s}-{n:04d}" for s in ("LDS", "MAN") for n in range(1, 26)]
            chain_ok(session)
    finally:
        engine.dispose()
