"""A randomized participant's visit schedule as dates, and what is done, due or missed."""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from sqlmodel import Session, select

from protocols.document import ProtocolDocument
from trials.assessments.models import Assessment
from trials.participants.models import Participant


class State(StrEnum):
    DONE = "done"  # an assessment is assigned to the visit
    DUE = "due"  # today lies in the visit's window
    MISSED = "missed"  # the window has closed without one
    UPCOMING = "upcoming"  # the window has not opened yet


@dataclass(frozen=True)
class Scheduled:
    """One instrument of one visit."""

    instrument: str
    state: State
    assessment_id: uuid.UUID | None


@dataclass(frozen=True)
class ScheduledVisit:
    code: str
    name: str
    day: int
    target: date
    first: date
    last: date
    instruments: tuple[Scheduled, ...]


def visit_schedule(
    document: ProtocolDocument,
    randomized_on: date,
    done: Mapping[tuple[str, str], uuid.UUID],
    today: date,
) -> list[ScheduledVisit]:
    """The protocol's visits dated from the randomization date; `done` maps (visit code,
    instrument) to the assessment assigned to it."""
    visits = []
    for visit in document.visits:
        first_day, last_day = visit.window
        first = randomized_on + timedelta(days=first_day)
        last = randomized_on + timedelta(days=last_day)
        items = []
        for instrument in visit.instruments:
            assessment_id = done.get((visit.code, instrument))
            if assessment_id is not None:
                state = State.DONE
            elif today > last:
                state = State.MISSED
            elif today >= first:
                state = State.DUE
            else:
                state = State.UPCOMING
            items.append(Scheduled(instrument, state, assessment_id))
        visits.append(
            ScheduledVisit(
                code=visit.code,
                name=visit.name,
                day=visit.day,
                target=randomized_on + timedelta(days=visit.day),
                first=first,
                last=last,
                instruments=tuple(items),
            )
        )
    return visits


def schedule_of(
    participant: Participant,
    document: ProtocolDocument,
    randomized_on: date,
    *,
    session: Session,
    today: date,
) -> list[ScheduledVisit]:
    rows = session.exec(
        select(Assessment.visit_code, Assessment.instrument, Assessment.id).where(
            Assessment.participant_id == participant.id
        )
    ).all()
    return visit_schedule(document, randomized_on, {(v, i): a for v, i, a in rows}, today)


def due(schedule: list[ScheduledVisit]) -> list[tuple[ScheduledVisit, str]]:
    """The (visit, instrument) pairs due today."""
    return [
        (visit, item.instrument)
        for visit in schedule
        for item in visit.instruments
        if item.state == State.DUE
    ]
