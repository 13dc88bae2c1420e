"""How an incident looks to pages and the API, with its age and SLA timer."""

from datetime import UTC, datetime, timedelta
from typing import Any

from desk.models import Incident

# Resolution targets by priority (the service catalogue's commitments, 6.4.2 e), in hours.
SLA_HOURS = {1: 4, 2: 8, 3: 24, 4: 72}


def sla_due(incident: Incident) -> datetime:
    """When the incident must be resolved."""
    return incident.created_at + timedelta(hours=SLA_HOURS.get(incident.priority, 24))


def incident_json(i: Incident, now: datetime | None = None) -> dict[str, Any]:
    """Public form, with age and SLA remaining (negative when breached)."""
    now = now or datetime.now(UTC)
    due = sla_due(i)
    end = i.resolved_at or now
    return {
        "number": i.number,
        "created_at": i.created_at.isoformat(),
        "recorded_by": i.recorded_by,
        "channel": i.channel,
        "type": i.type,
        "category": i.category,
        "symptom": i.symptom,
        "priority": i.priority,
        "state": i.state,
        "assignee": i.assignee,
        "escalated_to": i.escalated_to,
        "config_item": i.config_item,
        "requester": {
            "id": i.requester_id,
            "name": i.requester_name,
            "department": i.requester_department,
            "location": i.requester_location,
            "office_phone": i.requester_office_phone,
            "mobile": i.requester_mobile,
            "email": i.requester_email,
        },
        "caller_number": i.caller_number,
        "language": i.language,
        "call_uniqueid": i.call_uniqueid,
        "menu_path": i.menu_path,
        "announcement_id": i.announcement_id,
        "recording": i.recording,
        "satisfaction": i.satisfaction,
        "first_line_resolved": i.first_line_resolved,
        "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
        "closed_at": i.closed_at.isoformat() if i.closed_at else None,
        "age_seconds": int((now - i.created_at).total_seconds()),
        "sla_due_at": due.isoformat(),
        "sla_remaining_seconds": int((due - end).total_seconds()),
    }
