"""Report routes of the JSON API: ask for a report (a job), follow it, list, download (the PDF,
its signed copy, results.json, the bundle's manifest.json), sign."""

import uuid
from datetime import datetime
from typing import Any

from flask import Blueprint, current_app, request
from pydantic import ConfigDict
from sqlmodel import Field, SQLModel

from reports import bundle, jobs, services
from reports.downloads import attachment
from reports.models import GeneratedReport, ReportJob
from trials.core.accounts.auth import require_principal
from trials.core.api import API_PREFIX, operation
from trials.core.db import db

bp = Blueprint("reports_api", __name__, url_prefix=API_PREFIX)


class ReportRequest(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    variant: str = Field(max_length=16, description="'blinded' (any time) or 'final' (after the unblinding)")


class SignatureBody(SQLModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # type: ignore[assignment]
    meaning: str = Field(max_length=16, description="review, approval or authorship")
    password: str = Field(max_length=256, description="the signer's password, checked again")


class JobRead(SQLModel):
    id: uuid.UUID
    variant: str
    status: str
    step: str
    progress: float
    runner: str
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None
    error: str | None
    report_number: int | None


class SignatureRead(SQLModel):
    printed_name: str
    username: str
    role: str | None
    meaning: str
    signed_at: datetime
    content_sha256: str


class ReportRead(SQLModel):
    number: int
    variant: str
    generated_at: datetime
    generated_by: str
    pdf_sha256: str
    pdf_bytes: int
    results_sha256: str
    data_snapshot_sha256: str
    protocol_version: int
    protocol_sha256: str
    signatures: list[SignatureRead]
    signed_copy_sha256: str | None


def job_read(job: ReportJob) -> JobRead:
    return JobRead(**services.job_summary(job, session=db.session))


def report_read(report: GeneratedReport) -> ReportRead:
    copy = services.latest_signed_copy(report, session=db.session)
    return ReportRead(
        number=report.number,
        variant=report.variant,
        generated_at=report.generated_at,
        generated_by=report.generated_by,
        pdf_sha256=report.pdf_sha256,
        pdf_bytes=report.pdf_bytes,
        results_sha256=report.results_sha256,
        data_snapshot_sha256=report.data_snapshot_sha256,
        protocol_version=report.protocol_version,
        protocol_sha256=report.protocol_sha256,
        signatures=[
            SignatureRead.model_validate(services.signature_record(s))
            for s in services.signatures_of(report, session=db.session)
        ],
        signed_copy_sha256=copy.pdf_sha256 if copy else None,
    )


@operation(
    bp,
    "/trials/<code>/reports",
    method="POST",
    summary="Generate an evidence report: a background job (blinded any time; final after the unblinding)",
    tag="reports",
    body=ReportRequest,
    response=JobRead,
    status=202,
    errors=(401, 403, 404, 409, 422),
)
def generate(code: str, body: ReportRequest) -> Any:
    job = services.request_report(
        code,
        services.parse_variant(body.variant),
        session=db.session,
        by=require_principal(),
        channel="api",
        runner=jobs.runner_name(),
    )
    db.session.commit()  # the job must exist before a worker looks for it
    jobs.start(job)
    return job_read(db.session.get(ReportJob, job.id, populate_existing=True) or job)


@operation(
    bp,
    "/trials/<code>/report-jobs/<uuid:job_id>",
    summary="A report job's status and progress",
    tag="reports",
    response=JobRead,
    errors=(401, 403, 404),
)
def job(code: str, job_id: uuid.UUID) -> Any:
    return job_read(services.get_job(code, job_id, session=db.session, by=require_principal()))


@operation(
    bp,
    "/trials/<code>/reports",
    summary="The trial's generated reports, newest first, with hashes and signatures",
    tag="reports",
    response=list[ReportRead],
    errors=(401, 403, 404),
)
def reports(code: str) -> Any:
    return [report_read(r) for r in services.list_reports(code, session=db.session, by=require_principal())]


@operation(
    bp,
    "/trials/<code>/reports/<int:number>/pdf",
    summary="Download a generated report (add ?copy=signed for the latest signed copy)",
    tag="reports",
    errors=(401, 403, 404, 409),
    query={"copy": "'signed' for the latest signed copy"},
)
def pdf(code: str, number: int) -> Any:
    report = services.get_report(code, number, session=db.session, by=require_principal())
    data, sha256, name = services.report_file(
        report, signed=request.args.get("copy") == "signed", session=db.session, code=code
    )
    return attachment(data, sha256, name, "application/pdf")


@operation(
    bp,
    "/trials/<code>/reports/<int:number>/results.json",
    summary="Download the analysis-results document a generated report's numbers come from, byte for "
    "byte (refused when it does not match the report's results_sha256)",
    tag="reports",
    errors=(401, 403, 404, 409),
)
def report_results(code: str, number: int) -> Any:
    report = services.get_report(code, number, session=db.session, by=require_principal())
    return attachment(*services.results_file(report, code=code), "application/json")


@operation(
    bp,
    "/trials/<code>/reports/<int:number>/manifest.json",
    summary="Download the evidence bundle's manifest.json of a generated report, as `trials report` "
    "writes it (with the signatures so far)",
    tag="reports",
    errors=(401, 403, 404, 409),
)
def report_manifest(code: str, number: int) -> Any:
    report = services.get_report(code, number, session=db.session, by=require_principal())
    return attachment(*bundle.manifest_file(report, session=db.session, trial_code=code), "application/json")


@operation(
    bp,
    "/trials/<code>/reports/<int:number>/signatures",
    method="POST",
    summary="Sign a generated report (password again; the signature binds the PDF's SHA-256)",
    tag="reports",
    body=SignatureBody,
    response=ReportRead,
    status=201,
    errors=(401, 403, 404, 409, 422),
)
def sign(code: str, number: int, body: SignatureBody) -> Any:
    principal = require_principal()
    signature = services.sign_report(
        code,
        number,
        meaning=body.meaning,
        password=body.password,
        session=db.session,
        by=principal,
        lockout_threshold=current_app.config["LOCKOUT_THRESHOLD"],
    )
    # The signature is committed first; the signed copy renders outside the transaction.
    db.session.commit()
    services.make_signed_copy(uuid.UUID(signature.record_id), username=principal.username, channel="api")
    return report_read(services.get_report(code, number, session=db.session, by=require_principal()))
