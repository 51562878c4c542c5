"""SIGKILL of the server in the middle of a burst of concurrent randomizations: every
randomization answered is stored, none is stored twice, no slot is lost, doubled or skipped,
the allocation list is unchanged, each randomization has its audit entry, and a new server
goes on from the next slot of each stratum."""

import json
import random
import threading
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select

from tests.faults.conftest import BASE, TRANSPORT_ERRORS, call, chain_verifies, live_trial
from trials.core.audit.models import ENTRY_TABLE
from trials.core.db import make_engine
from trials.participants.models import Participant
from trials.randomization.models import AllocationList, AllocationSlot, StratumCounter
from trials.randomization.services import _list_hash

PER_SITE = 30
THREADS = 8
KILL_AFTER = 20  # randomizations answered 200 before the kill
SLOTS = AllocationSlot.__table__  # type: ignore[attr-defined]
COUNTERS = StratumCounter.__table__  # type: ignore[attr-defined]
LISTS = AllocationList.__table__  # type: ignore[attr-defined]
PARTICIPANTS = Participant.__table__  # type: ignore[attr-defined]


class Burst:
    """Threads randomizing the participants of a shared list until it is empty or `stop` is set;
    each outcome is kept: an answer, or the transport error of a request cut off by the kill."""

    def __init__(self, base: str, labels: list[tuple[str, str]], headers: dict[str, dict[str, str]]) -> None:
        self.base = base
        self.waiting = list(labels)
        self.headers = headers
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.enough = threading.Event()
        self.answered: dict[str, int] = {}
        self.cut_off: list[str] = []

    def _next(self) -> tuple[str, str] | None:
        with self.lock:
            if self.stop.is_set() or not self.waiting:
                return None
            return self.waiting.pop()

    def _work(self) -> None:
        while (item := self._next()) is not None:
            label, site = item
            path = f"{BASE}/participants/{label}/randomize"
            try:
                answer = call(self.base, "POST", path, headers=self.headers[site.lower()], timeout=60)
            except TRANSPORT_ERRORS:
                with self.lock:
                    self.cut_off.append(label)
                continue
            with self.lock:
                self.answered[label] = answer.status
                if sum(status == 200 for status in self.answered.values()) >= KILL_AFTER:
                    self.enough.set()

    def run(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._work) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        return threads


def allocation_state(url: str) -> dict[str, Any]:
    """The list's hash as stored and as recomputed from its slots, the slots used in each
    stratum (position -> participant label), each counter, and the audit entries of
    randomizations (slot id -> entries)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            [(stored_hash, design)] = conn.execute(select(LISTS.c.list_sha256, LISTS.c.design)).all()
            slots = (
                conn.execute(
                    select(SLOTS, PARTICIPANTS.c.label)
                    .outerjoin(PARTICIPANTS, PARTICIPANTS.c.id == SLOTS.c.participant_id)
                    .order_by(SLOTS.c.stratum, SLOTS.c.position)
                )
                .mappings()
                .all()
            )
            counters = dict(conn.execute(select(COUNTERS.c.stratum, COUNTERS.c.last_position)).all())
            entries = conn.execute(
                select(ENTRY_TABLE.c.record_id, func.count())
                .where(
                    ENTRY_TABLE.c.table_name == "allocation_slot",
                    ENTRY_TABLE.c.field == "participant_id",
                    ENTRY_TABLE.c.action == "update",
                )
                .group_by(ENTRY_TABLE.c.record_id)
            ).all()
            doubled = conn.execute(
                select(SLOTS.c.participant_id)
                .where(SLOTS.c.participant_id.is_not(None))
                .group_by(SLOTS.c.participant_id)
                .having(func.count() > 1)
            ).all()
    finally:
        engine.dispose()
    order = {stratum: n for n, stratum in enumerate(json.loads(design)["strata"])}
    in_list_order = sorted(slots, key=lambda s: (order[s["stratum"]], s["position"]))
    used: dict[str, dict[int, str]] = defaultdict(dict)
    for slot in slots:
        if slot["participant_id"] is not None:
            used[slot["stratum"]][slot["position"]] = slot["label"]
    return {
        "stored_hash": stored_hash,
        "recomputed_hash": _list_hash([dict(s) for s in in_list_order]),
        "used": dict(used),
        "counters": counters,
        "used_slot_ids": {str(s["id"]) for s in slots if s["participant_id"] is not None},
        "entries": dict(entries),
        "doubled": doubled,
    }


def consistent(state: dict[str, Any]) -> dict[str, int]:
    """Check what must hold after any kill; the slots used per stratum."""
    assert state["recomputed_hash"] == state["stored_hash"]
    assert state["doubled"] == []
    for stratum, last in state["counters"].items():
        used = state["used"].get(stratum, {})
        # A prefix of the stratum's list: no slot lost or skipped; the counter agrees.
        assert sorted(used) == list(range(1, last + 1)), (stratum, sorted(used), last)
    labels = [label for used in state["used"].values() for label in used.values()]
    assert len(labels) == len(set(labels))  # no participant holds two slots
    # Each randomization has exactly one audit entry, and no entry names an unused slot.
    assert state["entries"] == dict.fromkeys(state["used_slot_ids"], 1)
    return {stratum: len(used) for stratum, used in state["used"].items()}


def test_a_server_killed_mid_burst_loses_and_doubles_no_slot_and_a_new_server_goes_on(
    fresh_database_url: str, server_factory: Any
) -> None:
    url = fresh_database_url
    setup = live_trial(url, enrolled={"LDS": PER_SITE, "MAN": PER_SITE})
    labels = [(label, site) for site, some in setup["enrolled"].items() for label in some]
    random.Random(9).shuffle(labels)  # the four strata (two sites, two severities) interleaved
    before = allocation_state(url)
    assert before["used"] == {}
    assert set(before["counters"].values()) == {0}

    server = server_factory(url)
    burst = Burst(server.base, labels, setup["headers"])
    threads = burst.run()
    try:
        assert burst.enough.wait(timeout=120), "the burst never got its answers"
        with burst.lock:
            burst.stop.set()  # no request is sent after the kill
        server.kill()
    finally:
        burst.stop.set()
        server.kill()
        for thread in threads:
            thread.join(timeout=60)
    told = {label for label, status in burst.answered.items() if status == 200}
    assert set(burst.answered.values()) == {200}, burst.answered
    assert burst.cut_off, "no request was in flight when the server was killed"

    after = allocation_state(url)
    assert after["stored_hash"] == before["stored_hash"]
    used = consistent(after)
    randomized = {label for stratum in after["used"].values() for label in stratum.values()}
    assert told <= randomized  # everyone told "randomized" is
    # Those randomized but not told were cut off after their commit, before their answer.
    assert randomized - told <= set(burst.cut_off)
    assert chain_verifies(url)

    # A new server randomizes the rest, each stratum from its next slot.
    server = server_factory(url)
    rest = [(label, site) for label, site in labels if label not in randomized]
    for label, site in rest:
        answer = call(
            server.base,
            "POST",
            f"{BASE}/participants/{label}/randomize",
            headers=setup["headers"][site.lower()],
        )
        assert answer.status == 200, answer.text
    final = allocation_state(url)
    assert final["stored_hash"] == before["stored_hash"]
    assert sum(consistent(final).values()) == len(labels)
    for stratum, label_at in final["used"].items():
        for position in range(1, used.get(stratum, 0) + 1):
            assert label_at[position] == after["used"][stratum][position]  # earlier slots kept
    assert chain_verifies(url)
