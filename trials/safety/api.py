"""Safety routes of the JSON API: the site's safety events and their follow-up.

Safety events are never hidden by blinding; they carry no arm.
"""

import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint

from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.safety import services
from trials.safety.models import FollowUp, SafetyEventRead

bp = Blueprint("safety_api", __name__, url_prefix=API_PREFIX)


@operation(
    bp,
    "/trials/<code>/safety-events",
    summary="Safety events of a trial (site staff: their site's)",
    tag="safety",
    response=list[SafetyEventRead],
    errors=(401, 403, 404),
)
def list_events(code: str) -> Any:
    now = datetime.now(UTC)
    rows = services.list_events(code, session=db.session, by=require_principal())
    return [services.event_read(e, session=db.session, now=now) for e in rows]


@operation(
    bp,
    "/trials/<code>/safety-events/<uuid:event_id>/follow-up",
    method="POST",
    summary="Record the follow-up of a safety event (a clinician of its site)",
    tag="safety",
    body=FollowUp,
    response=SafetyEventRead,
    errors=(401, 403, 404, 409, 422),
)
def follow_up(code: str, event_id: uuid.UUID, body: FollowUp) -> Any:
    now = datetime.now(UTC)
    safety_event = services.follow_up(
        code, event_id, body, session=db.session, by=require_principal(), now=now
    )
    return services.event_read(safety_event, session=db.session, now=now)
