"""Queue state: who waits in each queue, the recent arrival rate, and the routing input.

Built from the call tracker and the agents (both live), plus the arrivals the bus reports; the
back-up rules read `snapshot()`, the wallboard `waiting()` and `queues()`.
"""

import time
from collections import defaultdict, deque
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from cti.db import SessionMaker
from cti.journal.models import Call
from cti.live.agents import AgentService
from cti.live.bus import Bus, CallEvent, CallEventKind
from cti.live.model import AgentState, LiveCall
from cti.live.tracker import CallTracker
from cti.routing.rules import QueueSnapshot

RATE_WINDOW = 900.0  # seconds of arrivals behind the predicted wait


class QueueBook:
    """Live queue figures, computed from the tracker and the agents on demand."""

    def __init__(self, tracker: CallTracker, agents: AgentService, bus: Bus) -> None:
        self.tracker = tracker
        self.agents = agents
        self.arrivals: dict[str, deque[float]] = defaultdict(deque)
        self.known: set[str] = set()
        self._unsubscribe = bus.subscribe(CallEvent, self._on_call)

    def _on_call(self, event: CallEvent) -> None:
        call = event.call
        if call.asterisk != self.tracker.asterisk:
            return  # another Asterisk's queue of the same name is another queue
        if event.kind == CallEventKind.CALL_QUEUED and call.queue and call.callback_of is None:
            self.arrivals[call.queue].append(call.queued_at or time.time())
            self.known.add(call.queue)

    async def preload(self, sessions: SessionMaker) -> None:
        """Recent arrivals and every queue the journal knows on this Asterisk (after a
        restart)."""
        now = datetime.now(UTC)
        mine = Call.asterisk == self.tracker.asterisk
        async with sessions() as s:
            rows = await s.execute(
                select(Call.queue, Call.queued_at).where(
                    mine,
                    Call.queued_at >= now - timedelta(seconds=RATE_WINDOW),
                    Call.callback_of.is_(None),
                )
            )
            for at_ts, queue in sorted((at.timestamp(), q) for q, at in rows.all() if q and at):
                self.arrivals[queue].append(at_ts)
            queues = await s.scalars(
                select(Call.queue).where(mine, Call.queue.is_not(None)).distinct()
            )
            self.known.update(q for q in queues.all() if q)

    def close(self) -> None:
        """Stop listening to the bus."""
        self._unsubscribe()

    def queues(self) -> set[str]:
        """Every queue seen: in the journal, with a live call, or with an agent."""
        return (
            self.known
            | {c.queue for c in self.tracker.calls.values() if c.queue}
            | {q for a in self.agents.agents.values() for q in a.queues}
        )

    def waiting(self, queue: str | None, now: float) -> list[tuple[LiveCall, float]]:
        """Callers in a queue now (in any queue if None), longest wait first, with their wait
        so far (every stint in a queue, the current one included)."""
        out = [
            (c, c.waited(now))
            for c in self.tracker.calls.values()
            if c.waiting and (queue is None or c.queue == queue)
        ]
        return sorted(out, key=lambda cw: -cw[1])

    def arrival_rate(self, queue: str, now: float) -> float:
        """Calls per second joining the queue over the last RATE_WINDOW seconds."""
        q = self.arrivals[queue]
        while q and q[0] < now - RATE_WINDOW:
            q.popleft()
        return len(q) / RATE_WINDOW

    def snapshot(self, queue: str, now: float, aht: float) -> QueueSnapshot:
        """What the back-up rules look at for one queue; `aht` is today's handle time."""
        waiting = self.waiting(queue, now)
        members = [a for a in self.agents.agents.values() if queue in a.queues]
        ready = sum(1 for a in members if a.state == AgentState.READY)
        staffed = sum(
            1 for a in members if a.state not in (AgentState.PAUSED, AgentState.LOGGED_OUT)
        )
        return QueueSnapshot(
            queue,
            len(waiting),
            waiting[0][1] if waiting else 0.0,
            ready,
            staffed,
            self.arrival_rate(queue, now),
            aht,
        )
