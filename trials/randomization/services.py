"""Going live (generating the allocation list), randomizing, and who may see an arm."""

import hashlib
import json
import secrets
from datetime import datetime
from itertools import product
from typing import Any

from sqlalchemy import insert, update
from sqlmodel import Session, col, select

from protocols.document import ProtocolDocument
from trials.core.accounts.models import Role, Site, Trial
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.db import new_id, utcnow
from trials.core.errors import Conflict, Forbidden, InvalidInput
from trials.participants.models import Participant, Status
from trials.participants.services import get_participant, locked_protocol, trial_by_code
from trials.randomization.blocks import SEED_BYTES, severity_levels, stratum_key, stratum_slots
from trials.randomization.models import AllocationList, AllocationSlot, StratumCounter

# The protocol names who is blinded in trial terms (ICH E9 / CONSORT); these are the platform
# roles each term covers. The blinded statistician is blinded by definition, the unblinded one
# never. "participant" and "outcome_assessor" cover no platform role: the instruments are
# self-reported, so the participant is the outcome assessor, and no page the participant sees
# (the ePRO form) shows an arm whatever the protocol says.
PLATFORM_ROLES_BLINDED_BY: dict[str, frozenset[Role]] = {
    "investigator": frozenset({Role.COORDINATOR, Role.CLINICIAN}),
    "statistician": frozenset({Role.STATISTICIAN_BLINDED}),
    "data_manager": frozenset({Role.MONITOR}),
    "sponsor": frozenset({Role.SPONSOR}),
}
SCORE_MAXIMUM = {"PHQ-9": 27, "PHQ-8": 24, "GAD-7": 21}


def blinded_roles(document: ProtocolDocument) -> frozenset[Role]:
    roles = {Role.STATISTICIAN_BLINDED}
    for term in document.blinding.blinded_roles:
        roles |= PLATFORM_ROLES_BLINDED_BY.get(term, frozenset())
    return frozenset(roles)


def allocation_visible(principal: Principal, trial_id: Any, document: ProtocolDocument) -> bool:
    """Whether the principal may see arms in this trial: a role in it that the protocol does
    not blind. Any blinded role in the trial blinds the person for the whole trial."""
    roles = {g.role for g in principal.grants if g.trial_id == trial_id}
    return bool(roles) and not roles & blinded_roles(document)


def strata_of(document: ProtocolDocument) -> list[str]:
    factors = document.randomization.strata
    sites = [s.code for s in document.sites] if "site" in factors else [None]
    rnd = document.randomization
    levels: list[str | None] = [None]
    if "baseline_severity" in factors:
        maximum = SCORE_MAXIMUM[rnd.severity_instrument]
        levels = [
            label
            for _lo, _hi, label in severity_levels(rnd.severity_instrument, rnd.severity_cut_points, maximum)
        ]
    return [stratum_key(site, level) for site, level in product(sites, levels)]


def stratum_for(participant: Participant, site_code: str, document: ProtocolDocument) -> str:
    """The participant's stratum: site and baseline severity, from the screening PHQ-9 (the
    protocol schema accepts no other severity instrument: it is the only score known before
    randomization)."""
    rnd = document.randomization
    site = site_code if "site" in rnd.strata else None
    level = None
    if "baseline_severity" in rnd.strata:
        maximum = SCORE_MAXIMUM[rnd.severity_instrument]
        for lo, hi, label in severity_levels(rnd.severity_instrument, rnd.severity_cut_points, maximum):
            if lo <= participant.screening_phq9 <= hi:
                level = label
    return stratum_key(site, level)


def _list_hash(slots: list[dict[str, Any]]) -> str:
    canonical = [[s["stratum"], s["position"], s["block"], s["block_size"], s["arm_code"]] for s in slots]
    return hashlib.sha256(json.dumps(canonical, separators=(",", ":")).encode()).hexdigest()


def go_live(
    code: str, *, session: Session, by: Principal, seed: bytes | None = None, slots_per_stratum: int = 300
) -> AllocationList:
    """Generate the allocation list from the locked protocol: the trial is live from then on.

    The seed comes from the operating system's cryptographic source unless given (simulations
    give one, to be reproducible); only its SHA-256 is kept.
    """
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.MANAGE_PROTOCOL, session=session, trial_id=trial.id)
    if session.exec(select(AllocationList.id).where(AllocationList.trial_id == trial.id)).first():
        raise Conflict(f"trial {code} is already live")
    if not 1 <= slots_per_stratum <= 100_000:
        raise InvalidInput.field("slots_per_stratum", "range", "slots_per_stratum: must be 1-100000")
    version, document = locked_protocol(trial, session=session)
    missing = {s.code for s in document.sites} - set(session.exec(select(Site.code)).all())
    if missing:
        raise Conflict(f"sites not set up yet: {', '.join(sorted(missing))}")
    seed = seed if seed is not None else secrets.token_bytes(SEED_BYTES)
    arms = [(arm.code, arm.allocation_ratio) for arm in document.arms]
    block_sizes = list(document.randomization.block_sizes)
    strata = strata_of(document)
    allocation = AllocationList(
        trial_id=trial.id,
        protocol_version_id=version.id,
        seed_sha256=hashlib.sha256(seed).hexdigest(),
        list_sha256="",
        slots_per_stratum=slots_per_stratum,
        created_by=by.username,
        design=json.dumps({"arms": arms, "block_sizes": block_sizes, "strata": strata}),
    )
    rows = [
        {
            "id": new_id(),
            "list_id": allocation.id,
            "trial_id": trial.id,
            "stratum": s.stratum,
            "position": s.position,
            "block": s.block,
            "block_size": s.block_size,
            "arm_code": s.arm_code,
        }
        for stratum in strata
        for s in stratum_slots(seed, stratum, arms, block_sizes, slots_per_stratum)
    ]
    allocation.list_sha256 = _list_hash(rows)
    session.add(allocation)
    session.flush()
    audit.bulk_insert(session, AllocationSlot, rows)
    counters = StratumCounter.__table__  # type: ignore[attr-defined]
    session.connection().execute(
        insert(counters), [{"list_id": allocation.id, "stratum": s, "last_position": 0} for s in strata]
    )
    return allocation


