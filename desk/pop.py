"""The screen pop's content: for a call ringing an agent's phone, the caller, the incident the IVR
opened, the caller's open and recent incidents, and the knowledge and CMDB items that match the
symptom. (Which page gets it, and when, is the web layer's: desk/web/notifier.py.)"""

import logging
from typing import Any

from sqlalchemy import or_, select

from cti.db import SessionMaker
from cti.live.model import CallState, CallView, to_dt, view_of
from cti.live.tracker import CallTracker
from cti.phone import NumberPlan, normalize
from desk import directory
from desk.incidents import incident_json
from desk.knowledge import KnowledgeService
from desk.models import Incident, User

logger = logging.getLogger(__name__)

OPEN_STATES = ("new", "in_progress", "escalated_incident", "escalated_problem", "resolved")


def call_json(call: CallView) -> dict[str, Any]:
    """The live call as the page shows it."""

    def iso(ts: float | None) -> str | None:
        return to_dt(ts).isoformat() if ts is not None else None

    return {
        "uniqueid": call.uniqueid,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "dialled_number": call.dialled_number,
        "queue": call.queue,
        "incident_number": call.incident_number,
        "ivr_path": call.ivr_path,
        "language": call.language,
        "arrived_at": iso(call.arrived_at),
        "queued_at": iso(call.queued_at),
        "answered_at": iso(call.answered_at),
        "agent": call.agent,
        "state": call.state.value,
        "wait_seconds": round(call.wait_seconds, 1),
        "on_hold": call.on_hold,
        "hold_seconds": round(call.hold_seconds, 1),
    }


class PopBuilder:
    """Builds pops from a live call and the desk records."""

    def __init__(
        self, sessions: SessionMaker, knowledge: KnowledgeService, plan: NumberPlan
    ) -> None:
        self.sessions = sessions
        self.knowledge = knowledge
        self.plan = plan
        self.built = 0

    @staticmethod
    def current(tracker: CallTracker, ext: str) -> tuple[CallView, str] | None:
        """The call now answered or ringing at this agent (for a page reload)."""
        now = tracker.clock()
        for call in tracker.calls.values():
            if call.state == CallState.TALKING and call.agent == ext:
                return view_of(call, now), "answered"
        for call in tracker.calls.values():
            view = view_of(call, now)
            if call.state == CallState.RINGING and ext in view.ringing:
                return view, "ringing"
        return None

    async def build(self, call: CallView, phase: str) -> dict[str, Any]:
        """The whole pop for a call."""
        key = normalize(call.caller_number, self.plan).key
        async with self.sessions() as s:
            incident: Incident | None = None
            user: User | None = None
            # The IVR's incident: by the number its CtiIncident event gave the call, else by the
            # call's id, which the IVR records on the incident (the event is lost when the AMI
            # link drops just then). With its requester, in one statement (each is a round trip
            # to the database's thread, and the pop waits for them all).
            row = (
                await s.execute(
                    select(Incident, User)
                    .outerjoin(User, User.id == Incident.requester_id)
                    .where(
                        Incident.number == call.incident_number
                        if call.incident_number
                        else Incident.call_uniqueid == call.uniqueid
                    )
                    .order_by(Incident.id.desc())
                    .limit(1)
                )
            ).first()
            if row is not None:
                incident, user = row
            if (incident is None or incident.requester_id is None) and key:
                users = await directory.find_by_key(s, key)
                user = users[0] if len(users) == 1 else None
            conds = []
            if user is not None:
                conds.append(Incident.requester_id == user.id)
            if key:
                conds.append(Incident.caller_key == key)
            history: list[Incident] = []
            if conds:
                rows = await s.scalars(
                    select(Incident)
                    .where(or_(*conds))
                    .order_by(Incident.created_at.desc())
                    .limit(20)
                )
                history = [i for i in rows.all() if incident is None or i.id != incident.id]
        text = " ".join(x for x in (incident.category, incident.symptom) if x) if incident else ""
        matches = (
            await self.knowledge.match(text, fresh=False) if text else {"knowledge": [], "cmdb": []}
        )
        self.built += 1
        return {
            "phase": phase,
            "call": call_json(call),
            "caller": directory.user_json(user) if user else None,
            "incident": incident_json(incident) if incident else None,
            "open_incidents": [incident_json(i) for i in history if i.state in OPEN_STATES][:10],
            "recent_incidents": [incident_json(i) for i in history if i.state not in OPEN_STATES][
                :5
            ],
            **matches,
        }
