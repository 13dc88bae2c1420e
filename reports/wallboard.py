"""The desk lead's wallboard (5.2.1, 6.3.1.4) as data: per queue and in total, callers waiting and
the longest wait, agents by state, and today's figures, with a row per agent, the waiting calls,
the back-up banners and the announcements.

Today's figures are `reports.metrics.call_figures` over today's calls in the desk's time zone —
the very computation the daily report makes — so the board and the report cannot disagree. Live
figures come from cti/live. No I/O but the database reads; the web layer pushes the result.
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import select

from cti.asterisks import DEFAULT_ASTERISK
from cti.db import SessionMaker
from cti.journal.models import Call
from cti.live.agents import AgentService
from cti.live.model import AgentState
from cti.live.queues import QueueBook
from desk import sla
from desk.announcements import active as active_announcements
from desk.models import Staff
from reports.build import day_volumes, forecast_volumes
from reports.metrics import CallFigures, call_figures


@dataclass(frozen=True)
class MetricSettings:
    """The thresholds every figure of the day is computed with (one setting each)."""

    sl_seconds: float = 20.0
    short_abandon: float = 5.0


def day_start(tz: tzinfo, now: datetime | None = None) -> datetime:
    """The start of today in the desk's time zone (as UTC)."""
    local = (now or datetime.now(UTC)).astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


async def today_figures(
    sessions: SessionMaker, tz: tzinfo, metrics: MetricSettings, now: datetime | None = None
) -> dict[str, CallFigures]:
    """Today's figures per queue and under "*" for all: the daily report's own computation."""
    start = day_start(tz, now)
    async with sessions() as s:
        by_queue = await call_figures(
            s,
            start,
            start + timedelta(days=1),
            sl_seconds=metrics.sl_seconds,
            short_abandon=metrics.short_abandon,
            by=Call.queue,
        )
    out: dict[str, CallFigures] = {}
    total = CallFigures()
    for queue, figures in by_queue.items():
        total.add(figures)
        if queue:  # calls that never queued have no queue: in the total only
            out[str(queue)] = figures
    out["*"] = total
    return out


async def today_by_asterisk(
    sessions: SessionMaker,
    tz: tzinfo,
    metrics: MetricSettings,
    now: datetime | None = None,
    asterisks: Sequence[str] | None = None,
) -> dict[tuple[str, str], CallFigures]:
    """Today's figures per (asterisk, queue) ('' for calls that never queued), of these
    Asterisks (None: all): the daily report's own computation, split by server."""
    start = day_start(tz, now)
    async with sessions() as s:
        grouped = await call_figures(
            s,
            start,
            start + timedelta(days=1),
            sl_seconds=metrics.sl_seconds,
            short_abandon=metrics.short_abandon,
            by=(Call.asterisk, Call.queue),
            asterisks=asterisks,
        )
    return {(str(a), str(q or "")): f for (a, q), f in grouped.items()}


@dataclass(frozen=True)
class LiveSite:
    """One Asterisk's live state as the board reads it: its name, its site, its queues and
    agents."""

    asterisk: str
    site: str
    queues: QueueBook
    agents: AgentService


@dataclass
class HandleTimeCache:
    """Today's AHT per queue for the routing executor's predicted wait (cti/routing/ports.py),
    read at most every `ttl` seconds."""

    sessions: SessionMaker
    tz: tzinfo
    metrics: MetricSettings
    ttl: float = 10.0
    _at: float = 0.0
    _figures: dict[str, CallFigures] = field(default_factory=dict)

    async def aht(self, queue: str) -> float | None:
        """Today's average handle time of `queue`, in seconds."""
        if time.monotonic() - self._at > self.ttl:
            self._figures = await today_figures(self.sessions, self.tz, self.metrics)
            self._at = time.monotonic()
        figures = self._figures.get(queue)
        return figures.aht if figures else None


