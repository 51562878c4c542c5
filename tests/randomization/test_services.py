"""Going live, randomizing (also under concurrency, on SQLite and PostgreSQL) and blinding."""

import hashlib
import json
import random
import threading
from collections import Counter, defaultdict
from typing import Any

import pytest
from sqlmodel import Session, col, select

from protocols import services as protocols
from protocols.document import ProtocolDocument, example_protocol_path
from tests.participants.test_services import (
    CODE,
    acting,
    add_sites,
    chain_ok,
    enrol,
    entries,
    new_user,
    register_example,
    run_workers,
    screen,
)
from trials.core.accounts import services as accounts
from trials.core.accounts.models import Role, TrialCreate
from trials.core.accounts.permissions import Principal
from trials.core.audit import services as audit
from trials.core.db import make_engine
from trials.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from trials.participants.models import Participant
from trials.participants.services import locked_protocol, trial_by_code
from trials.randomization import services
from trials.randomization.blocks import SEED_BYTES, stratum_slots
from trials.randomization.models import AllocationList, AllocationSlot, StratumCounter

SEED = hashlib.sha256(b"tests/randomization seed").digest()
# The locked document lists arms and sites sorted by code (canonical form): the list does not
# depend on the order the protocol's author wrote them in.
ARMS = [("ATTN", 1), ("CBT", 1), ("WAIT", 1)]
ARM_WORDS = ("CBT", "ATTN", "WAIT", "MoodStep CBT", "Attention-control", "Waitlist")
BLOCK_SIZES = [3, 6]
STRATA = [f"{site} / PHQ-9 {band}" for site in ("BRS", "LDS", "MAN") for band in ("0-14", "15-27")]
SLOTS = 30


def planned(stratum: str, n: int = SLOTS, seed: bytes = SEED) -> list[Any]:
    return stratum_slots(seed, stratum, ARMS, BLOCK_SIZES, n)


def go_live(session: Session, by: Principal, **kwargs: Any) -> AllocationList:
    kwargs.setdefault("seed", SEED)
    kwargs.setdefault("slots_per_stratum", SLOTS)
    return services.go_live(CODE, session=session, by=acting(session, by), **kwargs)


def randomize(session: Session, by: Principal, label: str) -> AllocationSlot:
    return services.randomize(CODE, label, session=session, by=acting(session, by))


def document(session: Session) -> ProtocolDocument:
    return locked_protocol(trial_by_code(CODE, session=session), session=session)[1]


def slots_of(session: Session, allocation: AllocationList) -> list[AllocationSlot]:
    return list(
        session.exec(
            select(AllocationSlot)
            .where(AllocationSlot.list_id == allocation.id)
            .order_by(col(AllocationSlot.stratum), col(AllocationSlot.position))
        ).all()
    )


def counters(session: Session, allocation: AllocationList) -> dict[str, int]:
    rows = session.exec(select(StratumCounter).where(StratumCounter.list_id == allocation.id)).all()
    return {r.stratum: r.last_position for r in rows}


def list_hash(slots: list[Any]) -> str:
    """The list's hash recomputed independently: the slots in the design's stratum order."""
    order = {s: k for k, s in enumerate(STRATA)}
    ordered = sorted(slots, key=lambda s: (order[s.stratum], s.position))
    canonical = [[s.stratum, s.position, s.block, s.block_size, s.arm_code] for s in ordered]
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def sponsor(session: Session) -> Principal:
    add_sites(session)
    return register_example(session)


@pytest.fixture
def cora(session: Session, sponsor: Principal) -> Principal:
    return new_user(session, "cora", f"coordinator:{CODE}:LDS")


@pytest.fixture
def live(session: Session, sponsor: Principal) -> AllocationList:
    return go_live(session, sponsor)


def enrolled(session: Session, by: Principal, site: str = "LDS", phq9: int = 12) -> str:
    label = screen(session, by, site, screening_phq9=phq9).label
    enrol(session, by, label)
    return label


# -- going live -------------------------------------------------------------------------------


