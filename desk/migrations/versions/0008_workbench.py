"""the incident workbench: SLA due times and first response, the service and the account an
incident is about, duplicates merged into another, parent/child for an outage

Revision ID: 0008_workbench
Revises: 0009_mail
Create Date: 2026-11-30 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_workbench"
down_revision: str | None = "0009_mail"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("service", sa.String(120), nullable=True))
        batch.add_column(sa.Column("account", sa.String(120), nullable=True))
        batch.add_column(sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("response_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("resolve_due_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("sla_warned", sa.String(40), nullable=False, server_default=""))
        batch.add_column(sa.Column("parent_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("merged_into", sa.String(20), nullable=True))
        batch.create_index("ix_incidents_resolve_due_at", ["resolve_due_at"])
        batch.create_index("ix_incidents_response_due_at", ["response_due_at"])
        batch.create_index("ix_incidents_parent_id", ["parent_id"])
        batch.create_foreign_key(
            "fk_incidents_parent_id", "incidents", ["parent_id"], ["id"], ondelete="SET NULL"
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("incidents") as batch:
        batch.drop_constraint("fk_incidents_parent_id", type_="foreignkey")
        batch.drop_index("ix_incidents_parent_id")
        batch.drop_index("ix_incidents_response_due_at")
        batch.drop_index("ix_incidents_resolve_due_at")
        for column in ("merged_into", "parent_id", "sla_warned", "resolve_due_at",
                       "response_due_at", "responded_at", "account", "service"):  # fmt: skip
            batch.drop_column(column)
