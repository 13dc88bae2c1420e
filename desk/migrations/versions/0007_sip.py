"""real phones: hold time per call

Revision ID: 0007_sip
Revises: 0006_console
Create Date: 2026-11-30 01:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_sip"
down_revision: str | None = "0006_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("hold_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("holds", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("holds")
        batch.drop_column("hold_seconds")