def live_list(trial_id: Any, *, session: Session) -> AllocationList:
    allocation = session.exec(select(AllocationList).where(AllocationList.trial_id == trial_id)).first()
    if allocation is None:
        raise Conflict("the trial is not live yet: no allocation list")
    return allocation


def check_randomizable(participant: Participant, *, session: Session) -> AllocationList:
    """The trial's live allocation list, if the participant may be randomized now: enrolled, the
    trial live, not yet randomized; otherwise the Conflict that says why. The randomize form
    asks it before it is shown, the service before it assigns a slot."""
    label = participant.label
    if participant.status != Status.ENROLLED.value:
        raise Conflict(f"{label} is not enrolled: randomize after consent and enrolment")
    allocation = live_list(participant.trial_id, session=session)
    if session.exec(select(AllocationSlot.id).where(AllocationSlot.participant_id == participant.id)).first():
        raise Conflict(f"{label} is already randomized")
    return allocation


def randomize(
    code: str, label: str, *, session: Session, by: Principal, at: datetime | None = None
) -> AllocationSlot:
    """Assign an enrolled participant the next slot of their stratum. The counter row is
    incremented under a row lock (PostgreSQL) or the write lock (SQLite): no slot is used twice
    and none is skipped. `at` dates a randomization that happened earlier (the simulation);
    requests randomize now."""
    participant = get_participant(code, label, session=session, by=by)
    authorize(
        by, Permission.ENTER_DATA, session=session, trial_id=participant.trial_id, site_id=participant.site_id
    )
    allocation = check_randomizable(participant, session=session)
    trial = session.get(Trial, participant.trial_id)  # loaded by get_participant: no query
    assert trial is not None
    _version, document = locked_protocol(trial, session=session)
    site = session.get(Site, participant.site_id)
    assert site is not None
    stratum = stratum_for(participant, site.code, document)
    counters = StratumCounter.__table__  # type: ignore[attr-defined]
    position = (
        session.connection()
        .execute(
            update(counters)
            .where(counters.c.list_id == allocation.id, counters.c.stratum == stratum)
            .values(last_position=counters.c.last_position + 1)
            .returning(counters.c.last_position)
        )
        .scalar_one()
    )
    slot = session.exec(
        select(AllocationSlot).where(
            AllocationSlot.list_id == allocation.id,
            AllocationSlot.stratum == stratum,
            AllocationSlot.position == position,
        )
    ).first()
    if slot is None:
        raise Conflict(f"stratum {stratum!r} has used all {allocation.slots_per_stratum} slots of its list")
    with audit.reason(session, f"randomized into stratum {stratum}, position {position}"):
        slot.participant_id = participant.id
        if at is not None and (at.tzinfo is None or at > utcnow()):
            raise InvalidInput.field("randomized_at", "past_utc", "randomized_at: must be a past UTC time")
        slot.randomized_at = at or utcnow()
        slot.randomized_by = by.username
        session.add(slot)
    return slot


def slot_of(participant: Participant, *, session: Session) -> AllocationSlot | None:
    return session.exec(select(AllocationSlot).where(AllocationSlot.participant_id == participant.id)).first()


def allocation_list(
    code: str, *, session: Session, by: Principal
) -> tuple[AllocationList, list[AllocationSlot]]:
    """The whole list, for those the protocol does not blind (download for audit).

    Only roles holding the view-allocation permission (the unblinded statistician): whoever
    enrols or randomizes must not see upcoming assignments (allocation concealment), even in
    a trial that does not blind them to the arm once it is assigned."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_ALLOCATION, session=session, trial_id=trial.id)
    _version, document = locked_protocol(trial, session=session)
    if not allocation_visible(by, trial.id, document):
        raise Forbidden("the allocation list is visible only to unblinded roles")
    allocation = live_list(trial.id, session=session)
    slots = session.exec(
        select(AllocationSlot)
        .where(AllocationSlot.list_id == allocation.id)
        .order_by(col(AllocationSlot.stratum), col(AllocationSlot.position))
    ).all()
    audit.record_event(
        session,
        "allocation_list_viewed",
        table_name="allocation_list",
        record_id=str(allocation.id),
        trial_id=trial.id,
    )
    return allocation, list(slots)
