"""Electronic signature records. Written once, never changed."""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Uuid
from sqlmodel import Field, SQLModel

from trials.core.audit.services import Audited
from trials.core.db import UTCDateTime, new_id, utcnow


class Meaning(StrEnum):
    """What a signature means (DOMAIN.md section 6)."""

    REVIEW = "review"
    APPROVAL = "approval"
    AUTHORSHIP = "authorship"


_MEANINGS = ", ".join(f"'{m.value}'" for m in Meaning)


class Signature(Audited, SQLModel, table=True):
    """A signature: who (printed name), when (UTC), what it means, and the hash of what was signed."""

    __tablename__ = "signature"
    __table_args__ = (
        CheckConstraint(f"meaning IN ({_MEANINGS})", name="meaning_known"),
        # One signature per person and record (a unique index: the table keeps its triggers).
        Index("uq_signature_signer", "table_name", "record_id", "user_id", unique=True),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    user_id: uuid.UUID = Field(sa_column=Column(Uuid, ForeignKey("user_account.id"), nullable=False))
    username: str = Field(sa_type=String(64))
    printed_name: str = Field(sa_type=String(200))
    meaning: str = Field(sa_type=String(16))
    signed_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    table_name: str = Field(sa_type=String(64))
    record_id: str = Field(sa_type=String(64), index=True)
    content_hash: str = Field(sa_type=String(64))
    trial_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("trial.id"), nullable=True)
    )
    # The role the signer signed in (their role in the trial), where the record says whose
    # signature it needs (a report: the statistician's and the sponsor's).
    role: str | None = Field(default=None, sa_type=String(32), nullable=True)

    @property
    def __database_lock_exempt__(self) -> bool:  # type: ignore[override]
        """A report's signature is not the trial's data: reports are signed after the database
        lock. Every other signature (a protocol version's) follows the lock."""
        return self.table_name == "generated_report"

    @property
    def manifestation(self) -> str:
        """The signature as shown wherever the signed record is shown or printed."""
        when = self.signed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{self.printed_name} ({self.username}), {when}, {self.meaning}, sha256 {self.content_hash}"
