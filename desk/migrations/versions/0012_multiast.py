"""several Asterisk servers: calls, outages, IVR steps and agent states carry their Asterisk's name

Revision ID: 0012_multiast
Revises: 0011_slot_hold
Create Date: 2026-11-30 04:10:00

A call's Uniqueid is unique on one Asterisk only: a call is now keyed by (asterisk, uniqueid).
Existing rows belong to the default Asterisk, "main". SQLite cannot drop a table's unnamed
unique constraint in place, so `calls` is rebuilt there (batch mode), which drops its half-hour
triggers (0010_perf): they are made again afterwards.
"""

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0012_multiast"
down_revision: str | None = "0011_slot_hold"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT = "main"
# Names for SQLite's reflected unnamed constraints (0001 made `UNIQUE (uniqueid)` without one).
NAMING = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
SQLITE_TRIGGERS = ("calls_slot_insert", "calls_slot_update", "calls_slot_delete")


def _perf() -> ModuleType:
    """0010_perf, whose SQLite trigger statements are made again after the rebuild."""
    path = Path(__file__).with_name("0010_perf.py")
    spec = importlib.util.spec_from_file_location("cti_migration_0010_perf", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _column() -> sa.Column[str]:
    return sa.Column("asterisk", sa.String(40), nullable=False, server_default=DEFAULT)


def upgrade() -> None:
    """Apply this revision."""
    pg = op.get_bind().dialect.name == "postgresql"
    for table in ("link_outages", "ivr_steps", "agent_states"):
        op.add_column(table, _column())
    if pg:
        op.add_column("calls", _column())
        op.drop_constraint("calls_uniqueid_key", "calls", type_="unique")
        op.create_unique_constraint("uq_calls_asterisk_uniqueid", "calls", ["asterisk", "uniqueid"])
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        with op.batch_alter_table("calls", recreate="always", naming_convention=NAMING) as batch:
            batch.add_column(_column())
            batch.drop_constraint("uq_calls_uniqueid", type_="unique")
            batch.create_unique_constraint("uq_calls_asterisk_uniqueid", ["asterisk", "uniqueid"])
        for ddl in _perf()._sqlite_triggers():
            op.execute(ddl)
    op.create_index("ix_calls_asterisk", "calls", ["asterisk"])


def downgrade() -> None:
    """Revert this revision (refused while another Asterisk's calls share a Uniqueid)."""
    bind = op.get_bind()
    shared = bind.execute(
        sa.text("SELECT uniqueid FROM calls GROUP BY uniqueid HAVING count(*) > 1 LIMIT 1")
    ).scalar()
    if shared is not None:
        raise RuntimeError(
            f"cannot go back to one Asterisk: calls of several share Uniqueid {shared!r} "
            "(delete the other Asterisks' calls first)"
        )
    pg = bind.dialect.name == "postgresql"
    op.drop_index("ix_calls_asterisk", "calls")
    if pg:
        op.drop_constraint("uq_calls_asterisk_uniqueid", "calls", type_="unique")
        op.create_unique_constraint("calls_uniqueid_key", "calls", ["uniqueid"])
        op.drop_column("calls", "asterisk")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        with op.batch_alter_table("calls", recreate="always") as batch:
            batch.drop_constraint("uq_calls_asterisk_uniqueid", type_="unique")
            batch.create_unique_constraint("uq_calls_uniqueid", ["uniqueid"])
            batch.drop_column("asterisk")
        for ddl in _perf()._sqlite_triggers():
            op.execute(ddl)
    for table in ("agent_states", "ivr_steps", "link_outages"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("asterisk")
