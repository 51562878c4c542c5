"""The database lock per trial: a lock row while a trial's database is locked.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 14:31:38.664748
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # noqa: F401
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "database_lock",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_database_lock_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_database_lock")),
        sa.UniqueConstraint("trial_id", name=op.f("uq_database_lock_trial_id")),
    )


def downgrade() -> None:
    op.drop_table("database_lock")
