"""desk records and ivr

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 20:49:42.169478
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "announcements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text_zh", sa.Text(), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=False),
        sa.Column("service", sa.String(length=120), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("prompts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "incident_counters",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )
    op.create_table(
        "ivr_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_uniqueid", sa.String(length=150), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route", sa.String(length=20), nullable=False),
        sa.Column("menu", sa.String(length=60), nullable=False),
        sa.Column("step", sa.String(length=60), nullable=False),
        sa.Column("digits", sa.String(length=40), nullable=False),
        sa.Column("result", sa.String(length=120), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ivr_steps", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ivr_steps_call_uniqueid"), ["call_uniqueid"], unique=False
        )

    op.create_table(
        "survey_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_uniqueid", sa.String(length=150), nullable=False),
        sa.Column("incident_number", sa.String(length=20), nullable=True),
        sa.Column("agent", sa.String(length=80), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_uniqueid"),
    )
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_survey_responses_agent"), ["agent"], unique=False)
        batch_op.create_index(batch_op.f("ix_survey_responses_at"), ["at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_survey_responses_incident_number"), ["incident_number"], unique=False
        )

    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("employee_no", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("department", sa.String(length=200), nullable=False),
        sa.Column("location", sa.String(length=200), nullable=False),
        sa.Column("office_phone", sa.String(length=60), nullable=False),
        sa.Column("mobile", sa.String(length=60), nullable=False),
        sa.Column("email", sa.String(length=200), nullable=False),
        sa.Column("privileged", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("employee_no"),
    )
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=80), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("symptom", sa.Text(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("requester_id", sa.Integer(), nullable=True),
        sa.Column("requester_name", sa.String(length=120), nullable=False),
        sa.Column("requester_department", sa.String(length=200), nullable=False),
        sa.Column("requester_location", sa.String(length=200), nullable=False),
        sa.Column("requester_office_phone", sa.String(length=60), nullable=False),
        sa.Column("requester_mobile", sa.String(length=60), nullable=False),
        sa.Column("requester_email", sa.String(length=200), nullable=False),
        sa.Column("caller_number", sa.String(length=80), nullable=False),
        sa.Column("caller_key", sa.String(length=40), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("call_uniqueid", sa.String(length=150), nullable=True),
        sa.Column("menu_path", sa.String(length=200), nullable=False),
        sa.Column("announcement_id", sa.Integer(), nullable=True),
        sa.Column("recording", sa.String(length=300), nullable=True),
        sa.Column("satisfaction", sa.Integer(), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["announcement_id"],
            ["announcements.id"],
        ),
        sa.ForeignKeyConstraint(
            ["requester_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("number"),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incidents_call_uniqueid"), ["call_uniqueid"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_incidents_caller_key"), ["caller_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_incidents_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_incidents_requester_id"), ["requester_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_incidents_state"), ["state"], unique=False)

    op.create_table(
        "user_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=80), nullable=False),
        sa.Column("field", sa.String(length=40), nullable=False),
        sa.Column("old", sa.Text(), nullable=False),
        sa.Column("new", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("user_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_changes_user_id"), ["user_id"], unique=False)

    op.create_table(
        "user_phones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", "user_id"),
    )
    with op.batch_alter_table("user_phones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_phones_key"), ["key"], unique=False)
        batch_op.create_index(batch_op.f("ix_user_phones_user_id"), ["user_id"], unique=False)

    op.create_table(
        "incident_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("from_state", sa.String(length=20), nullable=True),
        sa.Column("to_state", sa.String(length=20), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("incident_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_incident_events_incident_id"), ["incident_id"], unique=False
        )

    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ivr_path", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("survey_score", sa.Integer(), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("survey_score")
        batch_op.drop_column("language")
        batch_op.drop_column("ivr_path")

    with op.batch_alter_table("incident_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_events_incident_id"))

    op.drop_table("incident_events")
    with op.batch_alter_table("user_phones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_phones_user_id"))
        batch_op.drop_index(batch_op.f("ix_user_phones_key"))

    op.drop_table("user_phones")
    with op.batch_alter_table("user_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_changes_user_id"))

    op.drop_table("user_changes")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incidents_state"))
        batch_op.drop_index(batch_op.f("ix_incidents_requester_id"))
        batch_op.drop_index(batch_op.f("ix_incidents_created_at"))
        batch_op.drop_index(batch_op.f("ix_incidents_caller_key"))
        batch_op.drop_index(batch_op.f("ix_incidents_call_uniqueid"))

    op.drop_table("incidents")
    op.drop_table("users")
    with op.batch_alter_table("survey_responses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_survey_responses_incident_number"))
        batch_op.drop_index(batch_op.f("ix_survey_responses_at"))
        batch_op.drop_index(batch_op.f("ix_survey_responses_agent"))

    op.drop_table("survey_responses")
    with op.batch_alter_table("ivr_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ivr_steps_call_uniqueid"))

    op.drop_table("ivr_steps")
    op.drop_table("incident_counters")
    op.drop_table("announcements")
