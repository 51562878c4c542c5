"""The one place that turns a trial's rows into DataFrames for the analyses.

Reads only the needed columns with one query per table (ARCHITECTURE.md: bulk paths), then
hands plain frames to the pure derivations of `analysis.datasets`. The data snapshot hash
covers the clinical content (values and clinical dates, keyed by participant label), never
entry timestamps or database ids, so the same data always give the same hash.
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from analysis.datasets import DatasetSpec, parameter_by_visit, subject_level, time_to_event
from protocols.document import ProtocolDocument
from protocols.sap_spec import dataset_spec_of
from trials.assessments.models import Assessment
from trials.core.accounts.models import Site
from trials.engagement.models import EngagementDay
from trials.events.models import AdverseEvent, DispositionEvent
from trials.participants.models import Participant
from trials.randomization.blocks import severity_levels
from trials.randomization.models import AllocationSlot
from trials.randomization.services import SCORE_MAXIMUM

ITEMS = [f"item_{n}" for n in range(1, 11)]


@dataclass(frozen=True)
class RawData:
    """A trial's clinical records as frames (see `analysis.datasets` for the columns)."""

    screening: pd.DataFrame
    subjects: pd.DataFrame
    assessments: pd.DataFrame
    events: pd.DataFrame
    adverse_events: pd.DataFrame
    app_use: pd.DataFrame

    def snapshot_sha256(self, *, include_arms: bool = True) -> str:
        """SHA-256 of the clinical content: every frame, rows sorted, values as text. Without
        the arms for a blinded result (a hash over them would let guesses be tested)."""
        digest = hashlib.sha256()
        for name in ("screening", "subjects", "assessments", "events", "adverse_events", "app_use"):
            frame: pd.DataFrame = getattr(self, name)
            columns = sorted(c for c in frame.columns if include_arms or c != "arm")
            rows = sorted(
                json.dumps([_text(v) for v in row], separators=(",", ":"))
                for row in frame[columns].itertuples(index=False, name=None)
            )
            digest.update(json.dumps({"table": name, "columns": columns}).encode())
            for row in rows:
                digest.update(row.encode())
                digest.update(b"\n")
        return digest.hexdigest()


def _text(value: Any) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _frame(session: Session, query: Any, columns: list[str]) -> pd.DataFrame:
    rows = session.connection().execute(query).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=columns)


def _severity(document: ProtocolDocument, stratum: str) -> str | None:
    """The baseline-severity level of the stratum the participant was randomized in (not
    recomputed: an amendment of the cut points must not move anyone)."""
    rnd = document.randomization
    if "baseline_severity" not in rnd.strata:
        return None
    labels = {
        label
        for _lo, _hi, label in severity_levels(
            rnd.severity_instrument, rnd.severity_cut_points, SCORE_MAXIMUM[rnd.severity_instrument]
        )
    }
    parts = stratum.split(" / ")
    return next((part for part in parts if part in labels), parts[-1])