def test_going_live_generates_the_list_from_the_locked_protocol(
    session: Session, sponsor: Principal, live: AllocationList
) -> None:
    trial = trial_by_code(CODE, session=session)
    version, _document = locked_protocol(trial, session=session)
    assert (live.trial_id, live.protocol_version_id, live.created_by) == (trial.id, version.id, "sam")
    assert json.loads(live.design) == {
        "arms": [list(a) for a in ARMS],
        "block_sizes": BLOCK_SIZES,
        "strata": STRATA,
    }
    assert services.strata_of(document(session)) == STRATA
    slots = slots_of(session, live)
    by_stratum: dict[str, list[AllocationSlot]] = defaultdict(list)
    for slot in slots:
        by_stratum[slot.stratum].append(slot)
    assert set(by_stratum) == set(STRATA)
    for stratum, stored in by_stratum.items():
        expected = planned(stratum)
        assert [(s.position, s.block, s.block_size, s.arm_code) for s in stored] == [
            (p.position, p.block, p.block_size, p.arm_code) for p in expected
        ]
        assert all(s.participant_id is None and s.randomized_at is None for s in stored)
    assert counters(session, live) == dict.fromkeys(STRATA, 0)


def test_the_list_hash_is_stored_and_recomputable(session: Session, live: AllocationList) -> None:
    stored = session.exec(select(AllocationList).where(AllocationList.id == live.id)).one()
    assert stored.list_sha256 == list_hash(slots_of(session, live))
    assert stored.list_sha256 == list_hash([p for s in STRATA for p in planned(s)])
    assert stored.slots_per_stratum == SLOTS


def test_only_the_seeds_hash_is_stored(session: Session, live: AllocationList) -> None:
    assert live.seed_sha256 == hashlib.sha256(SEED).hexdigest()
    row = session.exec(select(AllocationList).where(AllocationList.id == live.id)).one()
    text = json.dumps(row.model_dump(), default=str)
    assert SEED.hex() not in text
    for entry in entries(session, table_name="allocation_list"):
        assert SEED.hex() not in (entry.new_value or "")
        assert SEED.hex() not in (entry.reason or "")


def test_without_a_seed_the_list_is_drawn_from_the_systems_source(
    session: Session, sponsor: Principal
) -> None:
    allocation = go_live(session, sponsor, seed=None)
    assert allocation.seed_sha256 != hashlib.sha256(SEED).hexdigest()
    assert allocation.list_sha256 != list_hash([p for s in STRATA for p in planned(s)])


def test_slot_inserts_are_audited_with_the_arm_redacted(session: Session, live: AllocationList) -> None:
    slots = slots_of(session, live)
    inserted = entries(session, table_name="allocation_slot", action="insert")
    assert {e.record_id for e in inserted} == {str(s.id) for s in slots}
    arm_entries = [e for e in inserted if e.field == "arm_code"]
    assert len(arm_entries) == len(slots)
    assert {e.new_value for e in arm_entries} == {json.dumps(audit.REDACTED)}
    assert {(e.username, e.role) for e in inserted} == {("sam", "sponsor")}
    for entry in inserted:  # a blinded reader of the trail learns no arm from any field
        assert not any(word in (entry.new_value or "") for word in ARM_WORDS), entry
    assert {e.field for e in inserted} >= {"stratum", "position", "block", "block_size", "arm_code"}
    assert entries(session, table_name="allocation_list", record_id=str(live.id), action="insert")
    chain_ok(session)


def test_slot_entries_belong_to_the_trial(session: Session, cora: Principal, live: AllocationList) -> None:
    """A monitor reads the trail of their trials only: generation and randomization are in it."""
    slot = randomize(session, cora, enrolled(session, cora))
    assert slot.trial_id == live.trial_id
    slot_entries = entries(session, table_name="allocation_slot")
    assert {e.trial_id for e in slot_entries} == {live.trial_id}
    monitor_view = audit.AuditFilter(table_name="allocation_slot", trial_ids=frozenset({live.trial_id}))
    _page, total = audit.list_entries(monitor_view, session=session)
    assert total == len(slot_entries)
    updates = audit.AuditFilter(record_id=str(slot.id), action="update", trial_ids=frozenset({live.trial_id}))
    assert audit.list_entries(updates, session=session)[1] == 3


