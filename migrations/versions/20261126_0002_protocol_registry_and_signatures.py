"""Protocol registry (versions, drafts, locks) and electronic signatures.

Reviewed after autogenerate: adds triggers so that a locked protocol version and a signature
cannot be changed or deleted in the database itself.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:58:28.063961
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # noqa: F401
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signature",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("printed_name", sa.String(length=200), nullable=False),
        sa.Column("meaning", sa.String(length=16), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "meaning IN ('review', 'approval', 'authorship')", name=op.f("ck_signature_meaning_known")
        ),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_signature_trial_id_trial")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_signature_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signature")),
    )
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signature_record_id"), ["record_id"], unique=False)

    op.create_table(
        "protocol_version",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("source_format", sa.String(length=4), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column("document_json", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("amendment_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signature_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "(status = 'locked') = (locked_at IS NOT NULL AND signature_id IS NOT NULL)",
            name=op.f("ck_protocol_version_lock_signed"),
        ),
        sa.CheckConstraint("status IN ('draft', 'locked')", name=op.f("ck_protocol_version_status_known")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_protocol_version_version_positive")),
        sa.ForeignKeyConstraint(
            ["signature_id"], ["signature.id"], name=op.f("fk_protocol_version_signature_id_signature")
        ),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_protocol_version_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_protocol_version")),
        sa.UniqueConstraint("trial_id", "version", name=op.f("uq_protocol_version_trial_id_version")),
    )
    with op.batch_alter_table("protocol_version", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_protocol_version_trial_id"), ["trial_id"], unique=False)

    _create_immutability_triggers()


_PG_FUNCTIONS = {
    "protocol_version_locked": "IF OLD.status = 'locked' THEN RAISE EXCEPTION 'protocol version is locked'; END IF;"
    " IF TG_OP = 'DELETE' THEN RETURN OLD; END IF; RETURN NEW;",
    "signature_immutable": "RAISE EXCEPTION 'signatures cannot be changed or deleted';",
}


def _create_immutability_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, body in _PG_FUNCTIONS.items():
            op.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN {body} END; $$ LANGUAGE plpgsql"
            )
        op.execute(
            "CREATE TRIGGER protocol_version_locked BEFORE UPDATE OR DELETE ON protocol_version "
            "FOR EACH ROW EXECUTE FUNCTION protocol_version_locked()"
        )
        op.execute(
            "CREATE TRIGGER signature_immutable BEFORE UPDATE OR DELETE ON signature "
            "FOR EACH ROW EXECUTE FUNCTION signature_immutable()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER protocol_version_locked_{event.lower()} BEFORE {event} ON protocol_version "
                "WHEN OLD.status = 'locked' BEGIN SELECT RAISE(ABORT, 'protocol version is locked'); END"
            )
            op.execute(
                f"CREATE TRIGGER signature_immutable_{event.lower()} BEFORE {event} ON signature "
                "BEGIN SELECT RAISE(ABORT, 'signatures cannot be changed or deleted'); END"
            )


def _drop_immutability_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS protocol_version_locked ON protocol_version")
        op.execute("DROP TRIGGER IF EXISTS signature_immutable ON signature")
        for name in _PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS protocol_version_locked_{event}")
            op.execute(f"DROP TRIGGER IF EXISTS signature_immutable_{event}")


def downgrade() -> None:
    _drop_immutability_triggers()
    with op.batch_alter_table("protocol_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_protocol_version_trial_id"))

    op.drop_table("protocol_version")
    with op.batch_alter_table("signature", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signature_record_id"))

    op.drop_table("signature")
