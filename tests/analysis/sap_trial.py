"""A simulated trial of the example protocol as analysis datasets, without a database.

Participants come from `trials.simulate.plan` (screening, visits, item responses, dropout, app
use, intercurrent events); the arms are allocated here by permuted blocks of the protocol's
sizes within site x baseline-severity strata; the raw frames are then derived into ADSL, ADQS
and ADTTE by `analysis.datasets` with the protocol's settings.
"""

from dataclasses import dataclass, replace
from functools import cache

import numpy as np
import pandas as pd

from analysis import datasets
from protocols.document import ProtocolDocument, load_example_protocol
from protocols.sap_spec import dataset_spec_of
from trials.simulate import plan


@dataclass(frozen=True)
class TrialFrames:
    subjects: pd.DataFrame
    screening: pd.DataFrame
    adsl: pd.DataFrame
    adqs: pd.DataFrame
    adqs_unprorated: pd.DataFrame
    adtte: pd.DataFrame


@cache
def example_document() -> ProtocolDocument:
    return load_example_protocol()


def _failures(document: ProtocolDocument, c: plan.Candidate) -> list[str]:
    rules = document.eligibility
    out = []
    if c.age_years < rules.age.min or (rules.age.max is not None and c.age_years > rules.age.max):
        out.append("age")
    phq = rules.screening_phq9
    if c.screening_phq9 < phq.min or (phq.max is not None and c.screening_phq9 > phq.max):
        out.append("screening_phq9")
    if not c.inclusion_met:
        out.append("inclusion")
    if c.exclusion_present:
        out.append("exclusion")
    return out


def simulate(n_randomized: int, seed: int, document: ProtocolDocument | None = None) -> TrialFrames:
    doc = document or example_document()
    spec = dataset_spec_of(doc)
    rng = np.random.default_rng(seed)
    arms = [a.code for a in doc.arms]
    cut = doc.randomization.severity_cut_points[0]
    queues: dict[tuple[str, str], list[str]] = {}
    screening, subjects, assessments, events, use = [], [], [], [], []
    for c in plan.candidates(doc, n_randomized, seed):
        label = f"{c.site_code}-{c.index + 1:05d}"
        reasons = _failures(doc, c)
        screening.append({"subject": label, "eligible": not reasons, "failure_reasons": tuple(reasons)})
        if reasons:
            continue
        severity = f"PHQ-9 0-{cut - 1}" if c.screening_phq9 < cut else f"PHQ-9 {cut}-27"
        queue = queues.setdefault((c.site_code, severity), [])
        if not queue:
            size = int(rng.choice(doc.randomization.block_sizes))
            queue.extend(rng.permutation(np.repeat(arms, size // len(arms))).tolist())
        arm = queue.pop()
        course = plan.course(doc, c, arm, seed)
        randomized = c.randomized_at.date()
        subjects.append(
            {
                "subject": label,
                "site": c.site_code,
                "arm": arm,
                "severity_stratum": severity,
                "randomized_on": randomized,
                "consent_date": c.consent_date,
                "age": c.age_years,
                "screening_phq9": c.screening_phq9,
            }
        )
        for a in course.assessments:
            row: dict[str, object] = {
                "subject": label,
                "instrument": a.instrument,
                "assessed_on": a.assessed_on,
            }
            row.update({f"item_{k}": a.items.get(str(k)) for k in range(1, 11)})
            assessments.append(row)
        for e in (*course.intercurrent, *([course.disposition] if course.disposition else [])):
            events.append({"subject": label, "kind": e.kind, "on": e.on})
        for u in course.app_use:
            use.append(
                {
                    "subject": label,
                    "day": u.day,
                    "sessions": u.sessions,
                    "minutes": u.minutes,
                    "modules_completed": u.modules_completed,
                }
            )
    subject_frame = pd.DataFrame(subjects)
    assessment_frame = pd.DataFrame(assessments)
    for k in range(1, 11):
        assessment_frame[f"item_{k}"] = assessment_frame[f"item_{k}"].astype("Int64")
    event_frame = pd.DataFrame(events, columns=["subject", "kind", "on"])
    use_frame = pd.DataFrame(use, columns=["subject", "day", "sessions", "minutes", "modules_completed"])
    adqs = datasets.parameter_by_visit(subject_frame, assessment_frame, spec)
    adqs_unprorated = datasets.parameter_by_visit(
        subject_frame, assessment_frame, replace(spec, prorate=False)
    )
    adsl = datasets.subject_level(subject_frame, adqs, event_frame, use_frame, spec)
    adtte = datasets.time_to_event(adsl, adqs, spec)
    return TrialFrames(
        subjects=subject_frame,
        screening=pd.DataFrame(screening),
        adsl=adsl,
        adqs=adqs,
        adqs_unprorated=adqs_unprorated,
        adtte=adtte,
    )
