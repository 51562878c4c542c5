"""What a report reads from the database, one query per table, handed on as plain data.

`gather` checks who asks and, for the final report, that the plan is locked, the database is
locked and the trial unblinded; then it reads the trial, its protocol versions with their lock
signatures, the database lock, the unblinding, the clinical records and analysis frames, runs
the plan (blinded for the progress report, whatever the trial's state), and reads the safety
events, the audit trail's summary and verification, and the software versions.
`reports.context` turns the result into the report context without touching the database.
"""

import hashlib
import importlib.metadata
import json
import platform
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from protocols.document import ProtocolDocument, canonical_dict
from protocols.models import ProtocolVersion
from trials.analyses.services import run_analysis
from trials.analyses.unblinding import unblinding_of
from trials.core.accounts.models import Site, User
from trials.core.accounts.permissions import Permission, Principal
from trials.core.accounts.services import authorize
from trials.core.audit.models import AuditEntry
from trials.core.audit.services import chain_head, verify_chain
from trials.core.db import utcnow
from trials.core.errors import Conflict
from trials.core.signatures.models import Signature
from trials.dblock.services import current_lock
from trials.participants.models import Participant
from trials.participants.services import trial_by_code
from trials.safety.models import SafetyEvent

if TYPE_CHECKING:
    import pandas as pd

    from analysis.sap import ResultsDocument
    from trials.analyses.datasets import AnalysisFrames

#: Distributions whose versions the report prints (those that compute or lay out what it shows).
SOFTWARE = (
    "trials",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "lifelines",
    "pingouin",
    "matplotlib",
    "weasyprint",
    "pydyf",
    "jinja2",
    "sqlalchemy",
    "sqlmodel",
)


@dataclass(frozen=True)
class Gathered:
    """A trial's report inputs: plain values, frames and the validated plan; no ORM objects."""

    variant: str
    generated_at: datetime
    trial_code: str
    trial_title: str
    versions: list[dict[str, Any]]  # every protocol version, oldest first
    plan_version: int  # the version whose plan the analyses follow
    document: ProtocolDocument
    sap_sha256: str
    database_lock: dict[str, Any] | None
    unblinding: dict[str, Any] | None
    frames: "AnalysisFrames"
    results: "ResultsDocument"
    snapshot_sha256: str
    safety_events: "pd.DataFrame"
    audit: dict[str, Any]
    software: dict[str, str]


def final_report_missing(code: str, *, session: Session) -> list[str]:
    """What the final report of trial CODE still waits for (empty when it can be made)."""
    trial = trial_by_code(code, session=session)
    return _missing(
        _versions(trial.id, session=session),
        current_lock(trial.id, session=session) is not None,
        unblinding_of(trial.id, session=session) is not None,
    )


def _missing(versions: list[dict[str, Any]], locked: bool, unblinded: bool) -> list[str]:
    missing = []
    if not any(v["status"] == "locked" for v in versions):
        missing.append("a locked analysis plan (protocol version)")
    if not locked:
        missing.append("the database lock")
    if not unblinded:
        missing.append("the trial's unblinding")
    return missing


