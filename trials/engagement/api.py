"""Engagement routes of the JSON API: a participant's days of app use, entered and read."""

from typing import Any

from flask import Blueprint

from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.core.db import utctoday as today
from trials.engagement import services
from trials.engagement.models import EngagementRead, EngagementSubmit

bp = Blueprint("engagement_api", __name__, url_prefix=API_PREFIX)


@operation(
    bp,
    "/trials/<code>/participants/<label>/engagement",
    method="POST",
    summary="Enter a randomized participant's days of app use, all or nothing (corrections need a reason)",
    tag="engagement",
    body=EngagementSubmit,
    response=EngagementRead,
    errors=(401, 403, 404, 409, 422),
)
def enter_engagement(code: str, label: str, body: EngagementSubmit) -> Any:
    principal = require_principal()
    services.submit_days(code, label, body, session=db.session, by=principal, today=today())
    participant, days = services.list_days(code, label, session=db.session, by=principal)
    return services.engagement_read(participant, days)


@operation(
    bp,
    "/trials/<code>/participants/<label>/engagement",
    summary="A participant's days of app use, with totals",
    tag="engagement",
    response=EngagementRead,
    errors=(401, 403, 404),
)
def engagement_days(code: str, label: str) -> Any:
    participant, rows = services.list_days(code, label, session=db.session, by=require_principal())
    return services.engagement_read(participant, rows)