@dataclass
class DayChart:
    """Today's offered calls per half-hour against the forecast (the forward-looking report's:
    the last four weeks' same weekday and half-hour, averaged). The forecast is read once a
    day, today's volume at most every `ttl` seconds."""

    sessions: SessionMaker
    tz: tzinfo
    ttl: float = 10.0
    _day: str = ""
    _forecast: list[float] = field(default_factory=list)
    _at: float = 0.0
    _today: list[int] = field(default_factory=list)

    async def chart(self, now: datetime | None = None) -> dict[str, Any]:
        """{"day", "slots": ["00:00", ...], "calls": [...], "forecast": [...]} for today."""
        start = day_start(self.tz, now).astimezone(self.tz)
        day = start.date().isoformat()
        async with self.sessions() as s:
            if day != self._day:
                counts = await forecast_volumes(s, start, self.tz)
                wd = start.weekday()
                self._forecast = [round(counts[(wd, slot)] / 4, 2) for slot in range(48)]
                self._day, self._at = day, 0.0
            if time.monotonic() - self._at > self.ttl:
                self._today = await day_volumes(s, start, self.tz)
                self._at = time.monotonic()
        return {
            "day": day,
            "slots": [f"{i // 2:02d}:{i % 2 * 30:02d}" for i in range(48)],
            "calls": list(self._today),
            "forecast": list(self._forecast),
        }


def _agent_counts(agents: AgentService, queue: str | None) -> dict[str, int]:
    counts = dict.fromkeys((s.value for s in AgentState), 0)
    for a in agents.agents.values():
        if queue is None or queue in a.queues:
            counts[a.state.value] += 1
    return counts


def _sum_counts(counts: Sequence[dict[str, int]]) -> dict[str, int]:
    out = dict.fromkeys((s.value for s in AgentState), 0)
    for c in counts:
        for k, v in c.items():
            out[k] += v
    return out


def _summary(
    label: str,
    live: Sequence[LiveSite],
    figures: Mapping[tuple[str, str], CallFigures],
    now: float,
) -> dict[str, Any]:
    """Waiting, longest wait, agents and today's figures of these Asterisks together."""
    names = {x.asterisk for x in live}
    waiting = sorted((w for x in live for _, w in x.queues.waiting(None, now)), reverse=True)
    today = CallFigures()
    for (asterisk, _queue), f in figures.items():
        if asterisk in names:
            today.add(f)
    return {
        "queue": "*",
        "site": label,
        "asterisks": sorted(names),
        "waiting": len(waiting),
        "longest_wait": round(waiting[0], 1) if waiting else 0.0,
        "agents": _sum_counts([_agent_counts(x.agents, None) for x in live]),
        "today": today.as_dict(),
    }


