"""Participants (screening, enrolment, label counters) and randomization (allocation list,
slots, stratum counters).

Reviewed after autogenerate.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 13:42:56.451513
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # noqa: F401
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "participant",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.String(length=24), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("screened_on", sa.Date(), nullable=False),
        sa.Column("age_years", sa.Integer(), nullable=False),
        sa.Column("screening_phq9", sa.Integer(), nullable=False),
        sa.Column("eligible", sa.Boolean(), nullable=False),
        sa.Column("screen_failure_reasons", sa.Text(), nullable=True),
        sa.Column("consent_date", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(status = 'enrolled') = (consent_date IS NOT NULL)",
            name=op.f("ck_participant_enrolled_consented"),
        ),
        sa.CheckConstraint(
            "status IN ('screened', 'screen_failed', 'enrolled')", name=op.f("ck_participant_status_known")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_participant_site_id_site")),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_participant_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant")),
        sa.UniqueConstraint("trial_id", "label", name=op.f("uq_participant_trial_id_label")),
    )
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participant_site_id"), ["site_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_participant_trial_id"), ["trial_id"], unique=False)

    op.create_table(
        "participant_counter",
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("site_id", sa.Uuid(), nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["site.id"], name=op.f("fk_participant_counter_site_id_site")),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name=op.f("fk_participant_counter_trial_id_trial")
        ),
        sa.PrimaryKeyConstraint("trial_id", "site_id", name=op.f("pk_participant_counter")),
    )
    op.create_table(
        "allocation_list",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("protocol_version_id", sa.Uuid(), nullable=False),
        sa.Column("seed_sha256", sa.String(length=64), nullable=False),
        sa.Column("list_sha256", sa.String(length=64), nullable=False),
        sa.Column("design", sa.Text(), nullable=False),
        sa.Column("slots_per_stratum", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["protocol_version_id"],
            ["protocol_version.id"],
            name=op.f("fk_allocation_list_protocol_version_id_protocol_version"),
        ),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_allocation_list_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_list")),
        sa.UniqueConstraint("trial_id", name=op.f("uq_allocation_list_trial_id")),
    )
    op.create_table(
        "allocation_slot",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("list_id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("stratum", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("block", sa.Integer(), nullable=False),
        sa.Column("block_size", sa.Integer(), nullable=False),
        sa.Column("arm_code", sa.String(length=20), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=True),
        sa.Column("randomized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("randomized_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["list_id"], ["allocation_list.id"], name=op.f("fk_allocation_slot_list_id_allocation_list")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"], ["participant.id"], name=op.f("fk_allocation_slot_participant_id_participant")
        ),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_allocation_slot_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_slot")),
        sa.UniqueConstraint(
            "list_id", "stratum", "position", name=op.f("uq_allocation_slot_list_id_stratum_position")
        ),
        sa.UniqueConstraint("participant_id", name=op.f("uq_allocation_slot_participant_id")),
    )
    with op.batch_alter_table("allocation_slot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_allocation_slot_list_id"), ["list_id"], unique=False)

    op.create_table(
        "stratum_counter",
        sa.Column("list_id", sa.Uuid(), nullable=False),
        sa.Column("stratum", sa.String(length=64), nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["allocation_list.id"], name=op.f("fk_stratum_counter_list_id_allocation_list")
        ),
        sa.PrimaryKeyConstraint("list_id", "stratum", name=op.f("pk_stratum_counter")),
    )


def downgrade() -> None:
    op.drop_table("stratum_counter")
    with op.batch_alter_table("allocation_slot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_allocation_slot_list_id"))

    op.drop_table("allocation_slot")
    op.drop_table("allocation_list")
    op.drop_table("participant_counter")
    with op.batch_alter_table("participant", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_trial_id"))
        batch_op.drop_index(batch_op.f("ix_participant_site_id"))

    op.drop_table("participant")
