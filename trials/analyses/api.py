"""Analysis routes of the JSON API: the trial's unblinding."""

from typing import Any

from flask import Blueprint, Response
from sqlmodel import Session

from protocols.models import ProtocolVersion
from trials.analyses import services, unblinding
from trials.analyses.models import TrialUnblinding, UnblindingBody, UnblindingRead
from trials.core.accounts.auth import require_principal
from trials.core.accounts.permissions import Permission
from trials.core.accounts.services import authorize
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.participants.services import trial_by_code

bp = Blueprint("analyses_api", __name__, url_prefix=API_PREFIX)


def unblinding_read(code: str, record: TrialUnblinding | None, *, session: Session) -> UnblindingRead:
    if record is None:
        return UnblindingRead(trial_code=code, unblinded=False)
    version = session.get(ProtocolVersion, record.protocol_version_id)
    return UnblindingRead(
        trial_code=code,
        unblinded=True,
        unblinded_at=record.unblinded_at,
        unblinded_by=record.unblinded_by,
        reason=record.reason,
        protocol_version=version.version if version else None,
        protocol_sha256=record.protocol_sha256,
        database_locked_at=record.database_locked_at,
    )


@operation(
    bp,
    "/trials/<code>/unblinding",
    summary="Whether the trial is unblinded (arm-level results are released only after it)",
    tag="analyses",
    response=UnblindingRead,
    errors=(401, 403, 404),
)
def get_unblinding(code: str) -> Any:
    trial = trial_by_code(code, session=db.session)
    authorize(require_principal(), Permission.VIEW_TRIAL, session=db.session, trial_id=trial.id)
    return unblinding_read(code, unblinding.unblinding_of(trial.id, session=db.session), session=db.session)


@operation(
    bp,
    "/trials/<code>/unblinding",
    method="POST",
    summary="Unblind the trial (sponsor or unblinded statistician; locked plan and database first)",
    tag="analyses",
    body=UnblindingBody,
    response=UnblindingRead,
    status=201,
    errors=(401, 403, 404, 409, 422),
)
def unblind(code: str, body: UnblindingBody) -> Any:
    record = unblinding.unblind_trial(code, reason=body.reason, session=db.session, by=require_principal())
    return unblinding_read(code, record, session=db.session)


@operation(
    bp,
    "/trials/<code>/results",
    summary="The analysis-results dataset of the locked plan (pooled until the trial is unblinded)",
    tag="analyses",
    errors=(401, 403, 404, 409),
)
def results(code: str) -> Any:
    document = services.analyze(code, session=db.session, by=require_principal())
    return Response(document.to_json(), mimetype="application/json")
