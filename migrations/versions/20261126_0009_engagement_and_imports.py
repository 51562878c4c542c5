"""Engagement days, CSV import batches, and the batch of an imported assessment.

Reviewed after autogenerate:
- `assessment.import_batch_id` is added with a plain ALTER TABLE on both databases (SQLite takes
  the foreign key inline), never by batch mode: recreating `assessment` on SQLite would drop a
  table that data queries and safety events refer to.
- triggers refuse any change or deletion of an import batch in the database itself (the ORM
  refuses it too, in trials.imports.models).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 15:34:58.681852
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # noqa: F401
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ASSESSMENT_FK = "fk_assessment_import_batch_id_import_batch"


def upgrade() -> None:
    op.create_table(
        "import_batch",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("rows_sha256", sa.String(length=64), nullable=False),
        sa.Column("site_codes", sa.Text(), nullable=False),
        sa.Column("imported_by", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.CheckConstraint("kind IN ('assessments', 'engagement')", name=op.f("ck_import_batch_kind_known")),
        sa.CheckConstraint("row_count > 0", name=op.f("ck_import_batch_row_count_positive")),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_import_batch_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_import_batch")),
        sa.UniqueConstraint("trial_id", "kind", "sha256", name=op.f("uq_import_batch_trial_id_kind_sha256")),
    )
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_import_batch_trial_id"), ["trial_id"], unique=False)

    op.create_table(
        "engagement_day",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("sessions", sa.Integer(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=False),
        sa.Column("modules_completed", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=8), nullable=False),
        sa.Column("import_batch_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(source = 'import') = (import_batch_id IS NOT NULL)",
            name=op.f("ck_engagement_day_import_has_batch"),
        ),
        sa.CheckConstraint("source IN ('api', 'import')", name=op.f("ck_engagement_day_source_known")),
        sa.CheckConstraint("minutes BETWEEN 0 AND 1440", name=op.f("ck_engagement_day_minutes_range")),
        sa.CheckConstraint(
            "modules_completed BETWEEN 0 AND 100", name=op.f("ck_engagement_day_modules_completed_range")
        ),
        sa.CheckConstraint(
            "sessions > 0 OR (minutes = 0 AND modules_completed = 0)",
            name=op.f("ck_engagement_day_use_needs_a_session"),
        ),
        sa.CheckConstraint("sessions BETWEEN 0 AND 1440", name=op.f("ck_engagement_day_sessions_range")),
        sa.ForeignKeyConstraint(
            ["import_batch_id"],
            ["import_batch.id"],
            name=op.f("fk_engagement_day_import_batch_id_import_batch"),
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"], ["participant.id"], name=op.f("fk_engagement_day_participant_id_participant")
        ),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_engagement_day_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_day")),
        sa.UniqueConstraint("participant_id", "day", name=op.f("uq_engagement_day_participant_id_day")),
    )
    with op.batch_alter_table("engagement_day", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_engagement_day_import_batch_id"), ["import_batch_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_engagement_day_participant_id"), ["participant_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_engagement_day_trial_id"), ["trial_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.add_column("assessment", sa.Column("import_batch_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(_ASSESSMENT_FK, "assessment", "import_batch", ["import_batch_id"], ["id"])
    else:
        op.execute(
            "ALTER TABLE assessment ADD COLUMN import_batch_id CHAR(32) "
            f"CONSTRAINT {_ASSESSMENT_FK} REFERENCES import_batch (id)"
        )
    op.create_index(op.f("ix_assessment_import_batch_id"), "assessment", ["import_batch_id"], unique=False)
    _create_immutability_triggers()


_MESSAGE = "import batches cannot be changed or deleted"


def _create_immutability_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION import_batch_immutable() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{_MESSAGE}'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER import_batch_immutable BEFORE UPDATE OR DELETE ON import_batch "
            "FOR EACH ROW EXECUTE FUNCTION import_batch_immutable()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER import_batch_immutable_{event.lower()} BEFORE {event} ON import_batch "
                f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
            )


def _drop_immutability_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS import_batch_immutable ON import_batch")
        op.execute("DROP FUNCTION IF EXISTS import_batch_immutable()")
    else:
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS import_batch_immutable_{event}")


def downgrade() -> None:
    _drop_immutability_triggers()
    op.drop_index(op.f("ix_assessment_import_batch_id"), table_name="assessment")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(_ASSESSMENT_FK, "assessment", type_="foreignkey")
        op.drop_column("assessment", "import_batch_id")
    else:  # SQLite 3.35+ drops a column with its inline foreign key
        op.execute("ALTER TABLE assessment DROP COLUMN import_batch_id")

    with op.batch_alter_table("engagement_day", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_engagement_day_trial_id"))
        batch_op.drop_index(batch_op.f("ix_engagement_day_participant_id"))
        batch_op.drop_index(batch_op.f("ix_engagement_day_import_batch_id"))

    op.drop_table("engagement_day")
    with op.batch_alter_table("import_batch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_import_batch_trial_id"))

    op.drop_table("import_batch")