@pytest.mark.parametrize(
    "grant",
    [
        f"coordinator:{CODE}:LDS",
        f"clinician:{CODE}:LDS",
        f"monitor:{CODE}",
        f"statistician_unblinded:{CODE}",
        "admin",
    ],
)
def test_only_protocol_managers_go_live(session: Session, sponsor: Principal, grant: str) -> None:
    other = new_user(session, "olga", grant)
    with pytest.raises(Forbidden):
        go_live(session, other)
    assert not session.exec(select(AllocationList)).all()


def test_going_live_needs_a_locked_protocol(session: Session) -> None:
    accounts.create_trial(TrialCreate(code=CODE, title="MoodStep"), session=session, by=accounts.SYSTEM)
    add_sites(session)
    sponsor = new_user(session, "sam", f"sponsor:{CODE}")
    with pytest.raises(Conflict, match="no locked protocol"):
        go_live(session, sponsor)  # no protocol at all
    protocols.register(
        protocols.Source(example_protocol_path().read_bytes(), "yaml"),
        session=session,
        by=acting(session, sponsor),
    )
    with pytest.raises(Conflict, match="no locked protocol"):
        go_live(session, sponsor)  # a draft only
    assert not session.exec(select(AllocationList)).all()


def test_going_live_needs_every_site_set_up(session: Session) -> None:
    add_sites(session, ["LDS", "MAN"])
    sponsor = register_example(session)
    with pytest.raises(Conflict, match="BRS"):
        go_live(session, sponsor)
    assert not session.exec(select(AllocationList)).all()
    add_sites(session, ["BRS"])
    assert go_live(session, sponsor).trial_id is not None


def test_a_trial_goes_live_once(session: Session, sponsor: Principal, live: AllocationList) -> None:
    with pytest.raises(Conflict, match="already live"):
        go_live(session, sponsor, seed=b"\x02" * SEED_BYTES)
    assert [a.id for a in session.exec(select(AllocationList)).all()] == [live.id]


@pytest.mark.parametrize("n", [0, 100_001])
def test_the_list_length_is_bounded(session: Session, sponsor: Principal, n: int) -> None:
    with pytest.raises(InvalidInput) as refused:
        go_live(session, sponsor, slots_per_stratum=n)
    assert [e.field for e in refused.value.errors] == ["slots_per_stratum"]


def test_an_unknown_trial_is_not_found(session: Session, sponsor: Principal) -> None:
    with pytest.raises(NotFound):
        services.go_live("NO-SUCH-TRIAL", session=session, by=sponsor, seed=SEED)


# -- randomizing ------------------------------------------------------------------------------


def test_randomizing_takes_the_next_slot_of_the_stratum(
    session: Session, cora: Principal, live: AllocationList
) -> None:
    first = randomize(session, cora, enrolled(session, cora, phq9=12))
    severe = randomize(session, cora, enrolled(session, cora, phq9=15))
    second = randomize(session, cora, enrolled(session, cora, phq9=14))
    assert (first.stratum, first.position) == ("LDS / PHQ-9 0-14", 1)
    assert (severe.stratum, severe.position) == ("LDS / PHQ-9 15-27", 1)
    assert (second.stratum, second.position) == ("LDS / PHQ-9 0-14", 2)
    for slot in (first, severe, second):
        assert slot.arm_code == planned(slot.stratum)[slot.position - 1].arm_code
        assert slot.randomized_by == "cora"
        assert slot.randomized_at is not None
    participants = {p.id: p.label for p in session.exec(select(Participant)).all()}
    assert [participants[s.participant_id] for s in (first, severe, second)] == [
        "LDS-0001",
        "LDS-0002",
        "LDS-0003",
    ]
    assert counters(session, live) == {
        **dict.fromkeys(STRATA, 0),
        "LDS / PHQ-9 0-14": 2,
        "LDS / PHQ-9 15-27": 1,
    }
    assert services.slot_of(session.get(Participant, first.participant_id), session=session) == first


