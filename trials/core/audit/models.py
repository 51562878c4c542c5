"""Audit trail tables. Rows are written only by `trials.core.audit.services`; never updated."""

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Column, String, Table, Text
from sqlmodel import Field, SQLModel

from trials.core.db import UTCDateTime, new_id

GENESIS_HASH = "0" * 64


class AuditEntry(SQLModel, table=True):
    """One audited fact: a field's change on a record, or an event such as a sign-in.

    `hash` is SHA-256 over the entry's content and `prev_hash`, the hash of the entry with the
    previous `seq`: changing, deleting or reordering any entry breaks the chain from there on.
    """

    __tablename__ = "audit_entry"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False, unique=True))
    occurred_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))
    user_id: uuid.UUID | None = Field(default=None, index=True)
    username: str = Field(sa_type=String(64))
    printed_name: str = Field(sa_type=String(200))
    role: str | None = Field(default=None, sa_type=String(32))
    channel: str = Field(sa_type=String(16))
    action: str = Field(sa_type=String(32), index=True)
    table_name: str | None = Field(default=None, sa_type=String(64), index=True)
    record_id: str | None = Field(default=None, sa_type=String(64), index=True)
    field: str | None = Field(default=None, sa_type=String(64))
    old_value: str | None = Field(default=None, sa_type=Text)
    new_value: str | None = Field(default=None, sa_type=Text)
    reason: str | None = Field(default=None, sa_type=Text)
    trial_id: uuid.UUID | None = Field(default=None, index=True)
    prev_hash: str = Field(sa_type=String(64))
    hash: str = Field(sa_type=String(64))


class AuditChainHead(SQLModel, table=True):
    """The single row that serializes appends and records the chain's last entry.

    Every append first updates this row, which takes a row lock on PostgreSQL and the write lock
    on SQLite: two transactions can never both extend the chain from the same entry.
    """

    __tablename__ = "audit_chain_head"

    id: int = Field(primary_key=True)
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_hash: str = Field(sa_type=String(64))


# The Core tables, for the audit mechanism's bulk statements.
ENTRY_TABLE: Table = AuditEntry.__table__  # type: ignore[attr-defined]
HEAD_TABLE: Table = AuditChainHead.__table__  # type: ignore[attr-defined]
