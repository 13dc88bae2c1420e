"""Desk records: the user directory, incidents with their history, announcements, surveys.

They share the journal's metadata (one database, one Alembic history in desk/migrations).
"""

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cti.journal.models import Base, Clipped


class IncidentType(StrEnum):
    """6.3.1: what the caller asked for."""

    FAULT = "fault"
    SERVICE_REQUEST = "service_request"
    CONSULTATION = "consultation"


class IncidentState(StrEnum):
    """The incident lifecycle (6.3.3, Fig. 1)."""

    NEW = "new"
    IN_PROGRESS = "in_progress"
    ESCALATED_INCIDENT = "escalated_incident"  # handed to incident management
    ESCALATED_PROBLEM = "escalated_problem"  # handed to problem management
    RESOLVED = "resolved"
    CLOSED = "closed"


class Channel(StrEnum):
    """How the request reached the desk (6.3.1.2 e)."""

    PHONE = "phone"
    VOICEMAIL = "voicemail"
    WEB = "web"
    EMAIL = "email"


class User(Base):
    """A person the desk serves (6.3.1.2 d): the user directory."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    employee_no: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    department: Mapped[str] = mapped_column(String(200), default="")
    location: Mapped[str] = mapped_column(String(200), default="")
    office_phone: Mapped[str] = mapped_column(String(60), default="")
    mobile: Mapped[str] = mapped_column(String(60), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    # 6.2: privileged (administrator) accounts are never reset by the desk's automation.
    privileged: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class UserPhone(Base):
    """A normalised number (E.164 or ext:NNNN) that identifies a user."""

    __tablename__ = "user_phones"
    __table_args__ = (UniqueConstraint("key", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(40), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # office, mobile


class UserChange(Base):
    """History of a user's details (6.3.1.3: details checked and updated on every call)."""

    __tablename__ = "user_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(String(80))
    field: Mapped[str] = mapped_column(String(40))
    old: Mapped[str] = mapped_column(Text, default="")
    new: Mapped[str] = mapped_column(Text, default="")


