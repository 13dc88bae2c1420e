"""The desk lead's wallboard (5.2.1, 6.3.1.4): per queue and in total, callers waiting and the
longest wait, agents by state, and today's offered / answered / abandoned, service level, average
speed of answer, average handle time and abandon rate, with a row per agent and the announcements.

Live figures come from the call tracker and the agent service; today's figures are one SQL query
over the call journal, so the board and the journal cannot disagree. A snapshot is pushed on the
"wallboard" WebSocket topic whenever something changed (at most twice a second) and every few
seconds anyway; a reload or a reconnect gets the same snapshot over HTTP first.
"""

import asyncio
import contextlib
import logging
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, func, select

from cti.calls import LiveCall
from cti.db import SessionMaker
from cti.journal.models import Call
from cti.routing.config import RoutingConfig
from cti.routing.rules import QueueSnapshot
from cti.tracker import CallEvent, CallEventKind, CallTracker
from desk.agents import AgentService, AgentState
from desk.models import Staff
from desk.web.hub import Hub

logger = logging.getLogger(__name__)

RATE_WINDOW = 900.0  # seconds of arrivals behind the predicted wait


@dataclass
class DayFigures:
    """Today's figures for one queue (or all), from the journal."""

    offered: int = 0  # reached a queue
    answered: int = 0
    abandoned: int = 0
    overflowed: int = 0
    timed_out: int = 0  # queue_timeout or left_empty
    answered_in_sl: int = 0
    wait_answered: float = 0.0  # sum of waits of answered calls
    handle: float = 0.0  # sum of talk + after-call work of answered calls

    @property
    def service_level(self) -> float | None:
        """Answered within the threshold / offered (calls still waiting included)."""
        return self.answered_in_sl / self.offered if self.offered else None

    @property
    def asa(self) -> float | None:
        """Average speed of answer: mean queue wait of answered calls."""
        return self.wait_answered / self.answered if self.answered else None

    @property
    def aht(self) -> float | None:
        """Average handle time: talk + after-call work, per answered call."""
        return self.handle / self.answered if self.answered else None

    @property
    def abandon_rate(self) -> float | None:
        """Abandoned / offered."""
        return self.abandoned / self.offered if self.offered else None

    def as_json(self) -> dict[str, Any]:
        """For pages."""
        return {
            **asdict(self),
            "service_level": self.service_level,
            "asa": self.asa,
            "aht": self.aht,
            "abandon_rate": self.abandon_rate,
        }


async def day_figures(
    sessions: SessionMaker, since: datetime, sl_seconds: float
) -> dict[str, DayFigures]:
    """Today's figures per queue and under "*" for all, from the `calls` table.

    Offered: calls that reached a queue (call-backs the desk placed excluded: their caller was
    offered once already). Answered / abandoned / overflowed / timed out: by outcome.
    """
    answered = Call.outcome == "answered"
    q = (
        select(
            Call.queue,
            func.count(),
            func.sum(case((answered, 1), else_=0)),
            func.sum(case((Call.outcome == "abandoned", 1), else_=0)),
            func.sum(case((Call.outcome == "overflowed", 1), else_=0)),
            func.sum(case((Call.outcome.in_(["queue_timeout", "left_empty"]), 1), else_=0)),
            func.sum(case((answered & (Call.wait_seconds <= sl_seconds), 1), else_=0)),
            func.sum(case((answered, func.coalesce(Call.wait_seconds, 0)), else_=0)),
            func.sum(
                case(
                    (
                        answered,
                        func.coalesce(Call.talk_seconds, 0) + func.coalesce(Call.acw_seconds, 0),
                    ),
                    else_=0,
                )
            ),
        )
        .where(Call.arrived_at >= since, Call.queued_at.is_not(None), Call.callback_of.is_(None))
        .group_by(Call.queue)
    )
    out: dict[str, DayFigures] = {}
    total = DayFigures()
    async with sessions() as s:
        for row in (await s.execute(q)).all():
            f = DayFigures(
                int(row[1]),
                int(row[2] or 0),
                int(row[3] or 0),
                int(row[4] or 0),
                int(row[5] or 0),
                int(row[6] or 0),
                float(row[7] or 0),
                float(row[8] or 0),
            )
            out[row[0] or "?"] = f
            for k, v in asdict(f).items():
                setattr(total, k, getattr(total, k) + v)
    out["*"] = total
    return out


