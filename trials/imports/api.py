"""CSV import routes of the JSON API: import a file, the trial's import history, templates."""

from typing import Any

from flask import Blueprint, Response, request

from trials.core.accounts.auth import require_principal
from trials.core.accounts.permissions import Permission
from trials.core.accounts.services import authorize
from trials.core.api import API_PREFIX, operation
from trials.core.db import db
from trials.core.db import utctoday as today
from trials.core.errors import InvalidInput
from trials.imports import services
from trials.imports.models import ImportBatchRead, ImportSummary
from trials.participants.services import trial_by_code

bp = Blueprint("imports_api", __name__, url_prefix=API_PREFIX)

_CSV_BODY = {
    "text/csv": {"schema": {"type": "string", "description": "The CSV file (UTF-8), header first"}},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary", "description": "The CSV file"}},
        }
    },
}


def uploaded(kind: str) -> tuple[bytes, str]:
    """The CSV's bytes and file name: a `text/csv` body (name from `?filename=`) or the
    multipart field `file`."""
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise InvalidInput.field(
                "file", "required", "file: send the CSV file in the multipart field `file`"
            )
        return upload.read(), upload.filename or f"{kind}.csv"
    if request.mimetype == "text/csv":
        return request.get_data(cache=False), request.args.get("filename") or f"{kind}.csv"
    raise InvalidInput.field(
        "body", "media_type", "body: send the CSV as text/csv, or as the multipart/form-data field `file`"
    )


@operation(
    bp,
    "/trials/<code>/imports/<kind>",
    method="POST",
    summary="Import a CSV file of assessments or engagement days, all or nothing",
    tag="imports",
    response=ImportSummary,
    status=201,
    errors=(401, 403, 404, 409, 413, 422),
    query={"filename": "the file's name, recorded with the batch (text/csv bodies)"},
    request_content=_CSV_BODY,
)
def import_csv_file(code: str, kind: str) -> Any:
    principal = require_principal()
    content, filename = uploaded(kind)
    return services.import_csv(
        code, kind, content, filename=filename, session=db.session, by=principal, today=today()
    )


@operation(
    bp,
    "/trials/<code>/imports",
    summary="The trial's import batches, newest first (site staff: their sites')",
    tag="imports",
    response=list[ImportBatchRead],
    errors=(401, 403, 404),
)
def import_history(code: str) -> Any:
    return services.list_batches(code, session=db.session, by=require_principal())


@operation(
    bp,
    "/trials/<code>/imports/templates/<kind>.csv",
    summary="The header-only CSV template of a kind of import",
    tag="imports",
    errors=(401, 403, 404, 422),
)
def import_template(code: str, kind: str) -> Any:
    trial = trial_by_code(code, session=db.session)
    authorize(require_principal(), Permission.VIEW_TRIAL, session=db.session, trial_id=trial.id)
    return Response(
        services.template_csv(kind),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{kind}-template.csv"'},
    )
