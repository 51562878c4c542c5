"""Locking and unlocking a trial's database: the sponsor's acts, each audited with its reason."""

import uuid
from collections.abc import Callable

from sqlmodel import Session, select

from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.errors import Conflict
from trials.dblock.models import DatabaseLock
from trials.participants.services import trial_by_code

# Checks that may forbid an unlock, registered by the modules above this one (the trial's
# unblinding: data and plan are final once arm-level results were seen). Each returns the reason
# for refusing, or None.
UNLOCK_REFUSALS: list[Callable[[uuid.UUID, Session], str | None]] = []


def current_lock(trial_id: uuid.UUID, *, session: Session) -> DatabaseLock | None:
    return session.exec(select(DatabaseLock).where(DatabaseLock.trial_id == trial_id)).first()


def is_locked(trial_id: uuid.UUID, session: Session) -> bool:
    return current_lock(trial_id, session=session) is not None


def lock_database(code: str, *, reason: str | None, session: Session, by: Principal) -> DatabaseLock:
    """Lock trial CODE's database: from now on no entry or change of its data, by any path."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.LOCK_DATABASE, session=session, trial_id=trial.id)
    if is_locked(trial.id, session):
        raise Conflict(f"the database of trial {code} is already locked")
    with audit.reason(session, reason):
        lock = DatabaseLock(trial_id=trial.id, locked_by=by.username, reason=(reason or "").strip())
        session.add(lock)
    return lock


def unlock_database(code: str, *, reason: str | None, session: Session, by: Principal) -> None:
    """Unlock trial CODE's database. The lock row is deleted under the reason, so the audit
    trail keeps who unlocked it, when and why."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.LOCK_DATABASE, session=session, trial_id=trial.id)
    lock = current_lock(trial.id, session=session)
    if lock is None:
        raise Conflict(f"the database of trial {code} is not locked")
    for check in UNLOCK_REFUSALS:
        refusal = check(trial.id, session)
        if refusal is not None:
            raise Conflict(refusal)
    with audit.reason(session, reason):
        session.delete(lock)
