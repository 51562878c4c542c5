"""Participants' direct identifiers: encrypted at rest, readable only by the staff of their site.

The values are encrypted with Fernet (AES-128-CBC with HMAC-SHA256) under the keys of
`IDENTIFIER_KEYS`; a `MultiFernet` encrypts with the first key and decrypts with any, so a key
is rotated by putting a new one first. Nothing but this module reads the stored values, and
each reading is recorded on the audit trail (`identifiers_viewed`); changes are audited with
the values redacted.
"""

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlmodel import Session, select

from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit import services as audit
from trials.core.db import utcnow
from trials.core.errors import Conflict
from trials.participants.models import (
    IDENTIFIER_FIELDS,
    IdentifiersRead,
    IdentifiersUpdate,
    Participant,
    ParticipantIdentity,
)
from trials.participants.services import get_participant

NOT_CONFIGURED = (
    "identifier encryption is not configured: set TRIALS_IDENTIFIER_KEYS to one or more Fernet keys "
    "before entering a participant's identifiers"
)


class IdentifierCipher:
    """Encrypts with the first key and decrypts with any of them; empty when no key is set."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in keys]) if keys else None

    @property
    def configured(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise Conflict(NOT_CONFIGURED)
        return self._fernet

    def encrypt(self, text: str) -> str:
        return self._require().encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._require().decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise Conflict(
                "a participant's identifiers were encrypted with a key that is not in IDENTIFIER_KEYS"
            ) from None

    def rotate(self, token: str) -> str:
        """The same value encrypted under the first key."""
        try:
            return self._require().rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise Conflict(
                "a participant's identifiers were encrypted with a key that is not in IDENTIFIER_KEYS"
            ) from None


def identity_of(participant: Participant, *, session: Session) -> ParticipantIdentity | None:
    return session.exec(
        select(ParticipantIdentity).where(ParticipantIdentity.participant_id == participant.id)
    ).first()


def may_view(by: Principal, participant: Participant) -> bool:
    """Whether `by` is staff of the participant's site with the right to read identifiers."""
    grant = by.grant_for(
        Permission.VIEW_IDENTIFIERS, trial_id=participant.trial_id, site_id=participant.site_id
    )
    return grant is not None and grant.site_id == participant.site_id


def _authorize_view(by: Principal, participant: Participant, *, session: Session) -> None:
    authorize(
        by,
        Permission.VIEW_IDENTIFIERS,
        session=session,
        trial_id=participant.trial_id,
        site_id=participant.site_id,
    )


def _plain(identity: ParticipantIdentity | None, cipher: IdentifierCipher) -> dict[str, str | None]:
    values: dict[str, str | None] = dict.fromkeys(IDENTIFIER_FIELDS)
    if identity is None:
        return values
    for name in IDENTIFIER_FIELDS:
        token = getattr(identity, f"{name}_ciphertext")
        values[name] = None if token is None else cipher.decrypt(token)
    return values


def _read(
    participant: Participant, identity: ParticipantIdentity | None, values: dict[str, str | None]
) -> IdentifiersRead:
    return IdentifiersRead(
        participant_label=participant.label,
        full_name=values["full_name"],
        email=values["email"],
        phone=values["phone"],
        updated_at=identity.updated_at if identity is not None else None,
    )


def read_identifiers(
    participant: Participant, *, session: Session, by: Principal, cipher: IdentifierCipher
) -> IdentifiersRead:
    """The identifiers of a participant already loaded for `by`; the reading is audited."""
    _authorize_view(by, participant, session=session)
    identity = identity_of(participant, session=session)
    values = _plain(identity, cipher)
    if identity is not None and any(v is not None for v in values.values()):
        audit.record_event(
            session,
            "identifiers_viewed",
            table_name=ParticipantIdentity.__tablename__,
            record_id=str(identity.id),
            trial_id=participant.trial_id,
        )
    return _read(participant, identity, values)


def get_identifiers(
    code: str, label: str, *, session: Session, by: Principal, cipher: IdentifierCipher
) -> IdentifiersRead:
    """A participant's identifiers, for the staff of their site (another site's: not found)."""
    participant = get_participant(code, label, session=session, by=by)
    return read_identifiers(participant, session=session, by=by, cipher=cipher)


def set_identifiers(
    code: str,
    label: str,
    data: IdentifiersUpdate,
    *,
    session: Session,
    by: Principal,
    cipher: IdentifierCipher,
) -> IdentifiersRead:
    """Store a participant's identifiers as given (absent fields are stored as absent).

    Only the fields whose value changes are encrypted again, so the audit trail shows exactly
    which fields changed; a change of stored identifiers needs a reason."""
    participant = get_participant(code, label, session=session, by=by)
    _authorize_view(by, participant, session=session)
    authorize(
        by, Permission.ENTER_DATA, session=session, trial_id=participant.trial_id, site_id=participant.site_id
    )
    if not cipher.configured:
        raise Conflict(NOT_CONFIGURED)
    wanted: dict[str, str | None] = {name: getattr(data, name) for name in IDENTIFIER_FIELDS}
    identity = identity_of(participant, session=session)
    if identity is None:
        if all(value is None for value in wanted.values()):
            return _read(participant, None, wanted)
        identity = ParticipantIdentity(trial_id=participant.trial_id, participant_id=participant.id)
        for name, value in wanted.items():
            setattr(identity, f"{name}_ciphertext", None if value is None else cipher.encrypt(value))
        session.add(identity)
        session.flush()
        return _read(participant, identity, wanted)
    current = _plain(identity, cipher)
    changed = [name for name in IDENTIFIER_FIELDS if current[name] != wanted[name]]
    if changed:
        with audit.reason(session, data.reason):
            for name in changed:
                value = wanted[name]
                setattr(identity, f"{name}_ciphertext", None if value is None else cipher.encrypt(value))
            identity.updated_at = utcnow()
            session.add(identity)
    return _read(participant, identity, wanted)