def test_randomization_is_audited_without_the_arm(
    session: Session, cora: Principal, live: AllocationList
) -> None:
    slot = randomize(session, cora, enrolled(session, cora))
    updates = entries(session, table_name="allocation_slot", record_id=str(slot.id), action="update")
    assert {e.field for e in updates} == {"participant_id", "randomized_at", "randomized_by"}
    assert {(e.username, e.role, e.reason) for e in updates} == {
        ("cora", "coordinator", "randomized into stratum LDS / PHQ-9 0-14, position 1")
    }
    for entry in updates:
        assert not any(word in f"{entry.old_value} {entry.new_value} {entry.reason}" for word in ARM_WORDS)
    chain_ok(session)


def test_only_enrolled_participants_are_randomized(
    session: Session, cora: Principal, live: AllocationList
) -> None:
    screened = screen(session, cora).label
    failed = screen(session, cora, age_years=80).label
    for label in (screened, failed):
        with pytest.raises(Conflict, match="not enrolled"):
            randomize(session, cora, label)
    with pytest.raises(NotFound):
        randomize(session, cora, "LDS-0999")
    assert counters(session, live) == dict.fromkeys(STRATA, 0)


def test_a_participant_is_randomized_once(session: Session, cora: Principal, live: AllocationList) -> None:
    label = enrolled(session, cora)
    slot = randomize(session, cora, label)
    with pytest.raises(Conflict, match="already randomized"):
        randomize(session, cora, label)
    assert counters(session, live)["LDS / PHQ-9 0-14"] == 1
    taken = [s for s in slots_of(session, live) if s.participant_id is not None]
    assert [s.id for s in taken] == [slot.id]


def test_randomizing_needs_a_live_trial(session: Session, cora: Principal) -> None:
    label = enrolled(session, cora)
    with pytest.raises(Conflict, match="not live"):
        randomize(session, cora, label)


def test_only_the_sites_coordinator_randomizes(
    session: Session, sponsor: Principal, cora: Principal, live: AllocationList
) -> None:
    label = enrolled(session, cora)
    with pytest.raises(NotFound):
        randomize(session, new_user(session, "mads", f"coordinator:{CODE}:MAN"), label)
    for grant in (f"clinician:{CODE}:LDS", f"statistician_unblinded:{CODE}"):
        with pytest.raises(Forbidden):
            randomize(session, new_user(session, grant.split(":")[0][:8], grant), label)
    with pytest.raises(Forbidden):
        randomize(session, sponsor, label)
    assert counters(session, live) == dict.fromkeys(STRATA, 0)


def test_a_used_up_stratum_is_refused_without_using_a_slot(
    session: Session, sponsor: Principal, cora: Principal
) -> None:
    allocation = go_live(session, sponsor, slots_per_stratum=1)
    available = len(planned("LDS / PHQ-9 0-14", 1))
    for _ in range(available):
        randomize(session, cora, enrolled(session, cora))
    label = enrolled(session, cora)
    with pytest.raises(Conflict, match="used all"), session.begin_nested():
        randomize(session, cora, label)
    assert counters(session, allocation)["LDS / PHQ-9 0-14"] == available


def test_the_stratum_follows_site_and_screening_severity(
    session: Session, sponsor: Principal, live: AllocationList
) -> None:
    doc = document(session)
    for site in ("LDS", "MAN", "BRS"):
        coordinator = new_user(session, f"co{site.lower()}", f"coordinator:{CODE}:{site}")
        for phq9, band in ((10, "0-14"), (14, "0-14"), (15, "15-27"), (19, "15-27")):
            label = enrolled(session, coordinator, site, phq9)
            participant = session.exec(select(Participant).where(Participant.label == label)).one()
            assert services.stratum_for(participant, site, doc) == f"{site} / PHQ-9 {band}"
            assert randomize(session, coordinator, label).stratum == f"{site} / PHQ-9 {band}"
    assert counters(session, live) == dict.fromkeys(STRATA, 2)
    chain_ok(session)


# -- concurrency (acceptance) -------------------------------------------------------------------


