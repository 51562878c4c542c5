"""Routes of the JSON API for adverse events, disposition and intercurrent events, and emergency
unblinding.

No answer carries an arm, except the one to the clinician who unblinds a participant.
"""

import uuid
from typing import Annotated, Any, Literal, TypeVar

from flask import Blueprint, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.core.db import utctoday as today
from trials.core.errors import InvalidInput, field_errors
from trials.core.validation import PLAIN_TEXT
from trials.events import services
from trials.events.models import (
    AdverseEventChange,
    AdverseEventCreate,
    AdverseEventRead,
    DispositionChange,
    DispositionCreate,
    DispositionEventRead,
    EmergencyUnblindingRead,
    EmergencyUnblindingResult,
    ReasonBody,
)
from trials.events.terms import DispositionKind

bp = Blueprint("events_api", __name__, url_prefix=API_PREFIX)

_Label = Annotated[str, Field(max_length=24, pattern=PLAIN_TEXT)]


class AdverseEventFilter(BaseModel):
    """Query parameters of the adverse-event listing; unknown ones are refused, not ignored."""

    model_config = ConfigDict(extra="forbid")
    serious: Literal["true", "false"] | None = None
    participant: _Label | None = None


class DispositionFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: DispositionKind | None = None
    participant: _Label | None = None


class UnblindingFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    participant: _Label | None = None


F = TypeVar("F", bound=BaseModel)


def _filter(model: type[F]) -> F:
    try:
        return model.model_validate(dict(request.args.items()))
    except ValidationError as exc:
        raise InvalidInput("the query is not valid", errors=field_errors(exc, whole="query")) from None


# -- adverse events ---------------------------------------------------------------------------------


@operation(
    bp,
    "/trials/<code>/participants/<label>/adverse-events",
    method="POST",
    summary="Record an adverse event (site staff); a serious one notifies the sponsors",
    tag="adverse events",
    body=AdverseEventCreate,
    response=AdverseEventRead,
    status=201,
    errors=(401, 403, 404, 409, 422),
)
def record_adverse_event(code: str, label: str, body: AdverseEventCreate) -> Any:
    ae = services.record_adverse_event(
        code, label, body, session=db.session, by=require_principal(), today=today()
    )
    return services.adverse_event_read(ae, session=db.session)


@operation(
    bp,
    "/trials/<code>/participants/<label>/adverse-events",
    summary="A participant's adverse events, serious ones first",
    tag="adverse events",
    response=list[AdverseEventRead],
    errors=(401, 403, 404),
)
def participant_adverse_events(code: str, label: str) -> Any:
    rows = services.list_adverse_events(code, session=db.session, by=require_principal(), label=label)
    return services.adverse_event_reads(rows, session=db.session)


@operation(
    bp,
    "/trials/<code>/adverse-events",
    summary="Adverse events of a trial, serious ones first (site staff: their site's)",
    tag="adverse events",
    response=list[AdverseEventRead],
    errors=(401, 403, 404, 422),
    query={"serious": "true or false: only serious or only non-serious events", "participant": "a label"},
)
def list_adverse_events(code: str) -> Any:
    args = _filter(AdverseEventFilter)
    rows = services.list_adverse_events(
        code,
        session=db.session,
        by=require_principal(),
        label=args.participant,
        serious=None if args.serious is None else args.serious == "true",
    )
    return services.adverse_event_reads(rows, session=db.session)


@operation(
    bp,
    "/trials/<code>/adverse-events/<uuid:event_id>",
    summary="One adverse event",
    tag="adverse events",
    response=AdverseEventRead,
    errors=(401, 403, 404),
)
def get_adverse_event(code: str, event_id: uuid.UUID) -> Any:
    ae = services.get_adverse_event(code, event_id, session=db.session, by=require_principal())
    return services.adverse_event_read(ae, session=db.session)


@operation(
    bp,
    "/trials/<code>/adverse-events/<uuid:event_id>/change",
    method="POST",
    summary="Change an adverse event with a reason; the audit trail keeps the old values",
    tag="adverse events",
    body=AdverseEventChange,
    response=AdverseEventRead,
    errors=(401, 403, 404, 409, 422),
)
def change_adverse_event(code: str, event_id: uuid.UUID, body: AdverseEventChange) -> Any:
    ae = services.change_adverse_event(
        code, event_id, body, session=db.session, by=require_principal(), today=today()
    )
    return services.adverse_event_read(ae, session=db.session)


# -- disposition and intercurrent events --------------------------------------------------------------


