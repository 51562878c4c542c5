"""Participants with their randomization, and the allocation list as rows and CSV.

The arm of a participant is shown only to those the protocol does not blind
(`services.allocation_visible`); everyone allowed to see the participant sees whether and when
they were randomized.
"""

import csv
import io
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, SQLModel, col, select

from trials.core.accounts.models import Trial
from trials.core.accounts.permissions import Principal
from trials.participants import reads
from trials.participants.models import Participant, ParticipantRead
from trials.participants.services import locked_protocol
from trials.randomization.models import AllocationList, AllocationSlot
from trials.randomization.services import allocation_visible

_IN_BATCH = 500


class AllocationSummary(SQLModel):
    """A live trial's allocation list without its arms: the commitments that fix it."""

    trial_code: str
    created_at: datetime
    created_by: str
    seed_sha256: str
    list_sha256: str
    slots_per_stratum: int
    strata: list[str]
    block_sizes: list[int]


class AllocationRow(SQLModel):
    stratum: str
    position: int
    block: int
    block_size: int
    arm_code: str
    participant_label: str | None
    randomized_at: datetime | None


class AllocationListRead(AllocationSummary):
    """The whole allocation list, for unblinded roles."""

    rows: list[AllocationRow]


ALLOCATION_COLUMNS = tuple(AllocationRow.model_fields)


def _arms_visible(by: Principal, *, session: Session) -> Any:
    """A per-trial memo of whether `by` may see arms (the protocol is read once per trial)."""
    memo: dict[uuid.UUID, bool] = {}

    def visible(trial_id: uuid.UUID) -> bool:
        if trial_id not in memo:
            trial = session.get(Trial, trial_id)
            if trial is None:
                memo[trial_id] = False
            else:
                _version, document = locked_protocol(trial, session=session)
                memo[trial_id] = allocation_visible(by, trial_id, document)
        return memo[trial_id]

    return visible


def participant_reads(
    participants: Sequence[Participant], *, session: Session, by: Principal
) -> list[ParticipantRead]:
    """The participants as `by` may see them: randomization time for all, the arm only for
    those the protocol does not blind."""
    randomized: dict[uuid.UUID, tuple[datetime | None, str]] = {}
    ids = [p.id for p in participants]
    for start in range(0, len(ids), _IN_BATCH):
        rows = session.exec(
            select(
                AllocationSlot.participant_id, AllocationSlot.randomized_at, AllocationSlot.arm_code
            ).where(col(AllocationSlot.participant_id).in_(ids[start : start + _IN_BATCH]))
        ).all()
        randomized.update({pid: (at, arm) for pid, at, arm in rows if pid is not None})
    visible = _arms_visible(by, session=session)
    out = []
    for participant in participants:
        slot = randomized.get(participant.id)
        if slot is None:
            out.append(reads.participant_read(participant, session=session))
            continue
        randomized_at, arm_code = slot
        out.append(
            reads.participant_read(
                participant,
                session=session,
                randomized_at=randomized_at,
                arm_code=arm_code if visible(participant.trial_id) else None,
            )
        )
    return out


def participant_read(participant: Participant, *, session: Session, by: Principal) -> ParticipantRead:
    return participant_reads([participant], session=session, by=by)[0]


def allocation_summary(allocation: AllocationList, *, session: Session) -> AllocationSummary:
    trial = session.get(Trial, allocation.trial_id)
    design = json.loads(allocation.design)
    return AllocationSummary(
        trial_code=trial.code if trial else "",
        created_at=allocation.created_at,
        created_by=allocation.created_by,
        seed_sha256=allocation.seed_sha256,
        list_sha256=allocation.list_sha256,
        slots_per_stratum=allocation.slots_per_stratum,
        strata=design["strata"],
        block_sizes=design["block_sizes"],
    )


def allocation_list_read(
    allocation: AllocationList, slots: Sequence[AllocationSlot], *, session: Session
) -> AllocationListRead:
    """The list with each used slot's participant label (call only after the access check of
    `services.allocation_list`)."""
    labels = dict(
        session.exec(
            select(Participant.id, Participant.label).where(Participant.trial_id == allocation.trial_id)
        ).all()
    )
    rows = [
        AllocationRow(
            stratum=slot.stratum,
            position=slot.position,
            block=slot.block,
            block_size=slot.block_size,
            arm_code=slot.arm_code,
            participant_label=labels.get(slot.participant_id) if slot.participant_id else None,
            randomized_at=slot.randomized_at,
        )
        for slot in slots
    ]
    summary = allocation_summary(allocation, session=session)
    return AllocationListRead(**summary.model_dump(), rows=rows)


# A spreadsheet reads text starting with these as a formula: such cells get a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def allocation_csv(listing: AllocationListRead) -> str:
    """The allocation list as CSV text, one row per slot, in stratum and position order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(ALLOCATION_COLUMNS)
    for row in listing.rows:
        writer.writerow([_cell(getattr(row, name)) for name in ALLOCATION_COLUMNS])
    return buffer.getvalue()