def test_200_concurrent_randomizations_use_distinct_consecutive_slots(
    fresh_database_url: str, backend: str, capsys: pytest.CaptureFixture[str]
) -> None:
    workers, per_worker = 20, 10
    engine = make_engine(fresh_database_url, pool_size=workers, max_overflow=0)
    try:
        # Set-up: three coordinators, 200 enrolled participants spread over the six strata.
        with Session(engine, expire_on_commit=False) as session:
            add_sites(session)
            sponsor = register_example(session)
            coordinators = {
                site: new_user(session, f"co{site.lower()}", f"coordinator:{CODE}:{site}")
                for site in ("LDS", "MAN", "BRS")
            }
            allocation = go_live(session, sponsor, slots_per_stratum=60)
            labels = []
            for k in range(workers * per_worker):
                site = ("LDS", "MAN", "BRS")[k % 3]
                labels.append((site, enrolled(session, coordinators[site], site, 10 + (k // 3) % 10)))
            session.commit()
        random.Random(4).shuffle(labels)

        results: list[tuple[str, str, int, str]] = []
        lock = threading.Lock()

        def work(w: int) -> None:
            with Session(engine, expire_on_commit=False) as session:
                for site, label in labels[w::workers]:
                    slot = randomize(session, coordinators[site], label)
                    session.commit()
                    with lock:
                        results.append((label, slot.stratum, slot.position, slot.arm_code))

        elapsed = run_workers(workers, work)
        with capsys.disabled():
            print(f"\n[{backend}] 200 randomizations from 20 workers: {elapsed:.2f} s")

        assert len(results) == workers * per_worker
        assert len({r[0] for r in results}) == len(results)
        assert len({(r[1], r[2]) for r in results}) == len(results)  # no slot used twice
        with Session(engine) as session:
            stored = slots_of(session, allocation)
            used = [s for s in stored if s.participant_id is not None]
            assert len(used) == 200
            assert len({s.participant_id for s in used}) == 200
            per_stratum: dict[str, list[AllocationSlot]] = defaultdict(list)
            for slot in used:
                per_stratum[slot.stratum].append(slot)
            assert set(per_stratum) == set(STRATA)
            final = counters(session, allocation)
            for stratum, taken in per_stratum.items():
                positions = sorted(s.position for s in taken)
                assert positions == list(range(1, len(taken) + 1)), stratum  # consecutive, no gaps
                assert final[stratum] == len(taken)
                plan = planned(stratum, 60)
                assert all(s.arm_code == plan[s.position - 1].arm_code for s in taken)
                # The arms taken so far are balanced as the blocks promise.
                counts = Counter(plan[p].arm_code for p in range(len(taken)))
                assert max(counts.values()) - min(counts[a] for a, _r in ARMS) <= max(BLOCK_SIZES) / 2
            assert sum(final.values()) == 200
            arms = {(s.stratum, s.position): s.arm_code for s in used}
            assert all(arms[(r[1], r[2])] == r[3] for r in results)
            participants = {p.label: p for p in session.exec(select(Participant)).all()}
            doc = document(session)
            by_id = {s.participant_id: s for s in used}
            for label, stratum, _position, _arm in results:
                participant = participants[label]
                assert by_id[participant.id].stratum == stratum
                assert services.stratum_for(participant, label[:3], doc) == stratum
            chain_ok(session)
    finally:
        engine.dispose()


# -- blinding ---------------------------------------------------------------------------------


def test_the_examples_blinded_roles(session: Session, sponsor: Principal) -> None:
    assert services.blinded_roles(document(session)) == {Role.STATISTICIAN_BLINDED, Role.MONITOR}


@pytest.mark.parametrize(
    ("grants", "visible"),
    [
        ([f"statistician_blinded:{CODE}"], False),
        ([f"monitor:{CODE}"], False),  # data_manager is blinded in the example
        ([f"coordinator:{CODE}:LDS"], True),
        ([f"clinician:{CODE}:LDS"], True),
        ([f"sponsor:{CODE}"], True),
        ([f"statistician_unblinded:{CODE}"], True),
        ([f"coordinator:{CODE}:LDS", f"monitor:{CODE}"], False),  # any blinded role blinds
        ([f"statistician_unblinded:{CODE}", f"statistician_blinded:{CODE}"], False),
        (["admin"], False),  # no role in the trial
        (["coordinator:OTHER-01:LDS"], False),
        ([f"coordinator:{CODE}:LDS", "statistician_blinded:OTHER-01"], True),  # another trial's role
    ],
)
def test_who_may_see_an_arm(session: Session, sponsor: Principal, grants: list[str], visible: bool) -> None:
    accounts.create_trial(
        TrialCreate(code="OTHER-01", title="Another trial"), session=session, by=accounts.SYSTEM
    )
    principal = new_user(session, "una", *grants)
    trial = trial_by_code(CODE, session=session)
    assert services.allocation_visible(principal, trial.id, document(session)) is visible


@pytest.mark.parametrize(
    ("terms", "blinded"),
    [
        ([], {Role.STATISTICIAN_BLINDED}),
        (["investigator"], {Role.STATISTICIAN_BLINDED, Role.COORDINATOR, Role.CLINICIAN}),
        (["sponsor", "participant", "outcome_assessor"], {Role.STATISTICIAN_BLINDED, Role.SPONSOR}),
    ],
)
def test_blinding_terms_map_to_platform_roles(
    session: Session, sponsor: Principal, terms: list[str], blinded: set[Role]
) -> None:
    doc = document(session)
    changed = doc.model_copy(update={"blinding": doc.blinding.model_copy(update={"blinded_roles": terms})})
    assert services.blinded_roles(changed) == blinded
    coordinator = new_user(session, "cora", f"coordinator:{CODE}:LDS")
    trial = trial_by_code(CODE, session=session)
    assert services.allocation_visible(coordinator, trial.id, changed) is (Role.COORDINATOR not in blinded)
    assert services.allocation_visible(sponsor, trial.id, changed) is (Role.SPONSOR not in blinded)


def test_the_unblinded_statistician_downloads_the_list(
    session: Session, cora: Principal, live: AllocationList
) -> None:
    randomize(session, cora, enrolled(session, cora))
    stats = new_user(session, "stan", f"statistician_unblinded:{CODE}")
    allocation, slots = services.allocation_list(CODE, session=session, by=acting(session, stats))
    assert allocation.id == live.id
    assert [(s.stratum, s.position) for s in slots] == sorted((s.stratum, s.position) for s in slots)
    assert list_hash(slots) == live.list_sha256
    viewed = entries(session, action="allocation_list_viewed")
    assert [(e.username, e.record_id, e.trial_id) for e in viewed] == [("stan", str(live.id), live.trial_id)]
    chain_ok(session)


@pytest.mark.parametrize(
    "grants",
    [
        [f"statistician_blinded:{CODE}"],
        [f"monitor:{CODE}"],
        [f"statistician_unblinded:{CODE}", f"monitor:{CODE}"],
        [f"coordinator:{CODE}:LDS"],  # randomizes: must not see the next assignments (concealment)
        [f"clinician:{CODE}:LDS"],
        [f"sponsor:{CODE}"],
        ["admin"],
    ],
)
def test_the_list_is_refused_to_everyone_else_without_naming_an_arm(
    session: Session, live: AllocationList, grants: list[str]
) -> None:
    principal = new_user(session, "una", *grants)
    with pytest.raises(Forbidden) as refused:
        services.allocation_list(CODE, session=session, by=acting(session, principal))
    text = f"{refused.value} {refused.value.detail} {refused.value.errors}"
    assert not any(word in text for word in ARM_WORDS)
    assert not entries(session, action="allocation_list_viewed")


def test_going_live_and_randomizing_keep_the_chain_intact(
    session: Session, cora: Principal, live: AllocationList
) -> None:
    for phq9 in (11, 16, 12, 17, 13):
        randomize(session, cora, enrolled(session, cora, phq9=phq9))
    taken = [s for s in slots_of(session, live) if s.participant_id is not None]
    assert len(taken) == 5
    assert {s.randomized_by for s in taken} == {"cora"}
    chain_ok(session)