@operation(
    bp,
    "/trials/<code>/participants/<label>/disposition-events",
    method="POST",
    summary="Record an end of study (withdrawal, lost to follow-up, completed) or an intercurrent event",
    tag="disposition",
    body=DispositionCreate,
    response=DispositionEventRead,
    status=201,
    errors=(401, 403, 404, 409, 422),
)
def record_disposition(code: str, label: str, body: DispositionCreate) -> Any:
    event = services.record_disposition(
        code, label, body, session=db.session, by=require_principal(), today=today()
    )
    return services.disposition_read(event, session=db.session)


@operation(
    bp,
    "/trials/<code>/participants/<label>/disposition-events",
    summary="A participant's disposition and intercurrent events, by date",
    tag="disposition",
    response=list[DispositionEventRead],
    errors=(401, 403, 404),
)
def participant_dispositions(code: str, label: str) -> Any:
    rows = services.list_dispositions(code, session=db.session, by=require_principal(), label=label)
    return services.disposition_reads(rows, session=db.session)


@operation(
    bp,
    "/trials/<code>/disposition-events",
    summary="Disposition and intercurrent events of a trial, by date (site staff: their site's)",
    tag="disposition",
    response=list[DispositionEventRead],
    errors=(401, 403, 404, 422),
    query={"kind": "only events of this kind", "participant": "a label"},
)
def list_dispositions(code: str) -> Any:
    args = _filter(DispositionFilter)
    rows = services.list_dispositions(
        code, session=db.session, by=require_principal(), label=args.participant, kind=args.kind
    )
    return services.disposition_reads(rows, session=db.session)


@operation(
    bp,
    "/trials/<code>/disposition-events/<uuid:event_id>/change",
    method="POST",
    summary="Change a disposition or intercurrent event with a reason; the audit trail keeps the old values",
    tag="disposition",
    body=DispositionChange,
    response=DispositionEventRead,
    errors=(401, 403, 404, 409, 422),
)
def change_disposition(code: str, event_id: uuid.UUID, body: DispositionChange) -> Any:
    event = services.change_disposition(
        code, event_id, body, session=db.session, by=require_principal(), today=today()
    )
    return services.disposition_read(event, session=db.session)


@operation(
    bp,
    "/trials/<code>/disposition-events/<uuid:event_id>/retract",
    method="POST",
    summary="Retract a disposition or intercurrent event with a reason (e.g. lost to follow-up, found again)",
    tag="disposition",
    body=ReasonBody,
    response=DispositionEventRead,
    errors=(401, 403, 404, 409, 422),
)
def retract_disposition(code: str, event_id: uuid.UUID, body: ReasonBody) -> Any:
    event = services.retract_disposition(code, event_id, body, session=db.session, by=require_principal())
    return services.disposition_read(event, session=db.session)


# -- emergency unblinding ---------------------------------------------------------------------------


@operation(
    bp,
    "/trials/<code>/participants/<label>/emergency-unblinding",
    method="POST",
    summary="Reveal a participant's arm in an emergency (a clinician of their site), with a reason",
    tag="emergency unblinding",
    body=ReasonBody,
    response=EmergencyUnblindingResult,
    status=201,
    errors=(401, 403, 404, 409, 422),
)
def emergency_unblinding(code: str, label: str, body: ReasonBody) -> Any:
    record, arm = services.unblind(code, label, body, session=db.session, by=require_principal())
    read = services.unblinding_read(record, session=db.session)
    return EmergencyUnblindingResult(**read.model_dump(), arm_code=arm.code, arm_name=arm.name)


@operation(
    bp,
    "/trials/<code>/participants/<label>/emergency-unblindings",
    summary="A participant's emergency unblindings: who, when and why (never the arm)",
    tag="emergency unblinding",
    response=list[EmergencyUnblindingRead],
    errors=(401, 403, 404),
)
def participant_unblindings(code: str, label: str) -> Any:
    rows = services.list_unblindings(code, session=db.session, by=require_principal(), label=label)
    return services.unblinding_reads(rows, session=db.session)


@operation(
    bp,
    "/trials/<code>/emergency-unblindings",
    summary="Emergency unblindings of a trial: who, when and why, never the arm (site staff: their site's)",
    tag="emergency unblinding",
    response=list[EmergencyUnblindingRead],
    errors=(401, 403, 404, 422),
    query={"participant": "a label"},
)
def list_unblindings(code: str) -> Any:
    args = _filter(UnblindingFilter)
    rows = services.list_unblindings(code, session=db.session, by=require_principal(), label=args.participant)
    return services.unblinding_reads(rows, session=db.session)
