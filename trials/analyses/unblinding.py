"""Unblinding a trial: arm-level results are released only after it.

DOMAIN.md section 2: the SAP is locked before unblinding, and unblinded analysis is refused
until it is. The database is locked first, an unblinded statistician or the sponsor unblinds,
with a reason, on the audit trail; from then on the database cannot be unlocked, and the
analyses use the plan version that was locked when the trial was unblinded.
"""

import uuid

from sqlmodel import Session, select

from trials.analyses.models import TrialUnblinding
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.errors import Conflict, InvalidInput
from trials.dblock.services import UNLOCK_REFUSALS, current_lock
from trials.participants.services import locked_protocol, trial_by_code


def unblinding_of(trial_id: uuid.UUID, *, session: Session) -> TrialUnblinding | None:
    return session.exec(select(TrialUnblinding).where(TrialUnblinding.trial_id == trial_id)).first()


def unblind_trial(code: str, *, reason: str | None, session: Session, by: Principal) -> TrialUnblinding:
    """Unblind trial CODE: needs its locked plan, its locked database and a reason."""
    trial = trial_by_code(code, session=session)
    authorize(by, Permission.UNBLIND_TRIAL, session=session, trial_id=trial.id)
    text = (reason or "").strip()
    if not text:
        raise InvalidInput.field("reason", "required", "reason: say why the trial is unblinded")
    if unblinding_of(trial.id, session=session) is not None:
        raise Conflict(f"trial {code} is already unblinded")
    version, _document = locked_protocol(trial, session=session)  # Conflict without a locked plan
    lock = current_lock(trial.id, session=session)
    if lock is None:
        raise Conflict(f"the database of trial {code} is not locked: lock it before unblinding")
    with audit.reason(session, text):
        record = TrialUnblinding(
            trial_id=trial.id,
            protocol_version_id=version.id,
            protocol_sha256=version.content_hash,
            database_locked_at=lock.locked_at,
            unblinded_by=by.username,
            reason=text,
        )
        session.add(record)
        session.flush()
    return record


def _refuse_unlock_after_unblinding(trial_id: uuid.UUID, session: Session) -> str | None:
    if unblinding_of(trial_id, session=session) is None:
        return None
    return "the trial is unblinded: its database stays locked (arm-level results were released on these data)"


UNLOCK_REFUSALS.append(_refuse_unlock_after_unblinding)