def sap_sha256(document: ProtocolDocument) -> str:
    """SHA-256 of the canonical JSON of the plan's part (`sap`) of the protocol document,
    serialized as `protocols.document.canonical_json` serializes the whole document."""
    plan = canonical_dict(document)["sap"]
    text = json.dumps(plan, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def gather(
    code: str,
    *,
    session: Session,
    by: Principal,
    variant: str,
    generated_at: datetime | None = None,
    progress: Callable[[str, float], None] | None = None,
) -> Gathered:
    def step(label: str, fraction: float) -> None:
        if progress:
            progress(label, fraction)

    trial = trial_by_code(code, session=session)
    authorize(by, Permission.VIEW_RESULTS, session=session, trial_id=trial.id)
    step("reading the protocol versions and locks", 0.02)
    versions = _versions(trial.id, session=session)
    lock = current_lock(trial.id, session=session)
    if variant == "final":
        missing = _missing(versions, lock is not None, unblinding_of(trial.id, session=session) is not None)
        if missing:
            raise Conflict(
                f"the final report of trial {code} needs {', '.join(missing)}: it is still missing"
            )
    when = generated_at or utcnow()

    step("running the analysis plan", 0.08)
    analysis = run_analysis(code, session=session, by=by, blinded=variant == "blinded")
    unblinding = analysis.unblinding
    names = _printed_names(
        {u for u in (lock.locked_by if lock else None, unblinding.unblinded_by if unblinding else None) if u},
        session=session,
    )
    raw = analysis.frames.raw

    step("reading the safety events", 0.7)
    safety = _safety_events(trial.id, session=session)

    step("verifying the audit trail", 0.75)
    audit = _audit(trial.id, session=session)

    return Gathered(
        variant=variant,
        generated_at=when,
        trial_code=trial.code,
        trial_title=trial.title,
        versions=versions,
        plan_version=analysis.version.version,
        document=analysis.document,
        sap_sha256=sap_sha256(analysis.document),
        database_lock=None
        if lock is None
        else {
            "locked_at": lock.locked_at.isoformat(),
            "locked_by": lock.locked_by,
            "printed_name": names.get(lock.locked_by),
            "reason": lock.reason,
        },
        unblinding=None
        if unblinding is None
        else {
            "unblinded_at": unblinding.unblinded_at.isoformat(),
            "unblinded_by": unblinding.unblinded_by,
            "printed_name": names.get(unblinding.unblinded_by),
            "reason": unblinding.reason,
            "protocol_version": analysis.version.version,
            "protocol_sha256": unblinding.protocol_sha256,
            "database_locked_at": unblinding.database_locked_at.isoformat(),
        },
        frames=analysis.frames,
        results=analysis.results,
        snapshot_sha256=raw.snapshot_sha256(include_arms=variant == "final"),
        safety_events=safety,
        audit=audit,
        software=software_versions(),
    )


def _versions(trial_id: Any, *, session: Session) -> list[dict[str, Any]]:
    versions = session.exec(
        select(ProtocolVersion)
        .where(ProtocolVersion.trial_id == trial_id)
        .order_by(col(ProtocolVersion.version))
    ).all()
    signature_ids = [v.signature_id for v in versions if v.signature_id is not None]
    signatures: Mapping[Any, Signature] = {}
    if signature_ids:
        signatures = {
            s.id: s for s in session.exec(select(Signature).where(col(Signature.id).in_(signature_ids))).all()
        }
    out = []
    for v in versions:
        sig = signatures.get(v.signature_id) if v.signature_id else None
        out.append(
            {
                "version": v.version,
                "status": v.status,
                "content_sha256": v.content_hash,
                "created_at": v.created_at.isoformat(),
                "created_by": v.created_by,
                "locked_at": v.locked_at.isoformat() if v.locked_at else None,
                "amendment_reason": v.amendment_reason,
                "signature": None
                if sig is None
                else {
                    "printed_name": sig.printed_name,
                    "username": sig.username,
                    "meaning": sig.meaning,
                    "signed_at": sig.signed_at.isoformat(),
                    "content_sha256": sig.content_hash,
                    "manifestation": sig.manifestation,
                },
            }
        )
    return out


def _printed_names(usernames: set[str], *, session: Session) -> dict[str, str]:
    if not usernames:
        return {}
    rows = session.exec(
        select(User.username, User.printed_name).where(col(User.username).in_(sorted(usernames)))
    ).all()
    return {str(u): str(n) for u, n in rows}


def _safety_events(trial_id: Any, *, session: Session) -> "pd.DataFrame":
    """Every safety event of the trial by participant label (never a direct identifier)."""
    import pandas as pd

    e, p, s = SafetyEvent.__table__, Participant.__table__, Site.__table__  # type: ignore[attr-defined]
    columns = [
        "subject",
        "site",
        "kind",
        "item9",
        "raised_at",
        "due_at",
        "status",
        "followed_up_at",
        "escalated_at",
    ]
    rows = (
        session.connection()
        .execute(
            core_select(
                p.c.label,
                s.c.code,
                e.c.kind,
                e.c.item9,
                e.c.created_at,
                e.c.due_at,
                e.c.status,
                e.c.followed_up_at,
                e.c.escalated_at,
            )
            .select_from(e.join(p, p.c.id == e.c.participant_id).join(s, s.c.id == e.c.site_id))
            .where(e.c.trial_id == trial_id)
            .order_by(p.c.label, e.c.created_at, e.c.kind)
        )
        .all()
    )
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _audit(trial_id: Any, *, session: Session) -> dict[str, Any]:
    """The trial's audit entries by table and action, the chain's head and its verification."""
    a = AuditEntry.__table__  # type: ignore[attr-defined]
    counts = (
        session.connection()
        .execute(
            core_select(a.c.table_name, a.c.action, func.count())
            .where(a.c.trial_id == trial_id)
            .group_by(a.c.table_name, a.c.action)
            .order_by(a.c.table_name, a.c.action)
        )
        .all()
    )
    connection = session.connection()
    head = chain_head(connection)
    report = verify_chain(connection)
    return {
        "by_table_action": [
            {"table": t or "(none)", "action": str(action), "count": int(n)} for t, action, n in counts
        ],
        "head": {"count": head.seq, "hash": head.hash},
        "verification": {
            "ok": report.ok,
            "entries_checked": report.entries_checked,
            "broken_seq": report.broken_seq,
            "problem": report.problem,
        },
    }


def software_versions() -> dict[str, str]:
    """Python's version and those of the distributions in `SOFTWARE`."""
    out = {"python": platform.python_version()}
    for name in SOFTWARE:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out
