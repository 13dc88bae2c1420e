"""Incidents: digits-only numbers, creation with every 6.3.1.2 field, lifecycle with history, and
how an incident looks to pages and the API (age and SLA timer)."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import Conflict, NotFound
from cti.ivr.ports import NewIncident
from desk import sla
from desk.mail.outbox import queue_ack
from desk.models import Incident, IncidentCounter, IncidentEvent, IncidentState

S = IncidentState
# Allowed state changes (6.3.3 and Fig. 1 of the standard).
TRANSITIONS: dict[IncidentState, set[IncidentState]] = {
    S.NEW: {S.IN_PROGRESS, S.ESCALATED_INCIDENT, S.ESCALATED_PROBLEM, S.RESOLVED},
    S.IN_PROGRESS: {S.ESCALATED_INCIDENT, S.ESCALATED_PROBLEM, S.RESOLVED},
    S.ESCALATED_INCIDENT: {S.IN_PROGRESS, S.RESOLVED},
    S.ESCALATED_PROBLEM: {S.IN_PROGRESS, S.RESOLVED},
    S.RESOLVED: {S.CLOSED, S.IN_PROGRESS},
    S.CLOSED: set(),
}


async def next_number(session: AsyncSession, day: date) -> str:
    """YYMMDD + a daily sequence of at least three digits: 261125 042 -> "261125042".

    One atomic statement (INSERT ... ON CONFLICT DO UPDATE ... RETURNING), so concurrent calls
    never get the same number.
    """
    dialect = session.get_bind().dialect.name
    ins = (
        postgresql.insert(IncidentCounter)
        if dialect == "postgresql"
        else sqlite.insert(IncidentCounter)
    )
    stmt = ins.values(day=day, last=1).on_conflict_do_update(
        index_elements=["day"], set_={"last": IncidentCounter.last + 1}
    )
    seq = (await session.execute(stmt.returning(IncidentCounter.last))).scalar_one()
    return f"{day:%y%m%d}{seq:03d}"


async def create(
    session: AsyncSession, new: NewIncident, *, recorded_by: str, now: datetime, local_day: date
) -> Incident:
    """Record a new incident (state new) and its creation in the history, and queue its
    acknowledgement to the requester's directory address (6.3.1.1 c): every channel comes here."""
    r = new.requester
    incident = Incident(
        number=await next_number(session, local_day),
        created_at=now,
        recorded_by=recorded_by,
        channel=new.channel,
        type=new.type,
        category=new.category,
        symptom=new.symptom,
        state=S.NEW.value,
        requester_id=r.user_id if r else None,
        requester_name=r.name if r else "",
        requester_department=r.department if r else "",
        requester_location=r.location if r else "",
        requester_office_phone=r.office_phone if r else "",
        requester_mobile=r.mobile if r else "",
        requester_email=r.email if r else "",
        caller_number=new.caller_number,
        caller_key=new.caller_key,
        language=new.language,
        call_uniqueid=new.call_uniqueid or None,
        menu_path=new.menu_path,
        announcement_id=new.announcement_id,
        recording=new.recording,
        updated_at=now,
    )
    await sla.stamp_now(session, incident)
    session.add(incident)
    await session.flush()
    session.add(IncidentEvent(incident_id=incident.id, at=now, by=recorded_by, kind="created",
                              to_state=S.NEW.value, text=new.symptom))  # fmt: skip
    queue_ack(session, incident, now)
    return incident


async def get(session: AsyncSession, number: str) -> Incident:
    """The incident with this number (NotFound otherwise)."""
    incident = await session.scalar(select(Incident).where(Incident.number == number))
    if incident is None:
        raise NotFound(f"no incident {number}")
    return incident


async def change_state(
    session: AsyncSession,
    incident: Incident,
    to: IncidentState,
    *,
    by: str,
    now: datetime,
    text: str = "",
) -> None:
    """Move an incident along its lifecycle (Conflict if the move is not allowed)."""
    current = IncidentState(incident.state)
    if to not in TRANSITIONS[current]:
        raise Conflict(f"incident {incident.number} cannot go from {current} to {to}")
    # Only from the state read: two agents acting at once cannot both move it (the second
    # waits for the first's write, then finds the state changed).
    won = await session.execute(
        update(Incident)
        .where(Incident.id == incident.id, Incident.state == current.value)
        .values(state=to.value, updated_at=now)
        .returning(Incident.id)
        .execution_options(synchronize_session=False)
    )
    if won.scalar_one_or_none() is None:
        raise Conflict(f"incident {incident.number} was changed meanwhile: reload it")
    session.add(IncidentEvent(incident_id=incident.id, at=now, by=by, kind="state",
                              from_state=current.value, to_state=to.value, text=text))  # fmt: skip
    incident.state = to.value
    incident.updated_at = now
    if to == S.RESOLVED:
        incident.resolved_at = now
    elif to == S.CLOSED:
        incident.closed_at = now
    elif current == S.RESOLVED:
        incident.resolved_at = None


# Resolution targets by priority when an incident has no due time stamped yet (from before the
# catalogue; the SLA sweep stamps them), in hours.
SLA_HOURS = {1: 4, 2: 8, 3: 24, 4: 72}


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def sla_due(incident: Incident) -> datetime:
    """When the incident must be resolved."""
    if incident.resolve_due_at is not None:
        return _utc(incident.resolve_due_at)
    return _utc(incident.created_at) + timedelta(hours=SLA_HOURS.get(incident.priority, 24))


def responded(incident: Incident, now: datetime) -> None:
    """Staff acted on the incident: its first response, if it had none."""
    if incident.responded_at is None:
        incident.responded_at = now


def _iso(value: datetime | None) -> str | None:
    return _utc(value).isoformat() if value is not None else None


def incident_json(
    i: Incident, now: datetime | None = None, due_soon_minutes: int = 60
) -> dict[str, Any]:
    """Public form, with age and SLA remaining (negative when breached)."""
    now = now or datetime.now(UTC)
    due = sla_due(i)
    end = _utc(i.resolved_at) if i.resolved_at else now
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
        "age_seconds": int((now - _utc(i.created_at)).total_seconds()),
        "sla_due_at": due.isoformat(),
        "sla_remaining_seconds": int((due - end).total_seconds()),
        "response_due_at": _iso(i.response_due_at),
        "responded_at": _iso(i.responded_at),
        "sla_breaches": sla.breaches(i, now),
        "sla_standing": sla.standing(i, now, due_soon_minutes),
        "service": i.service,
        "account": i.account,
        "merged_into": i.merged_into,
        "updated_at": _iso(i.updated_at),
    }
