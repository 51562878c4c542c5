"""Randomization routes of the JSON API, and reading participants with their randomization.

An arm appears in an answer only for those the protocol does not blind; the allocation list
only for them too.
"""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response
from pydantic import ConfigDict, Field
from sqlmodel import SQLModel

from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.participants import services as participants
from trials.participants.models import ParticipantRead
from trials.randomization import reads, services

bp = Blueprint("randomization_api", __name__, url_prefix=API_PREFIX)


class GoLiveBody(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    slots_per_stratum: int = Field(default=300, ge=1, le=100_000)


@operation(
    bp,
    "/trials/<code>/participants",
    summary="Participants of a trial (site staff: their site's)",
    tag="participants",
    response=list[ParticipantRead],
    errors=(401, 403, 404),
)
def list_participants(code: str) -> Any:
    principal = require_principal()
    rows = participants.list_participants(code, session=db.session, by=principal)
    return reads.participant_reads(rows, session=db.session, by=principal)


@operation(
    bp,
    "/trials/<code>/participants/<label>",
    summary="One participant",
    tag="participants",
    response=ParticipantRead,
    errors=(401, 403, 404),
)
def get_participant(code: str, label: str) -> Any:
    principal = require_principal()
    participant = participants.get_participant(code, label, session=db.session, by=principal)
    return reads.participant_read(participant, session=db.session, by=principal)


@operation(
    bp,
    "/trials/<code>/participants/<label>/randomize",
    method="POST",
    summary="Randomize an enrolled participant: the next slot of their stratum",
    tag="randomization",
    response=ParticipantRead,
    errors=(401, 403, 404, 409),
)
def randomize(code: str, label: str) -> Any:
    principal = require_principal()
    services.randomize(code, label, session=db.session, by=principal)
    participant = participants.get_participant(code, label, session=db.session, by=principal)
    return reads.participant_read(participant, session=db.session, by=principal)


@operation(
    bp,
    "/trials/<code>/go-live",
    method="POST",
    summary="Generate the allocation list from the locked protocol: the trial goes live",
    tag="randomization",
    body=GoLiveBody,
    response=reads.AllocationSummary,
    status=201,
    errors=(401, 403, 404, 409),
)
def go_live(code: str, body: GoLiveBody) -> Any:
    allocation = services.go_live(
        code, session=db.session, by=require_principal(), slots_per_stratum=body.slots_per_stratum
    )
    return reads.allocation_summary(allocation, session=db.session)


def _listing(code: str) -> reads.AllocationListRead:
    allocation, slots = services.allocation_list(code, session=db.session, by=require_principal())
    return reads.allocation_list_read(allocation, slots, session=db.session)


@operation(
    bp,
    "/trials/<code>/allocation-list",
    summary="The allocation list with its arms (unblinded roles only)",
    tag="randomization",
    response=reads.AllocationListRead,
    errors=(401, 403, 404, 409),
)
def allocation_list(code: str) -> Any:
    return _listing(code)


@operation(
    bp,
    "/trials/<code>/allocation-list.csv",
    summary="The allocation list as a CSV download (unblinded roles only)",
    tag="randomization",
    errors=(401, 403, 404, 409),
)
def allocation_list_csv(code: str) -> Any:
    listing = _listing(code)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        reads.allocation_csv(listing),
        mimetype="text/csv",
        headers={
            "Content-Disposition": f'attachment; filename="allocation-{listing.trial_code}-{stamp}.csv"'
        },
    )
