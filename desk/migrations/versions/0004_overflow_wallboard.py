"""overflow, on-call roster, back-up alerts, callbacks; overflows and after-call work on calls

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 02:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("overflows", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("acw_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("callback_of", sa.String(150), nullable=True))
    op.create_table(
        "oncall_shifts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("staff_id", sa.Integer(), sa.ForeignKey("staff.id", ondelete="SET NULL")),
        sa.Column("mobile", sa.String(40), nullable=False),
        sa.Column("im_channel", sa.String(40), nullable=False),
        sa.Column("im_handle", sa.String(120), nullable=False),
        sa.Column("queue", sa.String(80)),
        sa.Column("starts_at", TS, nullable=False, index=True),
        sa.Column("ends_at", TS, nullable=False, index=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "backup_alerts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("queue", sa.String(80), nullable=False, index=True),
        sa.Column("raised_at", TS, nullable=False, index=True),
        sa.Column("cleared_at", TS),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("notified", sa.JSON(), nullable=False),
    )
    op.create_table(
        "overflow_offers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uniqueid", sa.String(150), nullable=False, index=True),
        sa.Column("queue", sa.String(80), nullable=False),
        sa.Column("caller_number", sa.String(80), nullable=False),
        sa.Column("caller_name", sa.String(200), nullable=False),
        sa.Column("incident_number", sa.String(20)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("taken_by", sa.String(120)),
        sa.Column("taken_at", TS),
        sa.Column("deliveries", sa.JSON(), nullable=False),
    )
    op.create_table(
        "callback_requests",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("uniqueid", sa.String(150), nullable=False, unique=True),
        sa.Column("queue", sa.String(80), nullable=False),
        sa.Column("number", sa.String(80), nullable=False),
        sa.Column("incident_number", sa.String(20)),
        sa.Column("queued_at", TS, nullable=False, index=True),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("callback_uniqueid", sa.String(150)),
        sa.Column("result", sa.String(40), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    """Revert this revision."""
    for table in ("callback_requests", "overflow_offers", "backup_alerts", "oncall_shifts"):
        op.drop_table(table)
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("callback_of")
        batch.drop_column("acw_seconds")
        batch.drop_column("overflows")
