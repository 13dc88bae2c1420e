"""Call-backs that keep the caller's place: booked from the IVR's offer, dialled once an agent is
ready and no caller who queued earlier is still waiting, one at a time, once.

A booked caller is called back over `Local/<number>@cti-callback`; answered, they run
`[cti-callback-queue]` and join the queue at its head. The leg carries CTI_CALLBACK_OF (the
original call), so the journal links the two and the metrics do not offer the caller twice.
"""

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update

from cti.ami import actions
from cti.ami.client import AmiClient
from cti.db import SessionMaker
from cti.errors import AmiError
from cti.live.agents import AgentService
from cti.live.model import AgentState
from cti.live.tracker import CallTracker
from cti.phone import digits
from cti.routing.models import CallbackRequest, CallbackState
from cti.routing.rules import Callback, WaitingCall, next_callback

logger = logging.getLogger(__name__)

DIAL_TIMEOUT = 90.0  # a call-back not connected by then has failed (it is not retried)


class CallbackService:
    """Books call-backs (the IVR's CallbackPort) and dials them."""

    def __init__(
        self,
        sessions: SessionMaker,
        client: AmiClient,
        tracker: CallTracker,
        agents: AgentService,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.tracker = tracker
        self.agents = agents
        self.pending: dict[str, Callback] = {}
        self.started: dict[str, float] = {}  # uniqueid -> when its dialling began

    async def start(self) -> None:
        """Take back the bookings a previous run left pending."""
        async with self.sessions() as s:
            rows = await s.scalars(
                select(CallbackRequest).where(
                    CallbackRequest.state.in_([CallbackState.PENDING, CallbackState.DIALLING])
                )
            )
            for r in rows.all():
                self.pending[r.uniqueid] = Callback(r.uniqueid, r.number, r.queued_at.timestamp())

    async def request_callback(self, uniqueid: str) -> str | None:
        """The IVR's offer: the caller pressed 1. Their place is their first join time."""
        call = self.tracker.calls.get(uniqueid)
        if call is None or call.queued_at is None or not digits(call.caller_number):
            return None
        now = datetime.now(UTC)
        async with self.sessions.begin() as s:
            if await s.scalar(
                select(CallbackRequest.id).where(CallbackRequest.uniqueid == uniqueid)
            ):
                return None
            s.add(
                CallbackRequest(
                    uniqueid=uniqueid,
                    queue=call.queue or "",
                    number=call.caller_number,
                    incident_number=call.incident_number,
                    queued_at=datetime.fromtimestamp(call.queued_at, UTC),
                    requested_at=now,
                    state=CallbackState.PENDING,
                    attempts=0,
                    result="",
                    updated_at=now,
                )
            )
        self.pending[uniqueid] = Callback(uniqueid, call.caller_number, call.queued_at)
        return call.caller_number

    def rejoin_position(self, uniqueid: str) -> int:
        """Behind every caller still waiting who joined earlier, ahead of everyone later."""
        call = self.tracker.calls.get(uniqueid)
        if call is None or call.queued_at is None:
            return 1
        ahead = [
            c
            for c in self.tracker.calls.values()
            if c.queue == call.queue
            and c.waiting
            and c.queued_at is not None
            and c.queued_at < call.queued_at
        ]
        return len(ahead) + 1

    async def dial(self, now: float) -> None:
        """Settle the call-back being dialled; start the next one if its turn has come."""
        for uid, started in list(self.started.items()):
            leg = next((c for c in self.tracker.calls.values() if c.callback_of == uid), None)
            if leg is not None or now - started > DIAL_TIMEOUT:
                await self._done(
                    uid, "connected" if leg else "not answered", leg.uniqueid if leg else None
                )
        waiting = [
            WaitingCall(c.uniqueid, c.queued_at or now)
            for c in self.tracker.calls.values()
            if c.waiting and c.callback_of is None
        ]
        chosen = next_callback(self.pending.values(), waiting, self.agents.count(AgentState.READY))
        if chosen is None:
            return
        self.pending[chosen.uniqueid] = Callback(
            chosen.uniqueid, chosen.number, chosen.queued_at, dialling=True
        )
        self.started[chosen.uniqueid] = now
        async with self.sessions.begin() as s:
            req = await s.scalar(
                select(CallbackRequest).where(CallbackRequest.uniqueid == chosen.uniqueid)
            )
            if req is None:
                return
            req.state, req.attempts = CallbackState.DIALLING, req.attempts + 1
            req.updated_at = datetime.now(UTC)
            queue, incident = req.queue, req.incident_number or ""
        try:
            await actions.originate(
                self.client,
                actions.Originate(
                    channel=f"Local/{chosen.number}@cti-callback/n",
                    context="cti-callback-queue",
                    exten="s",
                    caller_id=f"<{chosen.number}>",
                    timeout_ms=45_000,
                    variables={
                        "CTI_CALLBACK_OF": chosen.uniqueid,
                        "CTI_QUEUE": queue,
                        "__CTI_INCIDENT": incident,
                    },
                ),
            )
        except AmiError as exc:
            await self._done(chosen.uniqueid, f"originate failed: {exc}", None)

    async def _done(self, uniqueid: str, result: str, leg: str | None) -> None:
        self.started.pop(uniqueid, None)
        if self.pending.pop(uniqueid, None) is None:
            return
        async with self.sessions.begin() as s:
            await s.execute(
                update(CallbackRequest)
                .where(CallbackRequest.uniqueid == uniqueid)
                .values(
                    state=CallbackState.DONE if leg else CallbackState.FAILED,
                    result=result[:40],
                    callback_uniqueid=leg,
                    updated_at=datetime.now(UTC),
                )
            )
