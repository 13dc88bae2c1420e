"""report figures kept per UTC half-hour; indexes that cover the report's incident and survey sums

Revision ID: 0010_perf
Revises: 0008_workbench
Create Date: 2026-11-30 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_perf"
down_revision: str | None = "0008_workbench"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The slot of a call: its UTC half-hour as floor(epoch seconds / 1800). SQLite keeps arrived_at
# as naive UTC text ('YYYY-MM-DD HH:MM:SS.ffffff'); PostgreSQL as timestamptz.
# strftime('%s') rounds to the millisecond (12:29:59.9999 would be 12:30): whole seconds first.
SQLITE_SLOT = "(CAST(strftime('%s', substr({row}.arrived_at, 1, 19)) AS INTEGER) / 1800)"
PG_SLOT = "CAST(floor(extract(epoch FROM {row}.arrived_at) / 1800) AS INTEGER)"


def _sqlite_triggers() -> list[str]:
    def bump(row: str) -> str:
        return (
            f"INSERT INTO call_slots (slot, version, computed_version) "
            f"VALUES ({SQLITE_SLOT.format(row=row)}, 1, 0) "
            "ON CONFLICT (slot) DO UPDATE SET version = version + 1;"
        )

    return [
        "CREATE TRIGGER calls_slot_insert AFTER INSERT ON calls "
        f"WHEN NEW.ended_at IS NOT NULL BEGIN {bump('NEW')} END",
        "CREATE TRIGGER calls_slot_update AFTER UPDATE ON calls "
        "WHEN NEW.ended_at IS NOT NULL OR OLD.ended_at IS NOT NULL "
        f"BEGIN {bump('NEW')} {bump('OLD')} END",
        "CREATE TRIGGER calls_slot_delete AFTER DELETE ON calls "
        f"WHEN OLD.ended_at IS NOT NULL BEGIN {bump('OLD')} END",
    ]


def _pg_triggers() -> list[str]:
    def bump(row: str) -> str:
        return (
            f"INSERT INTO call_slots (slot, version, computed_version) "
            f"VALUES ({PG_SLOT.format(row=row)}, 1, 0) "
            "ON CONFLICT (slot) DO UPDATE SET version = call_slots.version + 1;"
        )

    return [
        f"""CREATE FUNCTION calls_slot_bump() RETURNS trigger AS $$
BEGIN
  IF TG_OP <> 'DELETE' AND NEW.ended_at IS NOT NULL THEN {bump("NEW")} END IF;
  IF TG_OP <> 'INSERT' AND OLD.ended_at IS NOT NULL THEN {bump("OLD")} END IF;
  RETURN NULL;
END $$ LANGUAGE plpgsql""",
        "CREATE TRIGGER calls_slot_bump AFTER INSERT OR UPDATE OR DELETE ON calls "
        "FOR EACH ROW EXECUTE FUNCTION calls_slot_bump()",
    ]


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "call_slots",
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("computed_version", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("sl_seconds", sa.Float(), nullable=True),
        sa.Column("short_abandon", sa.Float(), nullable=True),
    )
    counts = ("arrived", "offered", "answered", "abandoned", "short_abandoned", "timed_out",
              "overflowed", "ended_in_ivr", "voicemail", "answered_in_sl")  # fmt: skip
    op.create_table(
        "call_slot_figures",
        sa.Column("slot", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("queue", sa.String(80), primary_key=True),
        sa.Column("agent", sa.String(80), primary_key=True),
        *(sa.Column(c, sa.Integer(), nullable=False, server_default="0") for c in counts),
        *(
            sa.Column(c, sa.Float(), nullable=False, server_default="0")
            for c in ("wait_answered", "talk", "acw")
        ),
        sa.Column("reconciled", sa.Integer(), nullable=False, server_default="0"),
    )
    pg = op.get_bind().dialect.name == "postgresql"
    for ddl in _pg_triggers() if pg else _sqlite_triggers():
        op.execute(ddl)
    # The calls already journaled: every slot with a finished call is stale until computed.
    slot = (PG_SLOT if pg else SQLITE_SLOT).format(row="calls")
    op.execute(
        "INSERT INTO call_slots (slot, version, computed_version) "
        f"SELECT DISTINCT {slot}, 1, 0 FROM calls WHERE ended_at IS NOT NULL"
    )
    # A report's incident and survey sums read these columns only: from the index alone.
    op.create_index(
        "ix_incidents_created_category", "incidents", ["created_at", "category", "escalated_to"]
    )
    op.create_index(
        "ix_incidents_resolved_figures",
        "incidents",
        ["resolved_at", "first_line_resolved", "escalated_to"],
    )
    op.create_index("ix_survey_responses_at_figures", "survey_responses", ["at", "agent", "score"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_survey_responses_at_figures", "survey_responses")
    op.drop_index("ix_incidents_resolved_figures", "incidents")
    op.drop_index("ix_incidents_created_category", "incidents")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER calls_slot_bump ON calls")
        op.execute("DROP FUNCTION calls_slot_bump()")
    else:
        for name in ("calls_slot_insert", "calls_slot_update", "calls_slot_delete"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("call_slot_figures")
    op.drop_table("call_slots")
