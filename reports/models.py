"""Stored evidence reports, their signed copies, and the jobs that generate them.

A generated report is a record of the trial: the PDF, its SHA-256, the context it was rendered
from (plain JSON, so a signed copy can be rendered again from exactly the same content) and the
hashes it rests on. It is written once and never changed or deleted (the ORM refuses it here;
database triggers refuse it underneath). Each signature adds a signed copy, also written once.
Reports are made after the database lock, so the lock does not apply to them.

A report job is the state of one generation (queued, running with its step and progress, done or
failed): operational bookkeeping, not trial data, so its progress updates are not audit entries;
the report it produces is.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow
from trials.core.written_once import refuse_changes


class Variant(StrEnum):
    BLINDED = "blinded"  # progress report: pooled data, any time
    FINAL = "final"  # arm-level results: after the plan and database locks and the unblinding


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


def _values(kind: type[StrEnum]) -> str:
    return ", ".join(f"'{v.value}'" for v in kind)


class GeneratedReport(Audited, SQLModel, table=True):
    __tablename__ = "generated_report"
    __table_args__ = (
        CheckConstraint(f"variant IN ({_values(Variant)})", name="variant_known"),
        CheckConstraint("number >= 1", name="number_positive"),
        UniqueConstraint("trial_id", "number"),
    )
    __database_lock_exempt__ = True
    # The PDF and its context are large: their SHA-256 columns are the audited record of them.
    __audit_exclude__ = frozenset({"pdf", "context_json"})

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    number: int = Field(sa_column=Column(Integer, nullable=False))  # 1, 2, ... per trial
    variant: str = Field(sa_type=String(16))
    generated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    generated_by: str = Field(sa_type=String(64))
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    pdf_sha256: str = Field(sa_type=String(64))
    pdf_bytes: int = Field(sa_column=Column(Integer, nullable=False))
    context_json: str = Field(sa_column=Column(Text, nullable=False))
    context_sha256: str = Field(sa_type=String(64))
    results_sha256: str = Field(sa_type=String(64))
    data_snapshot_sha256: str = Field(sa_type=String(64))
    protocol_version: int = Field(sa_column=Column(Integer, nullable=False))
    protocol_sha256: str = Field(sa_type=String(64))


class SignedReportCopy(Audited, SQLModel, table=True):
    """The report rendered again with its signatures on the signature page, after each signature."""

    __tablename__ = "signed_report_copy"
    # One copy per number of signatures: two signers at once cannot store two different ones.
    __table_args__ = (UniqueConstraint("report_id", "signatures"),)
    __database_lock_exempt__ = True
    __audit_exclude__ = frozenset({"pdf"})

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    report_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("generated_report.id"), nullable=False, index=True)
    )
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False))
    signatures: int = Field(sa_column=Column(Integer, nullable=False))
    made_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    pdf: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    pdf_sha256: str = Field(sa_type=String(64))
    pdf_bytes: int = Field(sa_column=Column(Integer, nullable=False))


class ReportJob(SQLModel, table=True):
    __tablename__ = "report_job"
    __table_args__ = (
        CheckConstraint(f"variant IN ({_values(Variant)})", name="variant_known"),
        CheckConstraint(f"status IN ({_values(JobStatus)})", name="status_known"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    variant: str = Field(sa_type=String(16))
    status: str = Field(default=JobStatus.QUEUED.value, sa_type=String(16))
    step: str = Field(default="queued", sa_type=String(200))
    progress: float = Field(default=0.0, sa_column=Column(Float, nullable=False))
    runner: str = Field(sa_type=String(16))  # "inline" or "rq"
    channel: str = Field(sa_type=String(16))  # where it was asked for: web, api, cli
    requested_by: str = Field(sa_type=String(64))
    requested_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    report_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("generated_report.id"), nullable=True)
    )


refuse_changes(
    GeneratedReport,
    SignedReportCopy,
    changed="a generated report and its signed copies cannot be changed",
    deleted="a generated report and its signed copies cannot be deleted",
)
