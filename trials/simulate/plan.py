"""What a simulated trial's participants do: drawn from a seed, before anything is written.

Pure: a protocol document, a seed and a participant count in, frozen plans out. The same seed
and protocol always give the same plans; dates are anchored on a fixed study start, never on
today. `trials.simulate.services` writes the plans through the platform's own services.

The model (chosen to exercise every path, not to predict any real trial):
- screening: ages and screening PHQ-9 scores drawn wider than the eligibility ranges, a few
  unmet inclusion criteria and present exclusions, so that some candidates fail screening;
- outcomes: the true PHQ-9 falls towards an arm-specific change at the primary visit (digital
  app -6.5, attention control -3.5, waitlist or usual care -2.0 points), with a per-person
  response factor and visit noise; GAD-7 moves with it; item responses are spread over the
  items so that they sum to the total; item 9 is positive more often at higher totals;
- missing data: dropout after a visit depends on the last observed PHQ-9 (missing at random),
  intermittent missed visits, and an occasional unanswered item;
- app use (arms with an app): daily use that decays over time and stops for good on a drawn
  day; stopping early is the protocol's STOP_APP intercurrent event;
- other intercurrent events (a new antidepressant or psychotherapy, a crisis) and adverse
  events, a few of them serious.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np

from analysis.scoring import RULES

STUDY_START = date(2025, 3, 3)  # the first screening day of every simulated trial
ACCRUAL_DAYS = 180
# Mean change in PHQ-9 from baseline at the primary visit, by kind of arm.
ARM_EFFECT = {"digital": -6.5, "attention_control": -3.5}
DEFAULT_EFFECT = -2.0
GAD7_SHARE = 0.7  # GAD-7 moves by this share of the PHQ-9 change
TREATMENT_DAYS = 56  # app use is recorded over the treatment period
STOP_APP_GAP = 14  # days without use that define stopping (the example protocol's definition)

AE_TERMS: tuple[tuple[str, float], ...] = (
    ("Headache", 0.25),
    ("Insomnia", 0.2),
    ("Anxiety", 0.15),
    ("Eye strain", 0.15),
    ("Nausea", 0.1),
    ("Fatigue", 0.15),
)
SERIOUS_TERMS = ("Hospitalisation for depression", "Overdose requiring emergency treatment")


@dataclass(frozen=True)
class Candidate:
    """A person screened: their answers to the eligibility rules, and when they would consent."""

    index: int
    site_code: str
    screened_on: date
    age_years: int
    screening_phq9: int
    inclusion_met: bool
    exclusion_present: bool
    consent_date: date
    randomized_at: datetime


@dataclass(frozen=True)
class PlannedAssessment:
    instrument: str
    visit_code: str
    assessed_on: date
    items: dict[str, int | None]


@dataclass(frozen=True)
class PlannedAdverseEvent:
    term: str
    onset_date: date
    end_date: date | None
    serious: bool
    severity: str  # mild | moderate | severe
    related: bool  # possibly related to the app


@dataclass(frozen=True)
class PlannedEvent:
    """An intercurrent or disposition event: `kind` in the platform's vocabulary."""

    kind: str
    on: date
    reason: str


@dataclass(frozen=True)
class PlannedUse:
    day: date
    sessions: int
    minutes: int
    modules_completed: int


@dataclass(frozen=True)
class Course:
    """What one randomized participant does after randomization."""

    assessments: tuple[PlannedAssessment, ...]
    adverse_events: tuple[PlannedAdverseEvent, ...]
    intercurrent: tuple[PlannedEvent, ...]
    disposition: PlannedEvent | None
    app_use: tuple[PlannedUse, ...] = field(default_factory=tuple)


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream per purpose and participant, from one seed."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))


def candidates(document: Any, n_randomized: int, seed: int) -> list[Candidate]:
    """Screened candidates, in screening order, until `n_randomized` of them are eligible."""
    rng = rng_for(seed, 1)
    sites = [s.code for s in document.sites]
    weights = np.linspace(1.4, 0.6, num=len(sites))
    weights = weights / weights.sum()
    elig = document.eligibility
    age_lo, age_hi = elig.age.min, elig.age.max
    phq_lo, phq_hi = elig.screening_phq9.min, elig.screening_phq9.max
    out: list[Candidate] = []
    eligible = 0
    index = 0
    while eligible < n_randomized:
        age = int(rng.integers(max(16, age_lo - 3), age_hi + 6))
        phq9 = int(np.clip(round(rng.normal((phq_lo + phq_hi) / 2, 3.6)), 0, 27))
        inclusion = bool(rng.random() > 0.03)
        exclusion = bool(rng.random() < 0.04)
        ok = age_lo <= age <= age_hi and phq_lo <= phq9 <= phq_hi and inclusion and not exclusion
        # Screening dates spread evenly over the accrual period, in order.
        screened = STUDY_START + timedelta(days=int(ACCRUAL_DAYS * index / max(1, n_randomized * 1.3)))
        consent = screened + timedelta(days=int(rng.integers(0, 4)))
        randomized = datetime.combine(
            consent + timedelta(days=int(rng.integers(0, 3))),
            time(9 + int(rng.integers(0, 8)), int(rng.integers(0, 60))),
            tzinfo=UTC,
        )
        out.append(
            Candidate(
                index=index,
                site_code=str(rng.choice(sites, p=weights)),
                screened_on=screened,
                age_years=age,
                screening_phq9=phq9,
                inclusion_met=inclusion,
                exclusion_present=exclusion,
                consent_date=consent,
                randomized_at=randomized,
            )
        )
        eligible += ok
        index += 1
    return out


