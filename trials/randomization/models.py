"""The allocation list, generated when a trial goes live, and its slots."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, String, Text, UniqueConstraint, Uuid
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow


class AllocationList(Audited, SQLModel, table=True):
    """A trial's allocation list: its existence is the trial being live.

    The seed itself is not stored, only its SHA-256 (a commitment): revealing the seed later
    lets anyone regenerate and check the list; `list_sha256` covers every slot.
    """

    __tablename__ = "allocation_list"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, unique=True))
    protocol_version_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("protocol_version.id"), nullable=False)
    )
    seed_sha256: str = Field(sa_type=String(64))
    list_sha256: str = Field(sa_type=String(64))
    design: str = Field(sa_type=Text)  # JSON: arms and ratios, block sizes, strata
    slots_per_stratum: int
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    created_by: str = Field(sa_type=String(64))


class AllocationSlot(Audited, SQLModel, table=True):
    """One position of one stratum's sequence. The arm is redacted in the audit trail: the trail
    is readable by blinded roles, and the list's hash already fixes every arm."""

    __tablename__ = "allocation_slot"
    __table_args__ = (UniqueConstraint("list_id", "stratum", "position"),)
    __audit_redact__ = frozenset({"arm_code"})

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    list_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("allocation_list.id"), nullable=False, index=True)
    )
    # The list's trial, kept on each slot so that its audit entries belong to the trial: a
    # monitor's trial-scoped view of the audit trail shows generation and randomization.
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False))
    stratum: str = Field(sa_type=String(64))
    position: int
    block: int
    block_size: int
    arm_code: str = Field(sa_type=String(20))
    participant_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("participant.id"), nullable=True, unique=True)
    )
    randomized_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    randomized_by: str | None = Field(default=None, sa_type=String(64))


class StratumCounter(SQLModel, table=True):
    """The last position used in each stratum; incremented under a row lock, so that two
    randomizations can never take the same slot nor skip one."""

    __tablename__ = "stratum_counter"

    list_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("allocation_list.id"), primary_key=True))
    stratum: str = Field(sa_column=Column(String(64), primary_key=True))
    last_position: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
