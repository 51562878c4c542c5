"""What the trial dashboard shows, read with one query per table and scoped like the lists.

Site staff see their site's participants, visits, data queries and safety events. Counts by arm
are read only for those who may see the allocation (`Permission.VIEW_ALLOCATION` and a role
the protocol does not blind); for everyone else `Dashboard.arms` is None and no arm code or
name reaches the page.
"""

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime

from sqlmodel import Session, col, select

from protocols.document import ProtocolDocument
from trials.analyses.unblinding import unblinding_of
from trials.assessments.models import Assessment, DataQuery
from trials.assessments.schedule import State, visit_schedule
from trials.core.accounts.models import Site, Trial
from trials.core.accounts.permissions import Principal
from trials.core.errors import Conflict
from trials.dblock.services import current_lock
from trials.participants.models import Status
from trials.participants.services import (
    list_participants,
    locked_protocol,
    trial_by_code,
    visible_site_ids,
)
from trials.randomization.reads import participant_reads
from trials.randomization.services import allocation_visible
from trials.safety import services as safety
from trials.safety.models import EventStatus

OVERDUE_LISTED = 50


@dataclass(frozen=True)
class SiteCounts:
    site_code: str
    screened: int
    enrolled: int
    randomized: int


@dataclass(frozen=True)
class EnrolmentPoint:
    """Participants enrolled (consented) by the end of `month` at each site, cumulative."""

    month: str  # YYYY-MM
    by_site: tuple[int, ...]


@dataclass(frozen=True)
class VisitCompleteness:
    """One visit's questionnaires across randomized participants: `expected` counts those whose
    window has opened (done + due + missed)."""

    code: str
    name: str
    day: int
    expected: int
    done: int
    due: int
    missed: int

    @property
    def percent(self) -> int | None:
        return round(100 * self.done / self.expected) if self.expected else None


@dataclass(frozen=True)
class OverdueVisit:
    participant_label: str
    site_code: str
    visit_code: str
    instrument: str
    window_closed: date


@dataclass(frozen=True)
class ArmCount:
    code: str
    name: str
    randomized: int


@dataclass(frozen=True)
class Dashboard:
    trial: Trial
    today: date
    sites: tuple[str, ...]
    site_counts: tuple[SiteCounts, ...]
    enrolment: tuple[EnrolmentPoint, ...]
    randomized: int
    arms: tuple[ArmCount, ...] | None  # None: the reader may not see the allocation
    completeness: tuple[VisitCompleteness, ...]
    overdue_visits: int
    overdue_listed: tuple[OverdueVisit, ...]
    open_queries: int
    open_safety_events: int
    overdue_safety_events: int
    locked_at: datetime | None
    unblinded_at: datetime | None


def _month(value: date) -> str:
    return f"{value.year:04d}-{value.month:02d}"


def _months(first: date, last: date) -> list[str]:
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def arms_visible(by: Principal, trial: Trial, document: ProtocolDocument) -> bool:
    """Arm detail: by the same rule as the arm column of the participant list (a role in the
    trial that the protocol does not blind), so that neither page shows what the other hides."""
    return allocation_visible(by, trial.id, document)


