"""Self-report routes of the JSON API: issue a participant's one-time link (its address is in
this answer only) and list their links."""

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint

from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.epro import services
from trials.epro.models import EproLinkCreate, EproLinkIssued, EproLinkRead
from trials.epro.views import link_url, valid_for

bp = Blueprint("epro_api", __name__, url_prefix=API_PREFIX)


@operation(
    bp,
    "/trials/<code>/participants/<label>/epro-links",
    method="POST",
    summary="Issue a one-time self-report link for a questionnaire due today (its address is shown once)",
    tag="epro",
    body=EproLinkCreate,
    response=EproLinkIssued,
    status=201,
    errors=(401, 403, 404, 409, 422),
)
def issue(code: str, label: str, body: EproLinkCreate) -> Any:
    now = datetime.now(UTC)
    link, token = services.issue(
        code,
        label,
        visit_code=body.visit_code,
        instrument=body.instrument,
        session=db.session,
        by=require_principal(),
        now=now,
        valid_for=valid_for(),
    )
    read = services.link_read(link, label, now)
    return EproLinkIssued(**read.model_dump(), url=link_url(token))


@operation(
    bp,
    "/trials/<code>/participants/<label>/epro-links",
    summary="A participant's self-report links, without their addresses",
    tag="epro",
    response=list[EproLinkRead],
    errors=(401, 403, 404),
)
def list_links(code: str, label: str) -> Any:
    now = datetime.now(UTC)
    participant, links = services.list_links(code, label, session=db.session, by=require_principal())
    return [services.link_read(link, participant.label, now) for link in links]
