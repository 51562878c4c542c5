"""Assessment routes of the JSON API: entry and correction.

The answer carries the derived total (prorated where the analysis plan allows, flagged), the
severity band and the safety events the assessment raised; never an arm.
"""

import uuid
from typing import Any

from flask import Blueprint
from sqlmodel import Session

from analysis.scoring import RULES, prorated_total
from trials.assessments import services
from trials.assessments.models import (
    Assessment,
    AssessmentCorrection,
    AssessmentCreate,
    AssessmentRead,
    DataQueryRead,
)
from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.core.db import utctoday as today
from trials.participants.models import Participant
from trials.safety import services as safety
from trials.safety.models import SafetyEvent

bp = Blueprint("assessments_api", __name__, url_prefix=API_PREFIX)


def assessment_read(assessment: Assessment, events: list[SafetyEvent], *, session: Session) -> AssessmentRead:
    items = assessment.items()
    score = prorated_total(items, RULES[assessment.instrument])
    participant = session.get(Participant, assessment.participant_id)
    if participant is None:  # the foreign key makes this impossible
        raise LookupError(f"assessment {assessment.id} has no participant")
    return AssessmentRead(
        id=assessment.id,
        participant_label=participant.label,
        instrument=assessment.instrument,
        assessed_on=assessment.assessed_on,
        visit_code=assessment.visit_code,
        in_window=assessment.in_window,
        items={str(n): value for n, value in items.items()},
        source=assessment.source,
        entered_by=assessment.entered_by,
        created_at=assessment.created_at,
        total=score.total,
        prorated=score.prorated,
        items_answered=score.items_answered,
        severity=score.severity,
        safety_events=[safety.event_read(e, session=session) for e in events],
        data_queries=[
            DataQueryRead(id=q.id, rule=q.rule, message=q.message, status=q.status)
            for q in services.data_queries_of(assessment, session=session)
        ],
    )


@operation(
    bp,
    "/trials/<code>/participants/<label>/assessments",
    method="POST",
    summary="Enter a PHQ-9, PHQ-8 or GAD-7 for a randomized participant",
    tag="assessments",
    body=AssessmentCreate,
    response=AssessmentRead,
    status=201,
    errors=(401, 403, 404, 409, 422),
)
def submit(code: str, label: str, body: AssessmentCreate) -> Any:
    assessment, events = services.submit(
        code, label, body, session=db.session, by=require_principal(), today=today()
    )
    return assessment_read(assessment, events, session=db.session)


@operation(
    bp,
    "/trials/<code>/assessments/<uuid:assessment_id>/correct",
    method="POST",
    summary="Correct an assessment's items, with a reason (the audit trail keeps the old values)",
    tag="assessments",
    body=AssessmentCorrection,
    response=AssessmentRead,
    errors=(401, 403, 404, 409, 422),
)
def correct(code: str, assessment_id: uuid.UUID, body: AssessmentCorrection) -> Any:
    assessment, _new = services.correct(code, assessment_id, body, session=db.session, by=require_principal())
    events = safety.events_of_assessment(assessment.id, session=db.session)
    return assessment_read(assessment, events, session=db.session)
