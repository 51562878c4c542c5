"""Randomization invariants through the services, for generated sequences of randomizations
across sites and severity strata, on SQLite and PostgreSQL.

Whatever the order and mix of participants: each gets exactly one slot; the slots of a stratum
are taken in order from position 1, without a gap or a slot used twice; each block whose last
slot is taken holds the arms in the allocation ratio; the list's hash still matches its slots;
and each randomization is in the audit trail, with its stratum and position.
"""

import json
from collections import Counter, defaultdict

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from tests.participants.test_services import chain_ok, entries, new_user
from tests.randomization.test_services import (
    ARMS,
    CODE,
    counters,
    enrolled,
    list_hash,
    live,
    randomize,
    slots_of,
    sponsor,
)
from trials.core.accounts.permissions import Principal
from trials.randomization.models import AllocationList, AllocationSlot

__all__ = ["live", "sponsor"]  # fixtures

SITES = ("BRS", "LDS", "MAN")
# One participant: a site and a screening PHQ-9 (its band is the severity stratum).
PARTICIPANT = st.tuples(st.sampled_from(SITES), st.integers(10, 19))


def test_randomizations_keep_the_list_s_invariants(
    session: Session, sponsor: Principal, live: AllocationList
) -> None:
    coordinators = {
        site: new_user(session, f"coord{site.lower()}", f"coordinator:{CODE}:{site}") for site in SITES
    }
    session.flush()

    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(PARTICIPANT, min_size=1, max_size=24))
    def randomizations(people: list[tuple[str, int]]) -> None:
        savepoint = session.begin_nested()
        session.connection()  # the savepoint is taken now
        try:
            check(session, live, coordinators, people)
        finally:
            savepoint.rollback()

    randomizations()


def check(
    session: Session, live: AllocationList, coordinators: dict[str, Principal], people: list[tuple[str, int]]
) -> None:
    taken: dict[str, list[int]] = defaultdict(list)
    labels = []
    for site, phq9 in people:
        label = enrolled(session, coordinators[site], site, phq9=phq9)
        slot = randomize(session, coordinators[site], label)
        labels.append(label)
        taken[slot.stratum].append(slot.position)
        assert slot.stratum.startswith(site), (slot.stratum, site)
    session.flush()

    slots = slots_of(session, live)
    used = [s for s in slots if s.participant_id is not None]
    # Each participant exactly one slot; no slot twice.
    assert len(used) == len(people)
    assert len({s.participant_id for s in used}) == len(people)
    # A stratum's slots are taken in order, from 1, without gaps.
    for stratum, positions in taken.items():
        assert positions == list(range(1, len(positions) + 1)), (stratum, positions)
        assert {s.position for s in used if s.stratum == stratum} == set(positions)
    # Each block whose last slot is taken is balanced in the allocation ratio.
    blocks: dict[tuple[str, int], list[AllocationSlot]] = defaultdict(list)
    for s in slots:
        blocks[(s.stratum, s.block)].append(s)
    total = sum(ratio for _arm, ratio in ARMS)
    for block in blocks.values():
        if all(s.participant_id is not None for s in block):
            size = block[0].block_size
            assert len(block) == size
            assert Counter(s.arm_code for s in block) == {arm: size * r // total for arm, r in ARMS}
    # The list is the one generated: its hash over every slot is unchanged.
    assert list_hash(slots) == live.list_sha256
    # Every randomization is audited: the slot's participant, with its stratum and position.
    for s in used:
        audited = [
            e
            for e in entries(session, table_name="allocation_slot", record_id=str(s.id))
            if e.field == "participant_id"
        ]
        assert len(audited) == 1, s
        assert json.loads(audited[0].new_value or "null") == str(s.participant_id)
        assert audited[0].reason == f"randomized into stratum {s.stratum}, position {s.position}"
    assert len(labels) == len(set(labels))
    chain_ok(session)


def test_the_counters_match_the_slots_taken(
    session: Session, sponsor: Principal, live: AllocationList
) -> None:
    """A stratum's counter is its last position taken (what the next randomization reads)."""
    coordinator = new_user(session, "coordlds", f"coordinator:{CODE}:LDS")
    for phq9 in (12, 16, 12, 12, 19):
        randomize(session, coordinator, enrolled(session, coordinator, "LDS", phq9=phq9))
    session.flush()
    taken = Counter(
        s.stratum
        for s in session.exec(
            select(AllocationSlot).where(col(AllocationSlot.participant_id).is_not(None))
        ).all()
    )
    assert {k: v for k, v in counters(session, live).items() if v} == dict(taken)
    assert sum(taken.values()) == 5