def items_for(rng: np.random.Generator, instrument: str, total: int) -> dict[str, int | None]:
    """Item responses (0-3) that sum to `total`; PHQ-9's item 9 is positive more often at
    higher totals, and its item 10 (difficulty) follows the total without adding to it."""
    rule = RULES[instrument]
    n = rule.n_items
    values = [0] * n
    remaining = int(np.clip(total, 0, 3 * n))
    if instrument == "PHQ-9":
        p9 = float(np.clip(0.02 + 0.015 * (remaining - 10), 0.01, 0.35))
        if rng.random() < p9:
            values[8] = min(remaining, int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1])))
            remaining -= values[8]
        remaining = min(remaining, 24)
        free = list(range(8))
    else:
        free = list(range(n))
    profile = rng.dirichlet(np.full(len(free), 2.0))
    while remaining > 0:
        open_items = [i for i in free if values[i] < 3]
        p = np.array([profile[free.index(i)] for i in open_items])
        pick = open_items[int(rng.choice(len(open_items), p=p / p.sum()))]
        values[pick] += 1
        remaining -= 1
    items: dict[str, int | None] = {str(i + 1): v for i, v in enumerate(values)}
    if instrument == "PHQ-9":
        items["10"] = min(3, total // 7)
    # An occasional unanswered item: missing, never 0 (item 9 more rarely).
    for key in list(items)[: rule.n_items]:
        if rng.random() < (0.004 if key == "9" else 0.01):
            items[key] = None
    return items


def _outside_every_window(day: int, visit: Any, visits: Sequence[Any]) -> bool:
    """Whether `day` is in no visit's window and nearest to `visit` (so that it is assigned to
    `visit`, out of window)."""
    if any(v.window[0] <= day <= v.window[1] for v in visits):
        return False
    return min(visits, key=lambda v: (abs(v.day - day), v.day)) is visit


def _visit_date(
    rng: np.random.Generator, randomized: date, visit: Any, visits: Sequence[Any], consent: date
) -> date:
    first, last = visit.window
    if visit.day == 0:  # baseline: on randomization day or a few days before, after consent
        offset = -int(rng.integers(0, min(4, last - first + 1)))
        return max(consent, randomized + timedelta(days=offset))
    late = [d for d in range(last + 1, last + 5) if _outside_every_window(d, visit, visits)]
    if late and rng.random() < 0.03:  # a few days late, out of every window
        offset = late[int(rng.integers(0, len(late)))]
    else:
        spread = max(1.0, (last - first) / 4)
        offset = int(np.clip(round(rng.normal(visit.day, spread)), first, last))
    return randomized + timedelta(days=offset)


def _app_use(
    rng: np.random.Generator, arm_kind: str, randomized: date, until: date
) -> tuple[list[PlannedUse], date | None]:
    """Daily app use over the treatment period, and the day use stopped early (if it did)."""
    p0 = float(rng.beta(8, 2))
    decay = float(rng.gamma(2.0, 30.0))
    stop_after = int(rng.exponential(70 if arm_kind == "digital" else 50))
    modules_left = 8  # CBT modules, or (attention control) weekly diary reviews
    use: list[PlannedUse] = []
    for d in range(TREATMENT_DAYS):
        day = randomized + timedelta(days=d)
        if day > until or d > stop_after:
            break
        if rng.random() >= p0 * math.exp(-d / decay):
            continue
        sessions = 1 + int(rng.poisson(0.5))
        minutes = int(min(1440, sum(max(1, round(rng.gamma(2.0, 6.0))) for _ in range(sessions))))
        modules = 0
        if modules_left and rng.random() < 0.25:
            modules, modules_left = 1, modules_left - 1
        use.append(PlannedUse(day, sessions, minutes, modules))
    last_use = use[-1].day if use else randomized
    stopped = last_use if (last_use - randomized).days < TREATMENT_DAYS - STOP_APP_GAP else None
    return use, stopped


def course(document: Any, candidate: Candidate, arm_code: str, seed: int) -> Course:
    """The participant's visits, events and app use, given their arm."""
    rng = rng_for(seed, 2, candidate.index)
    arm = next(a for a in document.arms if a.code == arm_code)
    randomized = candidate.randomized_at.date()
    visits = sorted(document.visits, key=lambda v: v.day)
    primary_day = max(v.day for v in visits if v.day <= TREATMENT_DAYS) or TREATMENT_DAYS
    effect = ARM_EFFECT.get(arm.kind, DEFAULT_EFFECT)
    baseline = float(np.clip(candidate.screening_phq9 + rng.normal(0, 1.5), 5, 27))
    gad_baseline = float(np.clip(GAD7_SHARE * baseline + rng.normal(2, 2), 0, 21))
    responsiveness = float(max(0.0, rng.normal(1.0, 0.5)))
    waitlist = arm.kind not in ARM_EFFECT

    assessments: list[PlannedAssessment] = []
    intercurrent: list[PlannedEvent] = []
    disposition: PlannedEvent | None = None
    last_total = baseline
    last_date = randomized
    for visit in visits:
        when = _visit_date(rng, randomized, visit, visits, candidate.consent_date)
        if visit.day > 0:
            # Dropout before this visit depends on the last observed score (missing at random).
            hazard = 1 / (1 + math.exp(-(-3.4 + 0.12 * (last_total - 12) + (0.5 if waitlist else 0.0))))
            if rng.random() < hazard:
                gap = max(1, (when - last_date).days)
                left = last_date + timedelta(days=int(rng.integers(1, gap + 1)))
                if rng.random() < 0.4:
                    disposition = PlannedEvent(
                        "withdrawal_by_subject", left, "Withdrew consent: no longer wishes to take part"
                    )
                else:
                    disposition = PlannedEvent(
                        "lost_to_follow_up", left, "No response to three contact attempts"
                    )
                break
            if rng.random() < 0.07:  # an intermittent missed visit
                continue
        progress = min(1.0, (1 - math.exp(-max(0, visit.day) / 21)) / (1 - math.exp(-primary_day / 21)))
        change = effect * responsiveness * progress
        total = int(np.clip(round(baseline + change + rng.normal(0, 2.2)), 0, 27))
        for instrument in visit.instruments:
            if instrument == "GAD-7":
                value = gad_baseline + GAD7_SHARE * change + rng.normal(0, 1.8)
                score = int(np.clip(round(value), 0, 21))
            else:
                score = total if instrument == "PHQ-9" else min(total, 24)
            assessments.append(
                PlannedAssessment(instrument, visit.code, when, items_for(rng, instrument, score))
            )
        last_total, last_date = total, when
    end = disposition.on if disposition else last_date
    if disposition is None:
        disposition = PlannedEvent("completed", last_date, "Completed the final scheduled visit")

    use: list[PlannedUse] = []
    if arm.app_name is not None:
        use, stopped = _app_use(rng, arm.kind, randomized, end)
        if stopped is not None and stopped < end:
            intercurrent.append(
                PlannedEvent(
                    "stopped_app_use", stopped, f"No app activity for {STOP_APP_GAP} days after this day"
                )
            )
    follow_up_days = max(1, (end - randomized).days)
    if rng.random() < (0.15 if waitlist else 0.07):
        on = randomized + timedelta(days=int(rng.integers(1, follow_up_days + 1)))
        intercurrent.append(
            PlannedEvent("started_other_treatment", on, "Antidepressant (sertraline) started by the GP")
        )
    high_item9 = any(a.instrument == "PHQ-9" and (a.items.get("9") or 0) >= 2 for a in assessments)
    if high_item9 and rng.random() < 0.3:
        on = randomized + timedelta(days=int(rng.integers(1, follow_up_days + 1)))
        intercurrent.append(
            PlannedEvent("crisis_treatment_change", on, "Crisis team referral; treatment changed")
        )

    adverse: list[PlannedAdverseEvent] = []
    for _ in range(int(rng.poisson(0.12 if waitlist else 0.2))):
        terms, weights = zip(*AE_TERMS, strict=True)
        serious = bool(rng.random() < 0.05)
        term = str(rng.choice(SERIOUS_TERMS)) if serious else str(rng.choice(terms, p=np.array(weights)))
        onset = randomized + timedelta(days=int(rng.integers(1, follow_up_days + 1)))
        duration = int(rng.integers(1, 15))
        ended = onset + timedelta(days=duration)
        adverse.append(
            PlannedAdverseEvent(
                term=term,
                onset_date=onset,
                end_date=ended if ended <= end else None,
                serious=serious,
                severity="severe" if serious else str(rng.choice(["mild", "moderate"], p=[0.7, 0.3])),
                related=bool(not waitlist and not serious and rng.random() < 0.3),
            )
        )
    return Course(
        assessments=tuple(assessments),
        adverse_events=tuple(sorted(adverse, key=lambda e: e.onset_date)),
        intercurrent=tuple(sorted(intercurrent, key=lambda e: e.on)),
        disposition=disposition,
        app_use=tuple(use),
    )


def last_date(courses: Sequence[Course]) -> date:
    """The last clinical date of the plans (the simulation's 'today' must not precede it)."""
    dates = [a.assessed_on for c in courses for a in c.assessments]
    dates += [c.disposition.on for c in courses if c.disposition]
    return max(dates, default=STUDY_START)
