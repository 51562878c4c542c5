"""Participant routes of the JSON API: screening and enrolment.

Reading participants, which shows their randomization, is in `trials.randomization.api`: this
package may not import randomization. A participant just screened or enrolled is not
randomized, so these answers carry no arm.
"""

from typing import Any

from flask import Blueprint, current_app
from pydantic import ConfigDict
from sqlmodel import SQLModel

from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.config import identifier_keys
from trials.core.db import db
from trials.core.db import utctoday as today
from trials.core.validation import IsoDate
from trials.participants import identifiers, reads, services
from trials.participants.models import IdentifiersRead, IdentifiersUpdate, ParticipantRead, ScreeningCreate

bp = Blueprint("participants_api", __name__, url_prefix=API_PREFIX)

# SQLModel validates JSON bodies field by field in python mode, where a strict date refuses its
# ISO string: read it from the string, still a date (see ScreeningCreate.screened_on).
JsonDate = IsoDate  # YYYY-MM-DD only: no timestamp or number is read as a date


class EnrolBody(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    consent_date: JsonDate


@operation(
    bp,
    "/trials/<code>/participants",
    method="POST",
    summary="Screen a participant against the protocol's eligibility rules",
    tag="participants",
    body=ScreeningCreate,
    response=ParticipantRead,
    status=201,
    errors=(401, 403, 404, 409),
)
def screen(code: str, body: ScreeningCreate) -> Any:
    participant = services.screen(code, body, session=db.session, by=require_principal(), today=today())
    return reads.participant_read(participant, session=db.session)


@operation(
    bp,
    "/trials/<code>/participants/<label>/enrol",
    method="POST",
    summary="Enrol an eligible participant on their consent date",
    tag="participants",
    body=EnrolBody,
    response=ParticipantRead,
    errors=(401, 403, 404, 409),
)
def enrol(code: str, label: str, body: EnrolBody) -> Any:
    participant = services.enrol(
        code, label, body.consent_date, session=db.session, by=require_principal(), today=today()
    )
    return reads.participant_read(participant, session=db.session)


def cipher() -> identifiers.IdentifierCipher:
    return identifiers.IdentifierCipher(identifier_keys(current_app.config))


@operation(
    bp,
    "/trials/<code>/participants/<label>/identifiers",
    summary="A participant's direct identifiers (the staff of their site only; each reading is audited)",
    tag="participants",
    response=IdentifiersRead,
    errors=(401, 403, 404, 409),
)
def get_identifiers(code: str, label: str) -> Any:
    return identifiers.get_identifiers(
        code, label, session=db.session, by=require_principal(), cipher=cipher()
    )


@operation(
    bp,
    "/trials/<code>/participants/<label>/identifiers",
    method="PUT",
    summary="Store a participant's direct identifiers, encrypted (their site's staff; changes need a reason)",
    tag="participants",
    body=IdentifiersUpdate,
    response=IdentifiersRead,
    errors=(401, 403, 404, 409, 422),
)
def put_identifiers(code: str, label: str, body: IdentifiersUpdate) -> Any:
    return identifiers.set_identifiers(
        code, label, body, session=db.session, by=require_principal(), cipher=cipher()
    )
