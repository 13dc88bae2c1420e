"""The screen pop: when Asterisk rings an agent's phone, that agent's page (and only that one)
gets the caller, the incident the IVR opened, the caller's open and recent incidents, and the
knowledge and CMDB items that match the symptom."""

import logging
import time
from typing import Any

from sqlalchemy import or_, select

from cti.calls import LiveCall, to_dt
from cti.db import SessionMaker
from cti.phone import NumberPlan, normalize
from cti.tasks import Background
from cti.tracker import CallEvent, CallEventKind, CallTracker
from desk import directory
from desk.incidents import incident_json
from desk.knowledge import KnowledgeService
from desk.models import Incident, User
from desk.web.hub import Hub

logger = logging.getLogger(__name__)

OPEN_STATES = ("new", "in_progress", "escalated_incident", "escalated_problem", "resolved")


def call_json(call: LiveCall) -> dict[str, Any]:
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
        "wait_seconds": round(call.wait_accum, 1),
    }


class PopService:
    """Builds pops from the live call and the desk records, and sends them to the right page."""

    def __init__(
        self,
        sessions: SessionMaker,
        hub: Hub,
        tracker: CallTracker,
        knowledge: KnowledgeService,
        plan: NumberPlan,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.tracker = tracker
        self.knowledge = knowledge
        self.plan = plan
        self.tasks = Background(logger)
        self.built = 0

    def on_call_event(self, event: CallEvent) -> None:
        """Tracker listener (must not block): pops go out from a task."""
        call = event.call
        if call is None:
            return
        if event.kind == CallEventKind.AGENT_RINGING and event.offer is not None:
            self.tasks.spawn(self._send_pop(event.offer.agent, call, "ringing", event.offer.at))
        elif event.kind == CallEventKind.CALL_ANSWERED and call.agent:
            self.hub.publish(f"agent:{call.agent}", {"type": "answered", "call": call_json(call)})
        elif event.kind == CallEventKind.AGENT_RING_ENDED and event.offer is not None:
            if event.offer.result.value != "answered":
                self.hub.publish(
                    f"agent:{event.offer.agent}",
                    {
                        "type": "ring_ended",
                        "uniqueid": call.uniqueid,
                        "result": event.offer.result.value,
                    },
                )
        elif event.kind == CallEventKind.TALK_ENDED and call.agent:
            self.hub.publish(
                f"agent:{call.agent}",
                {"type": "ended", "uniqueid": call.uniqueid, "outcome": "answered"},
            )
        elif event.kind == CallEventKind.CALL_ENDED:
            for agent in {o.agent for o in call.offers} | ({call.agent} if call.agent else set()):
                self.hub.publish(
                    f"agent:{agent}",
                    {
                        "type": "ended",
                        "uniqueid": call.uniqueid,
                        "outcome": call.outcome.value if call.outcome else None,
                    },
                )

    async def _send_pop(self, agent: str, call: LiveCall, phase: str, rang_at: float) -> None:
        try:
            pop = await self.build(call, phase)
            pop["event_at"] = rang_at  # the AMI event's own timestamp (for latency measurement)
            pop["sent_at"] = time.time()
            self.hub.publish(f"agent:{agent}", pop)
        except Exception:
            logger.exception("screen pop failed linkedid=%s", call.linkedid)

    def current(self, ext: str) -> tuple[LiveCall, str] | None:
        """The call now ringing or answered at this agent (for a page reload)."""
        for call in self.tracker.calls.values():
            if call.agent == ext and call.answered_at is not None and call.talk_ended_at is None:
                return call, "answered"
        for call in self.tracker.calls.values():
            if any(o.agent == ext and o.result.value == "ringing" for o in call.offers):
                return call, "ringing"
        return None

    async def build(self, call: LiveCall, phase: str) -> dict[str, Any]:
        """The whole pop for a call."""
        key = normalize(call.caller_number, self.plan).key
        async with self.sessions() as s:
            incident = None
            if call.incident_number:
                incident = await s.scalar(
                    select(Incident).where(Incident.number == call.incident_number)
                )
            user: User | None = None
            if incident is not None and incident.requester_id is not None:
                user = await s.get(User, incident.requester_id)
            elif key:
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
            "type": "pop",
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

    async def close(self) -> None:
        """Cancel pops in flight."""
        await self.tasks.close()
