"""Signing: re-authenticate with the password, then record who, when, meaning and hash."""

import uuid

from sqlmodel import Session

from trials.core.accounts import services as accounts
from trials.core.accounts.permissions import Principal
from trials.core.signatures.models import Meaning, Signature


def sign(
    *,
    table_name: str,
    record_id: uuid.UUID,
    content_hash: str,
    meaning: Meaning,
    password: str,
    session: Session,
    by: Principal,
    lockout_threshold: int,
    trial_id: uuid.UUID | None = None,
    role: str | None = None,
) -> Signature:
    """Sign a record's content. The password is checked again; a wrong one counts to the lockout."""
    user = accounts.reauthenticate(by, password, session=session, lockout_threshold=lockout_threshold)
    signature = Signature(
        user_id=user.id,
        username=user.username,
        printed_name=user.printed_name,
        meaning=meaning.value,
        table_name=table_name,
        record_id=str(record_id),
        content_hash=content_hash,
        trial_id=trial_id,
        role=role,
    )
    session.add(signature)
    session.flush()
    return signature