def dashboard(code: str, *, session: Session, by: Principal, today: date, now: datetime) -> Dashboard | None:
    """Trial CODE's dashboard as `by` may see it (authorized as the participant list is); None
    while the trial has no locked protocol (nothing is conducted before it)."""
    participants = list_participants(code, session=session, by=by)  # VIEW_TRIAL, site-scoped
    trial = trial_by_code(code, session=session)
    try:
        _version, document = locked_protocol(trial, session=session)
    except Conflict:
        return None
    reads = participant_reads(participants, session=session, by=by)
    show_arms = arms_visible(by, trial, document)
    visible_ids = {p.id for p in participants}

    # Sites: the protocol's order, narrowed to the reader's own for site staff.
    scope = visible_site_ids(by, trial.id)
    allowed = (
        None if scope is None else set(session.exec(select(Site.code).where(col(Site.id).in_(scope))).all())
    )
    sites = tuple(s.code for s in document.sites if allowed is None or s.code in allowed)

    screened = Counter(r.site_code for r in reads)
    enrolled = Counter(r.site_code for r in reads if r.status == Status.ENROLLED.value)
    randomized = Counter(r.site_code for r in reads if r.randomized_at is not None)
    site_counts = tuple(SiteCounts(s, screened[s], enrolled[s], randomized[s]) for s in sites)

    consents = [(r.consent_date, r.site_code) for r in reads if r.consent_date is not None]
    enrolment: list[EnrolmentPoint] = []
    if consents:
        by_month: Counter[tuple[str, str]] = Counter((_month(d), s) for d, s in consents)
        running = dict.fromkeys(sites, 0)
        for month in _months(min(d for d, _ in consents), max(today, max(d for d, _ in consents))):
            for s in sites:
                running[s] += by_month[(month, s)]
            enrolment.append(EnrolmentPoint(month, tuple(running[s] for s in sites)))

    arms = None
    if show_arms:
        per_arm = Counter(r.arm_code for r in reads if r.randomized_at is not None and r.arm_code)
        arms = tuple(ArmCount(a.code, a.name, per_arm[a.code]) for a in document.arms)

    # Visits: one query for the trial's assessments, then each randomized participant's schedule.
    done: dict[uuid.UUID, dict[tuple[str, str], uuid.UUID]] = {}
    for participant_id, visit_code, instrument, assessment_id in session.exec(
        select(Assessment.participant_id, Assessment.visit_code, Assessment.instrument, Assessment.id).where(
            Assessment.trial_id == trial.id
        )
    ).all():
        if participant_id in visible_ids:
            done.setdefault(participant_id, {})[(visit_code, instrument)] = assessment_id
    tallies = {v.code: Counter[State]() for v in document.visits}
    overdue: list[OverdueVisit] = []
    for participant, read in zip(participants, reads, strict=True):
        if read.randomized_at is None:
            continue
        for visit in visit_schedule(document, read.randomized_at.date(), done.get(participant.id, {}), today):
            for item in visit.instruments:
                tallies[visit.code][item.state] += 1
                if item.state == State.MISSED:
                    overdue.append(
                        OverdueVisit(read.label, read.site_code, visit.code, item.instrument, visit.last)
                    )
    completeness = tuple(
        VisitCompleteness(
            code=v.code,
            name=v.name,
            day=v.day,
            expected=sum(n for state, n in tallies[v.code].items() if state != State.UPCOMING),
            done=tallies[v.code][State.DONE],
            due=tallies[v.code][State.DUE],
            missed=tallies[v.code][State.MISSED],
        )
        for v in document.visits
    )
    overdue.sort(key=lambda o: (o.window_closed, o.participant_label, o.visit_code))

    open_queries = sum(
        1
        for participant_id in session.exec(
            select(DataQuery.participant_id).where(
                DataQuery.trial_id == trial.id, col(DataQuery.status) == "open"
            )
        ).all()
        if participant_id in visible_ids
    )
    events = safety.list_events(code, session=session, by=by)  # site-scoped like the list
    open_events = [e for e in events if e.status == EventStatus.OPEN.value]
    lock = current_lock(trial.id, session=session)
    unblinding = unblinding_of(trial.id, session=session)
    return Dashboard(
        trial=trial,
        today=today,
        sites=sites,
        site_counts=site_counts,
        enrolment=tuple(enrolment),
        randomized=sum(randomized.values()),
        arms=arms,
        completeness=completeness,
        overdue_visits=len(overdue),
        overdue_listed=tuple(overdue[:OVERDUE_LISTED]),
        open_queries=open_queries,
        open_safety_events=len(open_events),
        overdue_safety_events=sum(1 for e in open_events if e.due_at < now),
        locked_at=lock.locked_at if lock else None,
        unblinded_at=unblinding.unblinded_at if unblinding else None,
    )