class Incident(Base):
    """A recorded call request (6.3.1.2), with a digits-only number the caller can key in."""

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    recorded_by: Mapped[str] = mapped_column(String(80))  # "IVR", "web", or an agent
    channel: Mapped[str] = mapped_column(String(20))
    type: Mapped[str] = mapped_column(String(20))
    category: Mapped[str] = mapped_column(Clipped(200), default="")
    symptom: Mapped[str] = mapped_column(Text, default="")
    priority: Mapped[int] = mapped_column(Integer, default=3)
    state: Mapped[str] = mapped_column(String(20), index=True)
    # Who asked, as recorded at the time (the directory may change later).
    requester_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    requester_name: Mapped[str] = mapped_column(String(120), default="")
    requester_department: Mapped[str] = mapped_column(String(200), default="")
    requester_location: Mapped[str] = mapped_column(String(200), default="")
    requester_office_phone: Mapped[str] = mapped_column(String(60), default="")
    requester_mobile: Mapped[str] = mapped_column(String(60), default="")
    requester_email: Mapped[str] = mapped_column(String(200), default="")
    caller_number: Mapped[str] = mapped_column(Clipped(80), default="")
    caller_key: Mapped[str | None] = mapped_column(Clipped(40), index=True)
    language: Mapped[str] = mapped_column(Clipped(8), default="zh")
    call_uniqueid: Mapped[str | None] = mapped_column(Clipped(150), index=True)
    menu_path: Mapped[str] = mapped_column(Clipped(200), default="")
    announcement_id: Mapped[int | None] = mapped_column(ForeignKey("announcements.id"))
    recording: Mapped[str | None] = mapped_column(Clipped(300))
    satisfaction: Mapped[int | None] = mapped_column(Integer)
    assignee: Mapped[str | None] = mapped_column(String(60), index=True)  # staff username
    escalated_to: Mapped[str | None] = mapped_column(String(120))  # group
    config_item: Mapped[str | None] = mapped_column(String(120))
    service: Mapped[str | None] = mapped_column(String(120))  # of the service catalogue
    account: Mapped[str | None] = mapped_column(String(120))  # 6.2: the account a request names
    # The SLA (desk/sla.py): first response by staff, and the due times stamped from the
    # catalogue's targets on the business-hours clock.
    responded_at: Mapped[datetime | None]
    response_due_at: Mapped[datetime | None] = mapped_column(index=True)
    resolve_due_at: Mapped[datetime | None] = mapped_column(index=True)
    sla_warned: Mapped[str] = mapped_column(String(40), default="")  # "response,resolution"
    # An outage's children point at it; a duplicate is closed pointing at the one kept.
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("incidents.id", ondelete="SET NULL"), index=True
    )
    merged_into: Mapped[str | None] = mapped_column(String(20))
    first_line_resolved: Mapped[bool | None]  # resolved by the desk without escalation (7 c)
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class IncidentEvent(Base):
    """Each change to an incident, with who and when."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    by: Mapped[str] = mapped_column(Clipped(80))
    kind: Mapped[str] = mapped_column(String(30))  # created, state, note, link ...
    from_state: Mapped[str | None] = mapped_column(String(20))
    to_state: Mapped[str | None] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text, default="")


class IncidentCounter(Base):
    """The last sequence number used on a desk-local day (incident numbers are YYMMDD + seq)."""

    __tablename__ = "incident_counters"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Announcement(Base):
    """A notice for callers (6.4): a known outage, a planned change, desk information."""

    __tablename__ = "announcements"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # outage, change, info
    title: Mapped[str] = mapped_column(String(200))
    text_zh: Mapped[str] = mapped_column(Text, default="")
    text_en: Mapped[str] = mapped_column(Text, default="")
    service: Mapped[str] = mapped_column(String(120), default="")
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(default=True)
    # Prompt file names (per language) once synthesised or uploaded: {"zh": "...", "en": "..."}.
    prompts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class SurveyResponse(Base):
    """A post-call satisfaction score (clause 7 d)."""

    __tablename__ = "survey_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_uniqueid: Mapped[str] = mapped_column(Clipped(150), unique=True)
    incident_number: Mapped[str | None] = mapped_column(Clipped(20), index=True)
    agent: Mapped[str | None] = mapped_column(Clipped(80), index=True)
    score: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(index=True)


__all__ = [
    "Announcement",
    "AuditEntry",
    "Base",
    "Channel",
    "ConfigItem",
    "DeskSetting",
    "Incident",
    "IncidentCounter",
    "IncidentEvent",
    "IncidentState",
    "IncidentType",
    "KnowledgeArticle",
    "Role",
    "Staff",
    "SurveyResponse",
    "User",
    "UserChange",
    "UserPhone",
    "WebSession",
]


class Role(StrEnum):
    """What a member of staff may do (5.1, 5.2)."""

    AGENT = "agent"  # 热线帮助工作人员
    LEAD = "lead"  # 热线帮助负责人
    ADMIN = "admin"


class Staff(Base):
    """Desk staff: login, role, phone, and the Table A.2 contact fields."""

    __tablename__ = "staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str] = mapped_column(String(200))
    extension: Mapped[str | None] = mapped_column(String(20), unique=True)  # the desk phone
    position: Mapped[str] = mapped_column(String(120), default="")  # 职务
    services: Mapped[str] = mapped_column(String(300), default="")  # 负责的服务
    office_phone: Mapped[str] = mapped_column(String(60), default="")
    mobile: Mapped[str] = mapped_column(String(60), default="")
    email: Mapped[str] = mapped_column(String(200), default="")
    im_handle: Mapped[str] = mapped_column(String(120), default="")
    queues: Mapped[str] = mapped_column(String(200), default="helpdesk")  # comma-separated
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebSession(Base):
    """A logged-in browser; the cookie holds only the random id."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class KnowledgeArticle(Base):
    """A knowledge-base article (4.2 g, 6.3.2): matched against the symptom, shown on the pop."""

    __tablename__ = "knowledge_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    tags: Mapped[str] = mapped_column(String(300), default="")
    service: Mapped[str] = mapped_column(String(120), default="")
    language: Mapped[str] = mapped_column(String(8), default="zh")
    published: Mapped[bool] = mapped_column(default=True)  # visible on the self-service portal
    # Retired: kept for the record, no longer matched on the pop nor shown on the portal.
    retired: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ConfigItem(Base):
    """A CMDB configuration item: a service or component, its owner and its status."""

    __tablename__ = "config_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    ci_type: Mapped[str] = mapped_column(String(40), default="service")
    service: Mapped[str] = mapped_column(String(120), default="")
    owner: Mapped[str] = mapped_column(String(120), default="")
    status: Mapped[str] = mapped_column(String(20), default="operational")
    location: Mapped[str] = mapped_column(String(200), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime]


class OncallShift(Base):
    """Who is on call when (Table A.2: name, mobile, IM handle), for overflow and after hours."""

    __tablename__ = "oncall_shifts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    mobile: Mapped[str] = mapped_column(String(40), default="")
    im_channel: Mapped[str] = mapped_column(String(40), default="")  # a channel of routing.yaml
    im_handle: Mapped[str] = mapped_column(String(120), default="")
    queue: Mapped[str | None] = mapped_column(String(80))  # None: every queue
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime]


class AuditEntry(Base):
    """Who changed what and when: every write of the lead's console, logins (success and
    failure), exports of personal data (Table A.1) and click-to-call."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(Clipped(80), index=True)  # staff username, or "ldap" ...
    action: Mapped[str] = mapped_column(String(40), index=True)  # e.g. staff.create, login.fail
    target: Mapped[str] = mapped_column(Clipped(200), default="")  # what it was done to
    address: Mapped[str] = mapped_column(Clipped(60), default="")  # the client's address
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)  # changed fields: [old, new]


class DeskSetting(Base):
    """A setting the lead edits in the browser, as one document: the opening hours (JSON) and
    routing.yaml's text. In the database so every server node reads the same, and a change is
    one transaction with its audit entry."""

    __tablename__ = "desk_settings"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(80), default="")