def waiting_in(
    calls: dict[str, LiveCall], queue: str | None, now: float
) -> list[tuple[LiveCall, float]]:
    """Callers in a queue now (all queues if None), with their total wait so far."""
    out = []
    for call in calls.values():
        if call.in_queue_since is not None and (queue is None or call.queue == queue):
            out.append((call, call.wait_accum + max(0.0, now - call.in_queue_since)))
    return sorted(out, key=lambda cw: -cw[1])


class WallboardService:
    """Builds snapshots and pushes them to the wallboard pages."""

    def __init__(
        self,
        sessions: SessionMaker,
        hub: Hub,
        tracker: CallTracker,
        agents: AgentService,
        routing: RoutingConfig,
        tz: Any,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.tracker = tracker
        self.agents = agents
        self.routing = routing
        self.tz = tz
        self.arrivals: dict[str, deque[float]] = defaultdict(deque)
        self.queues: set[str] = set()
        self.banners: dict[str, dict[str, Any]] = {}  # queue -> the back-up alert on show
        self.staff_names: dict[str, str] = {}
        self.figures: dict[str, DayFigures] = {}
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.pushed = 0

    # -- inputs ---------------------------------------------------------------------------------

    def on_call_event(self, event: CallEvent) -> None:
        """Tracker listener: any call change makes the board dirty."""
        if event.kind == CallEventKind.CALL_QUEUED and event.call is not None and event.call.queue:
            self.arrivals[event.call.queue].append(event.call.in_queue_since or time.time())
            self.queues.add(event.call.queue)
        self._dirty.set()

    def on_agent(self, _agent: Any) -> None:
        """Agent-service listener."""
        self._dirty.set()

    def set_banner(self, queue: str, banner: dict[str, Any] | None) -> None:
        """Show (or clear) a queue's back-up banner."""
        if banner is None:
            self.banners.pop(queue, None)
        else:
            self.banners[queue] = banner
        self._dirty.set()

    def touch(self) -> None:
        """Something else changed (announcements, roster)."""
        self._dirty.set()

    async def start(self) -> None:
        """Load staff names and recent arrivals, then run the push loop."""
        now = datetime.now(UTC)
        async with self.sessions() as s:
            for st in (await s.scalars(select(Staff).where(Staff.extension.is_not(None)))).all():
                self.staff_names[st.extension or ""] = st.name
            rows = await s.execute(
                select(Call.queue, Call.queued_at).where(
                    Call.queued_at >= now - timedelta(seconds=RATE_WINDOW),
                    Call.callback_of.is_(None),
                )
            )
            joins = sorted((at.timestamp(), queue) for queue, at in rows.all() if queue and at)
            for at_ts, queue in joins:
                if queue:
                    self.arrivals[queue].append(at_ts)
                    self.queues.add(queue)
            queues = await s.scalars(select(Call.queue).where(Call.queue.is_not(None)).distinct())
            self.queues.update(q for q in queues.all() if q)
        self._task = asyncio.create_task(self._run(), name="wallboard")

    async def close(self) -> None:
        """Stop pushing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dirty.wait(), timeout=5.0)
            self._dirty.clear()
            try:
                snapshot = await self.snapshot()
                self.hub.publish("wallboard", {"type": "wallboard", **snapshot})
                self.pushed += 1
            except Exception:
                logger.exception("wallboard snapshot failed")
            await asyncio.sleep(0.5)

    # -- figures --------------------------------------------------------------------------------

    def midnight(self) -> datetime:
        """The start of today in the desk's time zone."""
        local = datetime.now(self.tz)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)

    def arrival_rate(self, queue: str, now: float) -> float:
        """Calls per second joining the queue over the last RATE_WINDOW seconds."""
        q = self.arrivals[queue]
        while q and q[0] < now - RATE_WINDOW:
            q.popleft()
        return len(q) / RATE_WINDOW

    def queue_snapshot(self, queue: str, now: float) -> QueueSnapshot:
        """What the back-up rules look at for one queue."""
        waiting = waiting_in(self.tracker.calls, queue, now)
        members = [a for a in self.agents.agents.values() if queue in a.queues]
        ready = sum(1 for a in members if a.state == AgentState.READY)
        staffed = sum(
            1 for a in members if a.state not in (AgentState.PAUSED, AgentState.LOGGED_OUT)
        )
        fig = self.figures.get(queue)
        aht = (fig.aht if fig else None) or 180.0
        return QueueSnapshot(
            queue,
            len(waiting),
            waiting[0][1] if waiting else 0.0,
            ready,
            staffed,
            self.arrival_rate(queue, now),
            aht,
        )

    async def snapshot(self) -> dict[str, Any]:
        """The whole board."""
        now = time.time()
        self.figures = await day_figures(
            self.sessions, self.midnight(), self.routing.service_level_seconds
        )
        queues = sorted(
            self.queues
            | {q for q in self.figures if q != "*"}
            | {q for a in self.agents.agents.values() for q in a.queues}
        )
        rows = []
        for q in queues:
            snap = self.queue_snapshot(q, now)
            rows.append(
                {
                    "queue": q,
                    "waiting": snap.waiting,
                    "longest_wait": round(snap.longest_wait, 1),
                    "agents": self._agent_counts(q),
                    "today": self.figures.get(q, DayFigures()).as_json(),
                    "arrival_rate_per_hour": round(snap.arrival_rate * 3600, 1),
                    "backed_up": self.banners.get(q),
                }
            )
        waiting_all = waiting_in(self.tracker.calls, None, now)
        total = {
            "queue": "*",
            "waiting": len(waiting_all),
            "longest_wait": round(waiting_all[0][1], 1) if waiting_all else 0.0,
            "agents": self._agent_counts(None),
            "today": self.figures["*"].as_json(),
        }
        agents = []
        for a in sorted(self.agents.agents.values(), key=lambda a: a.ext):
            call = next(
                (
                    c
                    for c in self.tracker.calls.values()
                    if c.agent == a.ext and c.talk_ended_at is None and c.answered_at is not None
                ),
                None,
            )
            agents.append(
                {
                    **a.as_json(),
                    "name": self.staff_names.get(a.ext, ""),
                    "call": {
                        "caller_number": call.caller_number,
                        "incident_number": call.incident_number,
                        "answered_at": call.answered_at,
                    }
                    if call
                    else None,
                }
            )
        from desk.announcements import active as active_announcements  # (imports desk.web.keys)

        async with self.sessions() as s:
            active = await active_announcements(s, datetime.now(UTC))
        return {
            "at": now,
            "service_level_seconds": self.routing.service_level_seconds,
            "thresholds": self.routing.thresholds,
            "queues": rows,
            "total": total,
            "agents": agents,
            "waiting_calls": [
                {
                    "uniqueid": c.uniqueid,
                    "queue": c.queue,
                    "caller_number": c.caller_number,
                    "incident_number": c.incident_number,
                    "wait": round(w, 1),
                    "overflowed": c.overflowed,
                }
                for c, w in waiting_all[:50]
            ],
            "banners": list(self.banners.values()),
            "announcements": [
                {"kind": a.kind, "title": a.title, "text_zh": a.text_zh, "text_en": a.text_en}
                for a in active
            ],
        }

    def _agent_counts(self, queue: str | None) -> dict[str, int]:
        counts = dict.fromkeys((s.value for s in AgentState), 0)
        for a in self.agents.agents.values():
            if queue is None or queue in a.queues:
                counts[a.state.value] += 1
        return counts
