"""call journal

Revision ID: 0001
Revises:
Create Date: 2026-11-25 20:15:48.745042
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uniqueid", sa.String(length=150), nullable=False),
        sa.Column("linkedid", sa.String(length=150), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("caller_number", sa.String(length=80), nullable=False),
        sa.Column("caller_name", sa.String(length=200), nullable=False),
        sa.Column("dialled_number", sa.String(length=80), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ivr_entered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ivr_left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("talk_ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("queue", sa.String(length=80), nullable=True),
        sa.Column("agent", sa.String(length=80), nullable=True),
        sa.Column("offers", sa.JSON(), nullable=False),
        sa.Column("ring_no_answer", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("queue_status", sa.String(length=20), nullable=True),
        sa.Column("complete_reason", sa.String(length=20), nullable=True),
        sa.Column("hangup_cause", sa.Integer(), nullable=True),
        sa.Column("wait_seconds", sa.Float(), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("incident_number", sa.String(length=20), nullable=True),
        sa.Column("source", sa.String(length=12), nullable=False),
        sa.Column("inferred", sa.JSON(), nullable=False),
        sa.Column("live_state", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("uniqueid"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calls_agent"), ["agent"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_arrived_at"), ["arrived_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_ended_at"), ["ended_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_calls_incident_number"), ["incident_number"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_calls_linkedid"), ["linkedid"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_outcome"), ["outcome"], unique=False)
        batch_op.create_index(batch_op.f("ix_calls_queue"), ["queue"], unique=False)

    op.create_table(
        "journal_meta",
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "link_outages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("reconciled_calls", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("link_outages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_link_outages_started_at"), ["started_at"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("link_outages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_outages_started_at"))

    op.drop_table("link_outages")
    op.drop_table("journal_meta")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calls_queue"))
        batch_op.drop_index(batch_op.f("ix_calls_outcome"))
        batch_op.drop_index(batch_op.f("ix_calls_linkedid"))
        batch_op.drop_index(batch_op.f("ix_calls_incident_number"))
        batch_op.drop_index(batch_op.f("ix_calls_ended_at"))
        batch_op.drop_index(batch_op.f("ix_calls_arrived_at"))
        batch_op.drop_index(batch_op.f("ix_calls_agent"))

    op.drop_table("calls")
