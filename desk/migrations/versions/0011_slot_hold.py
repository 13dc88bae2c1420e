"""the half-hour table of report figures keeps the hold time too

Revision ID: 0011_slot_hold
Revises: 0007_sip
Create Date: 2026-11-30 02:25:00

Hold (0007_sip) became one of the additive call figures after the half-hour table (0010_perf)
was made: the table gets its column, and every half-hour is marked stale so the scheduler (or the
next report) computes it again from `calls`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_slot_hold"
down_revision: str | None = "0007_sip"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.add_column(
        "call_slot_figures", sa.Column("hold", sa.Float(), nullable=False, server_default="0")
    )
    op.execute("UPDATE call_slots SET computed_version = -1")


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("call_slot_figures") as batch:
        batch.drop_column("hold")
    op.execute("UPDATE call_slots SET computed_version = -1")
