"""Protocol registry: register, update a draft, amend, lock with an electronic signature, diff.

Every write is audited by the audit mechanism; a refused edit of a locked version is put on
record as an `edit_refused` event that survives the refusal.
"""

import functools
import json
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlmodel import Session, col, select

from protocols.document import (
    FieldChange,
    ProtocolDocument,
    canonical_json,
    content_hash,
    diff_documents,
    parse_protocol,
    validate_protocol,
)
from protocols.models import ProtocolVersion, Status
from trials.core.accounts.models import Trial, TrialCreate
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize, create_trial
from trials.core.audit import services as audit
from trials.core.errors import Conflict, FieldError, InvalidInput, NotFound
from trials.core.signatures.models import Meaning, Signature
from trials.core.signatures.services import sign

Format = Literal["yaml", "json"]


@dataclass(frozen=True)
class Submission:
    """A document as submitted: its text, its format (None: detect) and the parsed document."""

    text: str
    format: Format
    document: ProtocolDocument

    def parse(self) -> "Submission":
        """Already parsed: services take a `Source` or a `Submission` alike."""
        return self


@dataclass(frozen=True)
class Source:
    """A document as it arrived, not yet parsed: services parse it after the access and lock
    checks, so that a refused edit is refused (and recorded) whatever the document holds."""

    text: str | bytes
    format: Format | None = None

    def parse(self) -> "Submission":
        return parse_submission(self.text, self.format)


def format_from_name(filename: str) -> Format | None:
    """The format a file name announces (.json, .yaml, .yml), or None to detect it."""
    name = filename.lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith((".yaml", ".yml")):
        return "yaml"
    return None


def parse_submission(text: str | bytes, fmt: Format | None = None) -> Submission:
    """Parse and validate; raises ProtocolValidationError (field paths and rules), stores nothing."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput.field("", "encoding", "document: must be UTF-8 text") from None
    document = parse_protocol(text, format=fmt)
    detected: Format = fmt or ("json" if text.lstrip().startswith("{") else "yaml")
    return Submission(text, detected, document)


def _trial(code: str, *, session: Session) -> Trial:
    trial = session.exec(select(Trial).where(Trial.code == code)).first()
    if trial is None:
        raise NotFound(f"no trial with code {code!r}")
    return trial


def _versions(trial: Trial, *, session: Session) -> list[ProtocolVersion]:
    query = select(ProtocolVersion).where(ProtocolVersion.trial_id == trial.id)
    return list(session.exec(query.order_by(col(ProtocolVersion.version))).all())


def _new_version(
    trial: Trial, number: int, sub: Submission, by: Principal, reason: str | None
) -> ProtocolVersion:
    return ProtocolVersion(
        trial_id=trial.id,
        version=number,
        source_format=sub.format,
        source_text=sub.text,
        document_json=canonical_json(sub.document).decode("utf-8"),
        content_hash=content_hash(sub.document),
        amendment_reason=reason,
        created_by=by.username,
    )


def register(source: Source | Submission, *, session: Session, by: Principal) -> ProtocolVersion:
    """Version 1 of a trial's protocol, as a draft.

    An existing trial needs the manage-protocol permission in it; a new trial is created from
    the document's code and title, which only an administrator may do.
    """
    sub = source.parse()
    code = sub.document.trial.code
    trial = session.exec(select(Trial).where(Trial.code == code)).first()
    if trial is None:
        title = " ".join(sub.document.trial.title.split())
        trial = create_trial(TrialCreate(code=code, title=title), session=session, by=by)
    else:
        authorize(by, Permission.MANAGE_PROTOCOL, session=session, trial_id=trial.id)
        if _versions(trial, session=session):
            raise Conflict(
                f"trial {code} already has a protocol: amend it instead",
                errors=[FieldError("trial.code", "registered", f"trial.code: {code} is already registered")],
            )
    version = _new_version(trial, 1, sub, by, None)
    session.add(version)
    session.flush()
    return version


def get_version(code: str, number: int | None, *, session: Session, by: Principal) -> ProtocolVersion:
    """A version (the latest when `number` is None) of a trial the caller may view."""
    trial = _trial(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    versions = _versions(trial, session=session)
    if not versions:
        raise NotFound(f"trial {code} has no protocol")
    if number is None:
        return versions[-1]
    for version in versions:
        if version.version == number:
            return version
    raise NotFound(f"trial {code} has no protocol version {number}")


def list_versions(code: str, *, session: Session, by: Principal) -> list[ProtocolVersion]:
    trial = _trial(code, session=session)
    authorize(by, Permission.VIEW_TRIAL, session=session, trial_id=trial.id)
    return _versions(trial, session=session)


def list_protocols(*, session: Session, by: Principal) -> list[tuple[Trial, ProtocolVersion]]:
    """The latest version of each trial's protocol the caller may view."""
    visible = by.trial_ids_with(Permission.VIEW_TRIAL)
    query = select(Trial, ProtocolVersion).join(ProtocolVersion, col(ProtocolVersion.trial_id) == Trial.id)
    if visible is not None:
        query = query.where(col(Trial.id).in_(visible))
    latest: dict[uuid.UUID, tuple[Trial, ProtocolVersion]] = {}
    for trial, version in session.exec(query.order_by(col(Trial.code), col(ProtocolVersion.version))).all():
        latest[trial.id] = (trial, version)
    return list(latest.values())