async def snapshot(
    sessions: SessionMaker,
    live: Sequence[LiveSite],
    tz: tzinfo,
    metrics: MetricSettings,
    thresholds: Mapping[str, tuple[float, float]],
    banners: Mapping[str, Mapping[str, Any]],
    day: datetime | None = None,
    chart: DayChart | None = None,
    site: str | None = None,
) -> dict[str, Any]:
    """The whole board, across every Asterisk or of one site's (`day`: a moment of the day
    whose figures to show; default now). A queue is one row per Asterisk it is on: two sites'
    "helpdesk" queues are two queues."""
    now = time.time()
    every = list(live)
    sites = list(dict.fromkeys(x.site for x in every))
    if site is not None:
        live = [x for x in every if x.site == site]
    figures = await today_by_asterisk(sessions, tz, metrics, day)
    rows = []
    for x in live:
        mine = {q for (a, q) in figures if a == x.asterisk and q}
        for q in sorted(x.queues.queues() | mine):
            waiting = x.queues.waiting(q, now)
            rows.append(
                {
                    "queue": q,
                    "asterisk": x.asterisk,
                    "site": x.site,
                    "waiting": len(waiting),
                    "longest_wait": round(waiting[0][1], 1) if waiting else 0.0,
                    "agents": _agent_counts(x.agents, q),
                    "today": figures.get((x.asterisk, q), CallFigures()).as_dict(),
                    "arrival_rate_per_hour": round(x.queues.arrival_rate(q, now) * 3600, 1),
                    # Back-up banners are the default Asterisk's routing (cti/routing).
                    "backed_up": banners.get(q) if x.asterisk == DEFAULT_ASTERISK else None,
                }
            )
    waiting_all = sorted(
        ((x, c, w) for x in live for c, w in x.queues.waiting(None, now)),
        key=lambda item: item[2],
        reverse=True,
    )
    async with sessions() as s:
        staff_names = {
            st.extension: st.name
            for st in (await s.scalars(select(Staff).where(Staff.extension.is_not(None)))).all()
        }
        active = await active_announcements(s, datetime.now(UTC))
        incidents = await sla.board(s, datetime.now(UTC))
    agent_rows = []
    for x in live:
        talking = {c.agent: c for c in x.queues.tracker.calls.values() if c.talking and c.agent}
        for a in sorted(x.agents.agents.values(), key=lambda a: a.ext):
            call = talking.get(a.ext)
            view = a.view()
            agent_rows.append(
                {
                    "ext": a.ext,
                    "asterisk": x.asterisk,
                    "site": x.site,
                    "state": view.state.value,
                    "reason": view.reason,
                    "since": view.since,
                    "wrapup_until": view.wrapup_until,
                    "queues": list(view.queues),
                    "name": staff_names.get(a.ext, ""),
                    "call": {
                        "caller_number": call.caller_number,
                        "caller_name": call.caller_name,
                        "incident_number": call.incident_number,
                        "answered_at": call.answered_at,
                        "uniqueid": call.uniqueid,
                        "on_hold": call.on_hold_since is not None,
                        "hold_seconds": round(call.held(now), 1),
                    }
                    if call
                    else None,
                }
            )
    total = _summary("*", live, figures, now)
    if site is None:
        # Every call of today, an Asterisk no longer configured included, as the report counts.
        today = CallFigures()
        for f in figures.values():
            today.add(f)
        total["today"] = today.as_dict()
    else:
        total["site"] = site
    return {
        "at": now,
        # The desk's clock: the page shows the time and "today" in this zone, not the screen's.
        "timezone": str(tz),
        "today": day_start(tz, day).astimezone(tz).date().isoformat(),
        "chart": await chart.chart(day) if chart is not None else None,
        "service_level_seconds": metrics.sl_seconds,
        "thresholds": dict(thresholds),
        "queues": rows,
        "total": total,
        # Every site's own total (the page's site filter), and the one shown (None: all).
        "site": site,
        "sites": [
            _summary(name, [x for x in every if x.site == name], figures, now) for name in sites
        ],
        "agents": agent_rows,
        "waiting_calls": [
            {
                "uniqueid": c.uniqueid,
                "asterisk": x.asterisk,
                "site": x.site,
                "queue": c.queue,
                "caller_number": c.caller_number,
                "incident_number": c.incident_number,
                "wait": round(w, 1),
                "overflowed": c.overflowed,
            }
            for x, c, w in waiting_all[:50]
        ],
        "banners": [dict(b) for b in banners.values()],
        # Open incidents against their SLA targets (desk/sla.py): breached, due soon, the worst.
        "incidents": incidents,
        "announcements": [
            {"kind": a.kind, "title": a.title, "text_zh": a.text_zh, "text_en": a.text_en}
            for a in active
        ],
    }


def of_site(board: Mapping[str, Any], site: str) -> dict[str, Any]:
    """One site's board from the board across every site (what `snapshot(..., site=site)`
    makes, from a board made elsewhere: the nodes that do not own the live state have only
    the owner's last board)."""

    def mine(key: str) -> list[Any]:
        return [x for x in board.get(key) or [] if x.get("site") == site]

    totals = [dict(t) for t in board.get("sites") or [] if t.get("site") == site]
    total = totals[0] if totals else {"queue": "*", "site": site, "asterisks": []}
    return {
        **board,
        "queues": mine("queues"),
        "agents": mine("agents"),
        "waiting_calls": mine("waiting_calls"),
        "total": {**total, "site": site},
        "site": site,
    }
