"""`trials simulate`: a synthetic trial written through the platform's own services.

Every record goes through the service a coordinator or clinician would use (screening,
enrolment, randomization, assessments with their safety events, follow-ups, adverse events,
disposition and intercurrent events, app use), so the simulation exercises the same
validation, authorization and audit trail. It acts as "simulation", a principal holding the
site roles of every site of the trial (and the sponsor's, to take the trial live), and it is
named so on every audit entry.

Only an empty trial is simulated: a trial that already has participants is refused, so that
synthetic data never mix with real data.
"""

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from trials.assessments import services as assessments
from trials.assessments.models import AssessmentCreate
from trials.core.accounts.models import Role, Site
from trials.core.accounts.permissions import Grant, Principal
from trials.core.audit import services as audit
from trials.core.db import utcnow
from trials.core.errors import Conflict
from trials.engagement import services as engagement
from trials.engagement.models import EngagementSubmit
from trials.events import services as events
from trials.events.models import AdverseEventCreate, DispositionCreate
from trials.participants import services as participants
from trials.participants.models import Participant, ScreeningCreate
from trials.randomization import services as randomization
from trials.randomization.models import AllocationList
from trials.safety import services as safety
from trials.safety.models import FollowUp
from trials.simulate import plan

SIMULATION_USER = "simulation"
# Every this-many-th safety event is left open, awaiting its follow-up (as some are in a real
# trial); the others are followed up by the site's clinician.
OPEN_EVENT_EVERY = 16


@dataclass(frozen=True)
class SimulationReport:
    trial_code: str
    seed: int
    screened: int
    screen_failures: int
    randomized: int
    assessments: int
    safety_events: int
    open_safety_events: int
    adverse_events: int
    intercurrent_events: int
    dispositions: dict[str, int]
    app_use_days: int
    allocation_list_sha256: str
    first_date: str
    last_date: str


def allocation_seed(seed: int) -> bytes:
    """The allocation list's 32-byte seed derived from the simulation seed."""
    return hashlib.sha256(f"trials simulation allocation seed {seed}".encode()).digest()


def simulation_principal(trial_id: uuid.UUID, site_ids: list[uuid.UUID]) -> Principal:
    grants = [Grant(Role.SPONSOR, trial_id)]
    for site_id in site_ids:
        grants += [Grant(Role.COORDINATOR, trial_id, site_id), Grant(Role.CLINICIAN, trial_id, site_id)]
    return Principal(uuid.UUID(int=0), SIMULATION_USER, "Trial simulation", tuple(grants))