def load_raw(trial_id: uuid.UUID, document: ProtocolDocument, *, session: Session) -> RawData:
    """Every clinical record of the trial, as frames."""
    p, s, a = Participant.__table__, Site.__table__, AllocationSlot.__table__  # type: ignore[attr-defined]
    screening = _frame(
        session,
        select(
            p.c.label,
            s.c.code,
            p.c.status,
            p.c.screened_on,
            p.c.age_years,
            p.c.screening_phq9,
            p.c.eligible,
            p.c.screen_failure_reasons,
            p.c.consent_date,
        )
        .select_from(p.join(s, s.c.id == p.c.site_id))
        .where(p.c.trial_id == trial_id)
        .order_by(p.c.label),
        [
            "subject",
            "site",
            "status",
            "screened_on",
            "age",
            "screening_phq9",
            "eligible",
            "reasons",
            "consent_date",
        ],
    )
    subjects = _frame(
        session,
        select(
            p.c.label,
            s.c.code,
            a.c.arm_code,
            a.c.stratum,
            a.c.randomized_at,
            p.c.consent_date,
            p.c.age_years,
            p.c.screening_phq9,
        )
        .select_from(p.join(s, s.c.id == p.c.site_id).join(a, a.c.participant_id == p.c.id))
        .where(p.c.trial_id == trial_id, a.c.randomized_at.is_not(None))
        .order_by(p.c.label),
        ["subject", "site", "arm", "stratum", "randomized_at", "consent_date", "age", "screening_phq9"],
    )
    subjects["randomized_on"] = [t.date() for t in subjects["randomized_at"]]
    subjects["severity_stratum"] = [_severity(document, str(x)) for x in subjects["stratum"]]
    t = Assessment.__table__  # type: ignore[attr-defined]
    assessments = _frame(
        session,
        select(p.c.label, t.c.instrument, t.c.assessed_on, t.c.visit_code, *(t.c[i] for i in ITEMS))
        .select_from(t.join(p, p.c.id == t.c.participant_id))
        .where(t.c.trial_id == trial_id)
        .order_by(p.c.label, t.c.instrument, t.c.assessed_on, t.c.visit_code),
        ["subject", "instrument", "assessed_on", "visit_code", *ITEMS],
    )
    d = DispositionEvent.__table__  # type: ignore[attr-defined]
    events = _frame(
        session,
        select(p.c.label, d.c.kind, d.c.event_date, d.c.other_treatment)
        .select_from(d.join(p, p.c.id == d.c.participant_id))
        .where(d.c.trial_id == trial_id, d.c.status == "current")
        .order_by(p.c.label, d.c.event_date, d.c.kind),
        ["subject", "kind", "on", "other_treatment"],
    )
    ae = AdverseEvent.__table__  # type: ignore[attr-defined]
    # Clinical columns only: no ids (a linked safety event is a random id), no entry times.
    ae_columns = [
        c.name
        for c in ae.columns
        if not (c.name == "id" or c.name.endswith("_id") or c.name.endswith("_at") or c.name == "reported_by")
    ]
    adverse_events = _frame(
        session,
        select(p.c.label, *(ae.c[c] for c in ae_columns))
        .select_from(ae.join(p, p.c.id == ae.c.participant_id))
        .where(ae.c.trial_id == trial_id)
        .order_by(p.c.label, ae.c.onset_date, ae.c.term),
        ["subject", *ae_columns],
    )
    e = EngagementDay.__table__  # type: ignore[attr-defined]
    app_use = _frame(
        session,
        select(p.c.label, e.c.day, e.c.sessions, e.c.minutes, e.c.modules_completed)
        .select_from(e.join(p, p.c.id == e.c.participant_id))
        .where(e.c.trial_id == trial_id)
        .order_by(p.c.label, e.c.day),
        ["subject", "day", "sessions", "minutes", "modules_completed"],
    )
    return RawData(screening, subjects, assessments, events, adverse_events, app_use)


def screening_log(raw: RawData) -> pd.DataFrame:
    """The screening log for the CONSORT diagram: eligibility and the failed rules' codes."""
    reasons = [[r["rule"] for r in json.loads(text)] if text else [] for text in raw.screening["reasons"]]
    return pd.DataFrame(
        {
            "subject": raw.screening["subject"],
            "eligible": raw.screening["eligible"].astype(bool),
            "failure_reasons": reasons,
        }
    )


@dataclass(frozen=True)
class AnalysisFrames:
    spec: DatasetSpec
    adsl: pd.DataFrame
    adqs: pd.DataFrame
    adqs_unprorated: pd.DataFrame
    adtte: pd.DataFrame
    raw: RawData


def analysis_frames(raw: RawData, document: ProtocolDocument) -> AnalysisFrames:
    """The analysis datasets of the trial, by the plan's rules (and without prorating)."""
    spec = dataset_spec_of(document)
    adqs = parameter_by_visit(raw.subjects, raw.assessments, spec)
    unprorated = parameter_by_visit(raw.subjects, raw.assessments, _without_prorating(spec))
    adsl = subject_level(raw.subjects, adqs, raw.events, raw.app_use, spec)
    adtte = time_to_event(adsl, adqs, spec)
    return AnalysisFrames(spec, adsl, adqs, unprorated, adtte, raw)


def _without_prorating(spec: DatasetSpec) -> DatasetSpec:
    import dataclasses

    return dataclasses.replace(spec, prorate=False)
