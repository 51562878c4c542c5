"""Participant self-report links (ePRO) and participants' encrypted direct identifiers.

Reviewed after autogenerate: a link stores only its token's SHA-256 (unique), is used at most
once (one assessment per link) and is either used or revoked, never both; identifiers are one
row per participant holding Fernet ciphertexts only.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 15:32:14.883217
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes  # noqa: F401
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "participant_identity",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("full_name_ciphertext", sa.Text(), nullable=True),
        sa.Column("email_ciphertext", sa.Text(), nullable=True),
        sa.Column("phone_ciphertext", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["participant_id"],
            ["participant.id"],
            name=op.f("fk_participant_identity_participant_id_participant"),
        ),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trial.id"], name=op.f("fk_participant_identity_trial_id_trial")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_participant_identity")),
        sa.UniqueConstraint("participant_id", name=op.f("uq_participant_identity_participant_id")),
    )
    with op.batch_alter_table("participant_identity", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_participant_identity_trial_id"), ["trial_id"], unique=False)

    op.create_table(
        "epro_link",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("trial_id", sa.Uuid(), nullable=False),
        sa.Column("participant_id", sa.Uuid(), nullable=False),
        sa.Column("instrument", sa.String(length=8), nullable=False),
        sa.Column("visit_code", sa.String(length=20), nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("assessment_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint(
            "instrument IN ('PHQ-9', 'PHQ-8', 'GAD-7')", name=op.f("ck_epro_link_instrument_known")
        ),
        sa.CheckConstraint(
            "(used_at IS NULL) = (assessment_id IS NULL)", name=op.f("ck_epro_link_used_with_assessment")
        ),
        sa.CheckConstraint(
            "used_at IS NULL OR revoked_at IS NULL", name=op.f("ck_epro_link_used_or_revoked")
        ),
        sa.ForeignKeyConstraint(
            ["assessment_id"], ["assessment.id"], name=op.f("fk_epro_link_assessment_id_assessment")
        ),
        sa.ForeignKeyConstraint(
            ["participant_id"], ["participant.id"], name=op.f("fk_epro_link_participant_id_participant")
        ),
        sa.ForeignKeyConstraint(["trial_id"], ["trial.id"], name=op.f("fk_epro_link_trial_id_trial")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_epro_link")),
        sa.UniqueConstraint("assessment_id", name=op.f("uq_epro_link_assessment_id")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_epro_link_token_sha256")),
    )
    with op.batch_alter_table("epro_link", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_epro_link_participant_id"), ["participant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_epro_link_trial_id"), ["trial_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("epro_link", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_epro_link_trial_id"))
        batch_op.drop_index(batch_op.f("ix_epro_link_participant_id"))

    op.drop_table("epro_link")
    with op.batch_alter_table("participant_identity", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participant_identity_trial_id"))

    op.drop_table("participant_identity")
