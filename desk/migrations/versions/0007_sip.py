"""real phones: hold time per call, call recordings

Revision ID: 0007_sip
Revises: 0010_perf
Create Date: 2026-11-30 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_sip"
down_revision: str | None = "0010_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("hold_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("holds", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("legs", sa.JSON(), nullable=True))
    op.create_table(
        "call_recordings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("call_uniqueid", sa.String(150), nullable=False, index=True),
        sa.Column("linkedid", sa.String(150), nullable=False),
        sa.Column("queue", sa.String(80), nullable=True),
        sa.Column("agent", sa.String(80), nullable=True, index=True),
        sa.Column("incident_number", sa.String(20), nullable=True, index=True),
        sa.Column("file", sa.String(200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by", sa.String(80), nullable=True),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("call_recordings")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("legs")
        batch.drop_column("holds")
        batch.drop_column("hold_seconds")