def simulate(
    code: str,
    *,
    participants_wanted: int,
    seed: int,
    session: Session,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationReport:
    """Simulate `participants_wanted` randomized participants in trial `code` from `seed`.

    `progress(done, total)` is called after each screened candidate is written.
    """
    trial = participants.trial_by_code(code, session=session)
    _version, document = participants.locked_protocol(trial, session=session)
    if session.exec(select(Participant.id).where(Participant.trial_id == trial.id)).first() is not None:
        raise Conflict(f"trial {code} already has participants: only an empty trial is simulated")
    sites = {
        s.code: s.id
        for s in session.exec(select(Site).where(col(Site.code).in_([x.code for x in document.sites])))
    }
    by = simulation_principal(trial.id, list(sites.values()))
    audit.set_actor(
        session, audit.Actor(None, SIMULATION_USER, f"Trial simulation (seed {seed})", None, "cli")
    )

    allocation = session.exec(select(AllocationList).where(AllocationList.trial_id == trial.id)).first()
    if allocation is None:
        allocation = randomization.go_live(code, session=session, by=by, seed=allocation_seed(seed))

    today = utcnow().date()
    people = plan.candidates(document, participants_wanted, seed)
    courses: list[plan.Course] = []
    counts: dict[str, Any] = {"screen_failures": 0, "assessments": 0, "events": 0, "open": 0}
    for person in people:
        screening = ScreeningCreate.model_validate(
            {
                "site_code": person.site_code,
                "screened_on": person.screened_on,
                "age_years": person.age_years,
                "screening_phq9": person.screening_phq9,
                "inclusion_met": person.inclusion_met,
                "exclusion_present": person.exclusion_present,
            }
        )
        participant = participants.screen(code, screening, session=session, by=by, today=today)
        if not participant.eligible:
            counts["screen_failures"] += 1
            if progress:
                progress(person.index + 1, len(people))
            continue
        label = participant.label
        participants.enrol(code, label, person.consent_date, session=session, by=by, today=today)
        slot = randomization.randomize(code, label, session=session, by=by, at=person.randomized_at)
        arm = str(slot.arm_code)
        course = plan.course(document, person, arm, seed)
        courses.append(course)
        for planned in course.assessments:
            data = AssessmentCreate.model_validate(
                {"instrument": planned.instrument, "assessed_on": planned.assessed_on, "items": planned.items}
            )
            _assessment, events = assessments.submit(code, label, data, session=session, by=by, today=today)
            counts["assessments"] += 1
            for event in events:
                counts["events"] += 1
                if counts["events"] % OPEN_EVENT_EVERY == 0:
                    counts["open"] += 1
                    continue
                follow = FollowUp(
                    risk_assessment_done=True,
                    referral="GP informed; safety plan reviewed with the participant",
                    notes="Risk assessment by telephone the same day",
                )
                safety.follow_up(code, event.id, follow, session=session, by=by, now=utcnow())
        _record_events(code, label, course, session=session, by=by, today=today)
        if progress:
            progress(person.index + 1, len(people))
    session.flush()
    all_dates = [p.screened_on for p in people]
    return SimulationReport(
        trial_code=code,
        seed=seed,
        screened=len(people),
        screen_failures=counts["screen_failures"],
        randomized=len(courses),
        assessments=counts["assessments"],
        safety_events=counts["events"],
        open_safety_events=counts["open"],
        adverse_events=sum(len(c.adverse_events) for c in courses),
        intercurrent_events=sum(len(c.intercurrent) for c in courses),
        dispositions=_count(c.disposition.kind for c in courses if c.disposition),
        app_use_days=sum(len(c.app_use) for c in courses),
        allocation_list_sha256=allocation.list_sha256,
        first_date=min(all_dates, default=plan.STUDY_START).isoformat(),
        last_date=max(plan.last_date(courses), max(all_dates, default=plan.STUDY_START)).isoformat(),
    )


def _record_events(
    code: str, label: str, course: plan.Course, *, session: Session, by: Principal, today: date
) -> None:
    """App use, adverse events, then intercurrent events, then the end of study (an
    intercurrent event may not follow the end of study)."""
    if course.app_use:
        days = [
            {
                "day": u.day.isoformat(),
                "sessions": u.sessions,
                "minutes": u.minutes,
                "modules_completed": u.modules_completed,
            }
            for u in course.app_use
        ]
        engagement.submit_days(
            code, label, EngagementSubmit.model_validate({"days": days}), session=session, by=by, today=today
        )
    for ae in course.adverse_events:
        ended = ae.end_date is not None
        data = AdverseEventCreate.model_validate(
            {
                "term": ae.term,
                "onset_date": ae.onset_date.isoformat(),
                "end_date": ae.end_date.isoformat() if ended and ae.end_date else None,
                "serious": ae.serious,
                "serious_criteria": ["hospitalization"] if ae.serious else [],
                "severity": ae.severity,
                "relatedness": "possible" if ae.related else "not_related",
                "action": "none",
                "outcome": "recovered_resolved" if ended else "recovering_resolving",
            }
        )
        events.record_adverse_event(code, label, data, session=session, by=by, today=today)
    planned = [*course.intercurrent, *([course.disposition] if course.disposition else [])]
    for event in planned:
        body: dict[str, Any] = {
            "kind": event.kind,
            "event_date": event.on.isoformat(),
            "reason": event.reason,
        }
        if event.kind in ("started_other_treatment", "changed_other_treatment"):
            body["other_treatment"] = "antidepressant"
        events.record_disposition(
            code, label, DispositionCreate.model_validate(body), session=session, by=by, today=today
        )


def _count(kinds: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for kind in kinds:
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))
