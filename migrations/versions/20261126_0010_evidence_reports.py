"""Evidence reports and their signed copies (written once, never changed or deleted), and report jobs.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 18:32:46
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

_WRITTEN_ONCE = {
    "generated_report": "a generated report cannot be changed or deleted",
    "signed_report_copy": "a signed copy of a report cannot be changed or deleted",
}


revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE (SQLite >= 3.35 too), not a batch copy: the signature table keeps its triggers.
    op.add_column("signature", sa.Column("role", sa.String(length=32), nullable=True))
    op.create_index("uq_signature_signer", "signature", ["table_name", "record_id", "user_id"], unique=True)
    op.create_table(
        "generated_report",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("generated_by", sa.String(length=64), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=False),
        sa.Column("pdf_bytes", sa.Integer(), nullable=False),
        sa.Column("context_json", sa.Text(), nullable=False),
        sa.Column("context_sha256", sa.String(length=64), nullable=False),
        sa.Column("results_sha256", sa.String(length=64), nullable=False),
        sa.Column("data_snapshot_sha256", sa.String(length=64), nullable=False),
        sa.Column("protocol_version", sa.Integer(), nullable=False),
        sa.Column("protocol_sha256", sa.String(length=64), nullable=False),
        sa.CheckConstraint("variant IN ('blinded', 'final')", name=op.f("ck_generated_report_variant_known")),
        sa.CheckConstraint("number >= 1", name=op.f("ck_generated_report_number_positive")),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_generated_report_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_generated_report")),
        sa.UniqueConstraint("trial_id", "number", name=op.f("uq_generated_report_trial_id_number")),
    )
    with op.batch_alter_table("generated_report", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generated_report_trial_id"), ["trial_id"], unique=False)

    op.create_table(
        "report_job",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("variant", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=200), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("runner", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("requested_by", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("report_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name=op.f("ck_report_job_status_known")
        ),
        sa.CheckConstraint("variant IN ('blinded', 'final')", name=op.f("ck_report_job_variant_known")),
        sa.ForeignKeyConstraint(
            ["report_id"], ["generated_report.id"], name=op.f("fk_report_job_report_id_generated_report")
        ),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_report_job_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_job")),
    )
    with op.batch_alter_table("report_job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_report_job_trial_id"), ["trial_id"], unique=False)

    op.create_table(
        "signed_report_copy",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("signatures", sa.Integer(), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pdf", sa.LargeBinary(), nullable=False),
        sa.Column("pdf_sha256", sa.String(length=64), nullable=False),
        sa.Column("pdf_bytes", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"],
            ["generated_report.id"],
            name=op.f("fk_signed_report_copy_report_id_generated_report"),
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name=op.f("fk_signed_report_copy_trial_id_trial")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signed_report_copy")),
        sa.UniqueConstraint(
            "report_id", "signatures", name=op.f("uq_signed_report_copy_report_id_signatures")
        ),
    )
    with op.batch_alter_table("signed_report_copy", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_signed_report_copy_report_id"), ["report_id"], unique=False)

    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, message in _WRITTEN_ONCE.items():
        if postgresql:
            op.execute(
                f"CREATE FUNCTION {table}_written_once() RETURNS trigger AS $$ "
                f"BEGIN RAISE EXCEPTION '{message}'; END; $$ LANGUAGE plpgsql"
            )
            op.execute(
                f"CREATE TRIGGER {table}_written_once BEFORE UPDATE OR DELETE ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_written_once()"
            )
        else:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_written_once_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
                )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table in _WRITTEN_ONCE:
        if postgresql:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_written_once ON {table}")
            op.execute(f"DROP FUNCTION IF EXISTS {table}_written_once()")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_written_once_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_written_once_delete")
    with op.batch_alter_table("signed_report_copy", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_signed_report_copy_report_id"))

    op.drop_table("signed_report_copy")
    with op.batch_alter_table("report_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_report_job_trial_id"))

    op.drop_table("report_job")
    with op.batch_alter_table("generated_report", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generated_report_trial_id"))

    op.drop_table("generated_report")
    op.drop_index("uq_signature_signer", table_name="signature")
    op.drop_column("signature", "role")
