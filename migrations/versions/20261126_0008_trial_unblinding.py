"""The trial's unblinding: recorded once, never changed or deleted.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 16:06:45
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MESSAGE = "the unblinding of a trial cannot be changed or undone"


def upgrade() -> None:
    op.create_table(
        "trial_unblinding",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("protocol_version_id", sa.Uuid(), nullable=False),
        sa.Column("protocol_sha256", sa.String(length=64), nullable=False),
        sa.Column("database_locked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unblinded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unblinded_by", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["protocol_version_id"],
            ["protocol_version.id"],
            name=op.f("fk_trial_unblinding_protocol_version_id_protocol_version"),
        ),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_trial_unblinding_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trial_unblinding")),
        sa.UniqueConstraint("trial_id", name=op.f("uq_trial_unblinding_trial_id")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION trial_unblinding_final() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{_MESSAGE}'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER trial_unblinding_final BEFORE UPDATE OR DELETE ON trial_unblinding "
            "FOR EACH ROW EXECUTE FUNCTION trial_unblinding_final()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER trial_unblinding_final_{action.lower()} BEFORE {action} ON trial_unblinding "
                f"BEGIN SELECT RAISE(ABORT, '{_MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS trial_unblinding_final ON trial_unblinding")
        op.execute("DROP FUNCTION IF EXISTS trial_unblinding_final()")
    else:
        op.execute("DROP TRIGGER IF EXISTS trial_unblinding_final_update")
        op.execute("DROP TRIGGER IF EXISTS trial_unblinding_final_delete")
    op.drop_table("trial_unblinding")
