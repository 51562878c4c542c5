"""A trial's database lock, and the flush guard that makes it hold on every path.

The lock row's existence is the lock. Unlocking deletes it under a reason: the audit trail
keeps who locked and unlocked, when and why.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ForeignKey, String, Text, Uuid, event, inspect, select
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Field, SQLModel

from trials.core.accounts.models import RoleGrant, Trial
from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.errors import Conflict


class DatabaseLock(Audited, SQLModel, table=True):
    """A trial's database is locked while this row exists."""

    __tablename__ = "database_lock"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, unique=True))
    locked_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    locked_by: str = Field(sa_type=String(64))
    reason: str = Field(sa_type=Text)
    # The SHA-256 of the locked data set, once exports can compute it.
    content_sha256: str | None = Field(default=None, sa_type=String(64), nullable=True)


# Rows that carry a trial id but are not the trial's data: the lock itself, and access to the
# trial (an auditor may be granted access to a locked trial).
_NOT_TRIAL_DATA: tuple[type, ...] = (DatabaseLock, RoleGrant)


def _trial_id(obj: Any) -> uuid.UUID | None:
    if isinstance(obj, Trial):
        return obj.id
    value: uuid.UUID | None = getattr(obj, "trial_id", None)
    return value


def _changes_data(session: OrmSession, obj: Any) -> bool:
    """Whether a dirty object changes more than bookkeeping fields the audit excludes (an
    e-mail's sent time, a notification's read time)."""
    if not session.is_modified(obj, include_collections=False):
        return False
    state = inspect(obj)
    excluded = type(obj).__audit_exclude__
    return any(
        state.attrs[attr.key].history.has_changes()
        for attr in state.mapper.column_attrs
        if attr.key not in excluded
    )


@event.listens_for(OrmSession, "before_flush", insert=True)
def _locked_trials_are_read_only(session: OrmSession, _context: Any, _instances: Any) -> None:
    """Whatever path enters or changes a locked trial's data, the flush is refused.

    Registered first, so that it runs before the audit listener appends entries."""
    trial_ids: set[uuid.UUID] = set()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not isinstance(obj, Audited) or isinstance(obj, _NOT_TRIAL_DATA) or obj.__database_lock_exempt__:
            continue
        if obj in session.dirty and not _changes_data(session, obj):
            continue
        trial_id = _trial_id(obj)
        if trial_id is not None:
            trial_ids.add(trial_id)
    if not trial_ids:
        return
    locks = DatabaseLock.__table__  # type: ignore[attr-defined]
    trials = Trial.__table__  # type: ignore[attr-defined]
    locked = (
        session.connection()
        .execute(
            select(trials.c.code)
            .select_from(locks.join(trials, trials.c.id == locks.c.trial_id))
            .where(locks.c.trial_id.in_(trial_ids))
            .order_by(trials.c.code)
        )
        .scalars()
        .all()
    )
    if locked:
        raise Conflict(
            f"the database of trial {', '.join(locked)} is locked: no entry or change is possible "
            "until the sponsor unlocks it"
        )