def document_of(version: ProtocolVersion) -> ProtocolDocument:
    """The validated document of a version; parsed once per distinct content (conduct reads
    the locked protocol on every request)."""
    return _document_from_json(version.document_json)


@functools.lru_cache(maxsize=32)
def _document_from_json(document_json: str) -> ProtocolDocument:
    # Keyed by the canonical JSON itself, so an edited draft is never served stale; the
    # document models are frozen.
    return validate_protocol(json.loads(document_json))


def _refuse_if_locked(version: ProtocolVersion, attempt: str, *, session: Session) -> None:
    if version.locked:
        audit.record_event(
            session,
            "edit_refused",
            table_name="protocol_version",
            record_id=str(version.id),
            trial_id=version.trial_id,
            detail=f"{attempt} refused: version {version.version} is locked",
        )
        raise Conflict(
            f"protocol version {version.version} is locked and cannot be changed: amend it instead",
            keep_changes=True,
        )


def update_draft(
    code: str, number: int, source: Source | Submission, *, reason: str, session: Session, by: Principal
) -> ProtocolVersion:
    """Replace the document of a draft version (a reason is required)."""
    version = get_version(code, number, session=session, by=by)
    authorize(by, Permission.MANAGE_PROTOCOL, session=session, trial_id=version.trial_id)
    _refuse_if_locked(version, "edit", session=session)
    sub = source.parse()
    _same_trial(version, sub)
    with audit.reason(session, reason):
        version.source_format = sub.format
        version.source_text = sub.text
        version.document_json = canonical_json(sub.document).decode("utf-8")
        version.content_hash = content_hash(sub.document)
        session.add(version)
    return version


def _same_trial(version: ProtocolVersion, sub: Submission) -> None:
    current = json.loads(version.document_json)["trial"]["code"]
    if sub.document.trial.code != current:
        message = f"trial.code: must stay {current} (a protocol cannot move to another trial)"
        raise InvalidInput(message, errors=[FieldError("trial.code", "unchanged", message)])


def amend(
    code: str, source: Source | Submission, *, reason: str, session: Session, by: Principal
) -> ProtocolVersion:
    """A new version after the latest, which must be locked; the reason is recorded."""
    latest = get_version(code, None, session=session, by=by)
    authorize(by, Permission.MANAGE_PROTOCOL, session=session, trial_id=latest.trial_id)
    if not (reason or "").strip():
        raise InvalidInput.field("reason", "required", "reason: an amendment needs a reason")
    if not latest.locked:
        raise Conflict(f"version {latest.version} is still a draft: edit it instead of amending")
    sub = source.parse()
    _same_trial(latest, sub)
    if content_hash(sub.document) == latest.content_hash:
        raise InvalidInput.field("document", "unchanged", "document: the amendment changes nothing")
    trial = _trial(code, session=session)
    version = _new_version(trial, latest.version + 1, sub, by, reason.strip())
    with audit.reason(session, reason):
        session.add(version)
    return version


def lock(
    code: str, number: int, *, password: str, session: Session, by: Principal, lockout_threshold: int
) -> tuple[ProtocolVersion, Signature]:
    """Lock a draft: signed for approval (password again), SHA-256 of the canonical document."""
    version = get_version(code, number, session=session, by=by)
    authorize(by, Permission.MANAGE_PROTOCOL, session=session, trial_id=version.trial_id)
    _refuse_if_locked(version, "lock", session=session)
    digest = content_hash(document_of(version))
    if digest != version.content_hash:  # the stored hash must be the hash of the stored content
        raise Conflict(f"version {number}'s stored hash does not match its document")
    signature = sign(
        table_name="protocol_version",
        record_id=version.id,
        content_hash=digest,
        meaning=Meaning.APPROVAL,
        password=password,
        session=session,
        by=by,
        lockout_threshold=lockout_threshold,
        trial_id=version.trial_id,
    )
    with audit.reason(session, f"locked with an approval signature by {signature.printed_name}"):
        version.status = Status.LOCKED.value
        version.locked_at = signature.signed_at
        version.signature_id = signature.id
        session.add(version)
    return version, signature


def diff(code: str, old: int, new: int, *, session: Session, by: Principal) -> list[FieldChange]:
    """Field-by-field changes from version `old` to version `new`."""
    before = document_of(get_version(code, old, session=session, by=by))
    after = document_of(get_version(code, new, session=session, by=by))
    return diff_documents(before, after)


def signature_of(version: ProtocolVersion, *, session: Session) -> Signature | None:
    return session.get(Signature, version.signature_id) if version.signature_id else None
