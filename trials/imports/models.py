"""Import batches: one per accepted CSV file, keeping the file's bytes. Never changed or deleted.

The rows a batch brought in carry its id (`assessment.import_batch_id`,
`engagement_day.import_batch_id`). A batch cannot be changed or deleted: the ORM refuses it
(below) and database triggers (migration 0009) refuse it underneath.
"""

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Column,
    ForeignKey,
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

KINDS = ("assessments", "engagement")


class ImportBatch(Audited, SQLModel, table=True):
    """An accepted CSV file: who imported it, when, its SHA-256, and the digest of the rows it
    inserted. The same file (same SHA-256) is imported once per trial and kind."""

    __tablename__ = "import_batch"
    __table_args__ = (
        UniqueConstraint("trial_id", "kind", "sha256"),
        CheckConstraint("kind IN ('assessments', 'engagement')", name="kind_known"),
        CheckConstraint("row_count > 0", name="row_count_positive"),
    )
    # The bytes are not copied into the audit trail: their SHA-256 is, which fixes them.
    __audit_exclude__ = frozenset({"content"})

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    trial_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=False, index=True))
    kind: str = Field(sa_type=String(16))
    filename: str = Field(sa_type=String(255))
    sha256: str = Field(sa_type=String(64))
    row_count: int
    # SHA-256 of the canonical content of the inserted rows (`audit.rows_digest`).
    rows_sha256: str = Field(sa_type=String(64))
    # The sites whose participants the file names, comma-separated: site staff see the batches
    # of their sites only.
    site_codes: str = Field(sa_type=Text)
    imported_by: str = Field(sa_type=String(64))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    content: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class ImportBatchRead(SQLModel):
    id: uuid.UUID
    trial_code: str
    kind: str
    filename: str
    sha256: str
    row_count: int
    rows_sha256: str
    site_codes: list[str]
    imported_by: str
    created_at: datetime


class ImportSummary(ImportBatchRead):
    """An accepted import: the batch, and what its rows raised."""

    safety_events: int
    notifications: int
    data_queries: int


refuse_changes(
    ImportBatch,
    changed="import batches cannot be changed or deleted",
    deleted="import batches cannot be changed or deleted",
)
