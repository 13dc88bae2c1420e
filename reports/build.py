"""Reports (6.5): daily, weekly, monthly and forward-looking, for any period and queue; every
figure from the call journal and the desk records (reports/metrics.py), with the report's
coverage (6.5.4): calls included against calls Asterisk's queue_log saw, AMI outages, and
reconciled records."""

import asyncio
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select

from cti.db import SessionMaker
from cti.erlang import agents_needed
from cti.journal.models import AgentStateSpan, Call, LinkOutage
from desk.models import ConfigItem, Incident, SurveyResponse
from reports.coverage import queue_log_seen
from reports.metrics import (
    CARDS,
    CallFigures,
    IncidentFigures,
    Satisfaction,
    call_figures,
    incident_figures,
    satisfaction,
)
from reports.slots import period_figures

KINDS = ("daily", "weekly", "monthly", "forward", "custom")
MAX_CUSTOM_DAYS = 366
AVAILABLE = ("ready", "ringing", "on_call", "wrap_up")


@dataclass(frozen=True)
class Period:
    """A report's period, in the desk's time zone: [start, end)."""

    kind: str
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        last = (self.end - timedelta(seconds=1)).date()
        return (
            f"{self.start.date()}" if last == self.start.date() else f"{self.start.date()} – {last}"
        )


def period_for(kind: str, day: date, tz: ZoneInfo, end_day: date | None = None) -> Period:
    """The period of a report kind that contains `day` (forward: the week after `day`'s week)."""
    if kind not in KINDS:
        raise ValueError(f"report kind must be one of {', '.join(KINDS)}")
    if kind == "daily":
        start, end = day, day + timedelta(days=1)
    elif kind in ("weekly", "forward"):
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    elif kind == "monthly":
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        if end_day is None or end_day < day:
            raise ValueError("a custom report needs an end date on or after its start")
        if (end_day - day).days >= MAX_CUSTOM_DAYS:
            # A report holds a row per day: 7,000 years took 16 s and 1.5 GB to make.
            raise ValueError(f"end: a custom report covers at most {MAX_CUSTOM_DAYS} days")
        start, end = day, end_day + timedelta(days=1)
    return Period(kind, datetime.combine(start, time(), tz), datetime.combine(end, time(), tz))


@dataclass
class ReportOptions:
    """What a report is computed with."""

    sl_seconds: float = 20
    short_abandon: float = 5
    queue: str | None = None
    brief: bool = False
    lang: str = "zh"
    queue_log: Path | None = None
    # Site -> the names of its Asterisks (cti/asterisks.py), and the site this report is of
    # (None: every site, with each site's own figures beside the total).
    sites: dict[str, tuple[str, ...]] = field(default_factory=dict)
    site: str | None = None
    targets: dict[str, float] = field(
        default_factory=lambda: {
            "service_level": 0.8,
            "asa": 20,
            "net_abandon_rate": 0.05,
            "answer_rate": 0.9,
            "first_line": 0.7,
            "satisfaction": 0.9,
            "aht": 300,
        }
    )


def _utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


async def build_report(
    sessions: SessionMaker, period: Period, opts: ReportOptions
) -> dict[str, Any]:
    """Everything a report shows, as plain data (rendered by reports/render.py)."""
    start, end = _utc(period.start), _utc(period.end)
    asterisks: tuple[str, ...] | None = None
    if opts.site is not None:
        if opts.site not in opts.sites:
            raise ValueError(f"site: no site {opts.site!r} (sites: {', '.join(opts.sites)})")
        asterisks = opts.sites[opts.site]
    kw: dict[str, Any] = {
        "sl_seconds": opts.sl_seconds,
        "short_abandon": opts.short_abandon,
        "queue": opts.queue,
    }
    async with sessions() as s:
        # The call figures by queue and UTC half-hour (the total, queues, volume and trend are
        # sums of these groups) and by agent, from the half-hour table (reports/slots.py).
        figures = await period_figures(s, start, end, **kw, asterisks=asterisks)
        by_site = await _by_site(s, start, end, opts, asterisks, kw)
        total, by_queue, hours, trend = _breakdowns(figures.by_slot, period)
        by_agent = figures.by_agent
        incidents = await incident_figures(s, start, end)
        sat_agents = await satisfaction(s, start, end, by_agent=True)
        sat = _total_satisfaction(sat_agents)
        available = await _available(s, start, end)
        categories = await _categories(s, start, end)
        coverage = await _coverage(s, start, end, opts.queue_log, total)
        unresolved = await _unresolved(s) if period.kind == "daily" and not opts.brief else []
        trend = trend if period.kind in ("weekly", "monthly", "custom") else []
        availability = await _availability(s) if period.kind in ("weekly", "monthly") else []
        forward = await _forward(s, period, opts) if period.kind == "forward" else None
    metrics = _metrics(total, incidents, sat)
    misses = [
        {"metric": k, "value": metrics[k], "target": t}
        for k, t in opts.targets.items()
        if metrics.get(k) is not None
        and ((metrics[k] < t) != (k in ("asa", "net_abandon_rate", "aht")))
    ]
    agents: list[dict[str, Any]] = []
    for ext, f in sorted(by_agent.items(), key=lambda kv: str(kv[0])):
        if not ext:
            continue
        avail = available.get(ext, 0.0)
        agent_sat = sat_agents.get(ext)
        agents.append(
            {
                "agent": ext,
                "answered": f.answered,
                "talk": f.talk,
                "hold": f.hold,
                "acw": f.acw,
                "aht": f.aht,
                "available_seconds": avail,
                "occupancy": (f.talk + f.acw) / avail if avail else None,
                "satisfaction": agent_sat.share_satisfied if agent_sat else None,
                "responses": agent_sat.responses if agent_sat else 0,
            }
        )
    handle = sum(a["talk"] + a["acw"] for a in agents)
    avail_all = sum(available.values())
    metrics["occupancy"] = handle / avail_all if avail_all else None
    return {
        "kind": period.kind,
        "period": {
            "start": period.start.isoformat(),
            "end": period.end.isoformat(),
            "label": period.label,
        },
        "generated_at": datetime.now(UTC).isoformat(),
        "options": {
            "sl_seconds": opts.sl_seconds,
            "short_abandon": opts.short_abandon,
            "queue": opts.queue,
            "brief": opts.brief,
            "lang": opts.lang,
            "site": opts.site,
        },
        "metrics": metrics,
        "calls": total.as_dict() if total else {},
        "by_queue": {str(k): v.as_dict() for k, v in by_queue.items()},
        # Each site's own figures (several Asterisks), or {} with one.
        "by_site": by_site,
        "agents": agents,
        "incidents": incidents.__dict__ | {"first_line_rate": incidents.first_line_rate},
        "satisfaction": sat.__dict__ | {"share": sat.share_satisfied, "mean": sat.mean}
        if sat
        else {},
        "hours": hours,
        "categories": categories,
        "misses": misses,
        "unresolved": unresolved,
        "trend": trend,
        "availability": availability,
        "forward": forward,
        "coverage": coverage,
        "cards": [c.__dict__ for c in CARDS],
    }


async def _by_site(
    s: Any,
    start: datetime,
    end: datetime,
    opts: ReportOptions,
    asterisks: tuple[str, ...] | None,
    kw: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Each site's call figures and headline metrics, when there is more than one site: the
    same computation as the total, grouped by the calls' Asterisk. Calls of an Asterisk no
    longer configured are under its own name."""
    if len(opts.sites) < 2:
        return {}
    site_of = {name: site for site, names in opts.sites.items() for name in names}
    grouped = await call_figures(s, start, end, **kw, by=Call.asterisk, asterisks=asterisks)
    sums: dict[str, CallFigures] = {}
    for name, f in grouped.items():
        sums.setdefault(site_of.get(str(name), str(name)), CallFigures()).add(f)
    return {
        site: {"asterisks": list(opts.sites.get(site, (site,))), "calls": f.as_dict(),
               "metrics": {k: v for k, v in _metrics(f, _NO_INCIDENTS, None).items()
                           if k in SITE_METRICS}}
        for site, f in sorted(sums.items())
    }  # fmt: skip


# The call metrics a site's figures carry (incidents and surveys belong to the desk, not a site).
SITE_METRICS = ("offered", "answered", "service_level", "asa", "aht", "abandon_rate",
                "net_abandon_rate", "answer_rate")  # fmt: skip
_NO_INCIDENTS = IncidentFigures()


def _metrics(total: Any, incidents: Any, sat: Any) -> dict[str, Any]:
    f = total
    return {
        "offered": f.offered if f else 0,
        "answered": f.answered if f else 0,
        "service_level": f.service_level if f else None,
        "asa": f.asa if f else None,
        "aht": f.aht if f else None,
        "abandon_rate": f.abandon_rate if f else None,
        "net_abandon_rate": f.net_abandon_rate if f else None,
        "answer_rate": f.answer_rate if f else None,
        "first_line": incidents.first_line_rate,
        "satisfaction": sat.share_satisfied if sat else None,
        "satisfaction_mean": sat.mean if sat else None,
        "survey_response_rate": (sat.responses / f.answered) if sat and f and f.answered else None,
    }


def _utc_slot(session: Any) -> Any:
    """SQL: a call's arrival as "YYYY-MM-DD HH:M" in UTC (M = tens of minutes, 0-5)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Call.arrived_at), "YYYY-MM-DD HH24:MI").op("||")(
            ""
        )
    return func.strftime("%Y-%m-%d %H:%M", Call.arrived_at)


async def _slot_counts(
    s: Any, start: datetime, end: datetime, queue: str | None, queued: bool
) -> list[Any]:
    """(local datetime of the half-hour, calls) — counted in SQL per UTC half-hour, then moved to
    local time (exact for zones whose offset is a multiple of 30 minutes)."""
    half = _half_hour(s)
    stmt = (
        select(half, func.count())
        .where(Call.arrived_at >= start, Call.arrived_at < end, Call.callback_of.is_(None))
        .group_by(half)
    )
    if queue:
        stmt = stmt.where(Call.queue == queue)
    if queued:
        stmt = stmt.where(Call.queued_at.is_not(None))
    out: dict[datetime, int] = defaultdict(int)
    for key, n in (await s.execute(stmt)).all():
        out[_slot_time(key)] += int(n)
    return sorted(out.items())


def _half_hour(session: Any) -> Any:
    """SQL: the UTC half-hour a call arrived in, as "YYYY-MM-DD HH:M" (M: tens of minutes)."""
    return func.substr(_utc_slot(session), 1, 15)


def _slot_time(key: str) -> datetime:
    hour = datetime.strptime(key[:13], "%Y-%m-%d %H").replace(tzinfo=UTC)
    return hour + timedelta(minutes=30 if key[14:15] >= "3" else 0)


def _total_satisfaction(by_agent: dict[str, Satisfaction]) -> Satisfaction | None:
    """The period's survey figures: the sum of every agent's."""
    if not by_agent:
        return None
    total = Satisfaction()
    for a in by_agent.values():
        total.responses += a.responses
        total.satisfied += a.satisfied
        total.score_sum += a.score_sum
    return total


def _breakdowns(groups: dict[tuple[Any, datetime], CallFigures], period: Period) -> tuple[Any, ...]:
    """Total, per queue, volume (per local hour for a day, else per day) and the daily trend,
    from the (queue, UTC half-hour start) groups (exact for zones offset by whole half-hours)."""
    total = CallFigures()
    by_queue: dict[Any, CallFigures] = defaultdict(CallFigures)
    by_day: dict[date, CallFigures] = defaultdict(CallFigures)
    tz = period.start.tzinfo
    daily = period.kind == "daily"
    n = 24 if daily else max(1, (period.end.date() - period.start.date()).days)
    volume = [0] * n
    for (queue, slot), f in groups.items():
        total.add(f)
        by_queue[queue].add(f)
        local = slot.astimezone(tz)
        by_day[local.date()].add(f)
        i = local.hour if daily else (local.date() - period.start.date()).days
        if 0 <= i < n:
            volume[i] += f.arrived
    trend = []
    day = period.start.date()
    while day < period.end.date():
        f = by_day.get(day, CallFigures())
        trend.append(
            {
                "day": day.isoformat(),
                "offered": f.offered,
                "answered": f.answered,
                "service_level": f.service_level,
                "asa": f.asa,
            }
        )
        day += timedelta(days=1)
    return (total if groups else None), dict(by_queue), volume, trend


async def _available(s: Any, start: datetime, end: datetime) -> dict[str, float]:
    """Seconds each agent was available (ready, ringing, on a call, wrap-up) within the period."""
    rows = await s.execute(
        select(AgentStateSpan.ext, AgentStateSpan.started_at, AgentStateSpan.ended_at).where(
            AgentStateSpan.state.in_(AVAILABLE),
            AgentStateSpan.started_at < end,
            or_(AgentStateSpan.ended_at.is_(None), AgentStateSpan.ended_at > start),
        )
    )
    out: dict[str, float] = defaultdict(float)
    now = datetime.now(UTC)
    for ext, a, b in rows.all():
        out[ext] += max(0.0, (min(b or now, end) - max(a, start)).total_seconds())
    return dict(out)


async def _categories(s: Any, start: datetime, end: datetime) -> dict[str, Any]:
    rows = await s.execute(
        select(
            Incident.category,
            func.count(),
            func.sum(case((Incident.escalated_to.is_not(None), 1), else_=0)),
        )
        .where(Incident.created_at >= start, Incident.created_at < end)
        .group_by(Incident.category)
    )
    cats = [(c or "-", int(n), int(e or 0)) for c, n, e in rows.all()]
    return {
        "most_frequent": [
            {"category": c, "count": n} for c, n, _ in sorted(cats, key=lambda x: -x[1])[:10]
        ],
        "most_escalated": [
            {"category": c, "escalated": e} for c, _, e in sorted(cats, key=lambda x: -x[2]) if e
        ][:10],
    }


async def _unresolved(s: Any) -> list[dict[str, Any]]:
    rows = await s.scalars(
        select(Incident)
        .where(Incident.state.not_in(["resolved", "closed"]))
        .order_by(Incident.created_at)
    )
    return [
        {
            "number": i.number,
            "created_at": i.created_at.isoformat(),
            "state": i.state,
            "category": i.category,
            "priority": i.priority,
            "requester": i.requester_name,
            "assignee": i.assignee,
        }
        for i in rows.all()
    ]


async def _availability(s: Any) -> list[dict[str, Any]]:
    """Service availability as the CMDB states it now (6.5.3 weekly: service availability)."""
    rows = await s.scalars(select(ConfigItem).order_by(ConfigItem.service, ConfigItem.name))
    return [
        {"name": c.name, "service": c.service, "status": c.status, "owner": c.owner}
        for c in rows.all()
    ]


async def forecast_volumes(s: Any, before: datetime, tz: Any) -> Counter[tuple[int, int]]:
    """The forecast of offered calls per (local weekday, half-hour slot 0-47): the last four
    weeks before `before`, same weekday and half-hour, summed (divide by 4 for the average).
    The forward-looking report and the wallboard's chart both use it."""
    counts: Counter[tuple[int, int]] = Counter()
    for at, n in await _slot_counts(s, _utc(before - timedelta(days=28)), _utc(before), None, True):
        local = at.astimezone(tz)
        counts[(local.weekday(), local.hour * 2 + local.minute // 30)] += n
    return counts


async def day_volumes(s: Any, start: datetime, tz: Any) -> list[int]:
    """Offered calls in each local half-hour (48) of the day that starts at `start`."""
    out = [0] * 48
    for at, n in await _slot_counts(s, _utc(start), _utc(start + timedelta(days=1)), None, True):
        local = at.astimezone(tz)
        out[local.hour * 2 + local.minute // 30] += n
    return out


async def _forward(s: Any, period: Period, opts: ReportOptions) -> dict[str, Any]:
    """Next week's agents per half-hour by Erlang C from the last four weeks' volume (same weekday
    and half-hour, averaged) and last week's handle time; last week's major request areas; poorly
    rated incidents; components with repeated faults."""
    counts = await forecast_volumes(s, period.start, period.start.tzinfo)
    last_week = (_utc(period.start - timedelta(days=7)), _utc(period.start))
    lw = (
        await call_figures(
            s, *last_week, sl_seconds=opts.sl_seconds, short_abandon=opts.short_abandon
        )
    ).get("*")
    aht = (lw.aht if lw else None) or 180.0
    plan: list[dict[str, Any]] = []
    for wd in range(7):
        for slot in range(48):
            volume = counts[(wd, slot)] / 4
            if volume <= 0:
                continue
            r = agents_needed(volume / 1800, aht, 0.8, opts.sl_seconds)
            plan.append(
                {
                    "weekday": wd,
                    "slot": f"{slot // 2:02d}:{slot % 2 * 30:02d}",
                    "calls": round(volume, 2),
                    "agents": r.agents,
                    "service_level": r.service_level,
                    "asa": r.asa,
                }
            )
    cats = await _categories(s, *last_week)
    poor = await s.execute(
        select(Incident.number, Incident.category, SurveyResponse.score)
        .join(SurveyResponse, SurveyResponse.incident_number == Incident.number)
        .where(
            SurveyResponse.at >= last_week[0],
            SurveyResponse.at < last_week[1],
            SurveyResponse.score <= 2,
        )
    )
    repeated = await s.execute(
        select(Incident.config_item, func.count())
        .where(
            and_(
                Incident.created_at >= _utc(period.start - timedelta(days=28)),
                Incident.config_item.is_not(None),
                Incident.type == "fault",
            )
        )
        .group_by(Incident.config_item)
        .having(func.count() >= 2)
        .order_by(func.count().desc())
    )
    return {
        "aht": aht,
        "staffing": plan,
        "peak_agents": max((p["agents"] for p in plan), default=0),
        "major_requests": cats["most_frequent"],
        "poorly_rated": [{"number": n, "category": c, "score": sc} for n, c, sc in poor.all()],
        "repeated_faults": [{"config_item": ci, "faults": n} for ci, n in repeated.all()],
    }


async def _coverage(
    s: Any, start: datetime, end: datetime, queue_log: Path | None, total: CallFigures | None
) -> dict[str, Any]:
    """6.5.4: how complete the data is."""
    journal = total.offered if total else 0
    reconciled = total.reconciled if total else 0
    outages = (
        await s.execute(
            select(LinkOutage.started_at, LinkOutage.ended_at).where(
                LinkOutage.started_at < end,
                or_(LinkOutage.ended_at.is_(None), LinkOutage.ended_at > start),
            )
        )
    ).all()
    log = None
    if queue_log is not None:
        log = await asyncio.to_thread(queue_log_seen, queue_log, start.timestamp(), end.timestamp())
    seen = log.offered if log is not None else None
    gap = sum(((b or end) - a).total_seconds() for a, b in outages)
    return {
        "journal_offered": int(journal or 0),
        "queue_log_offered": seen,
        "queue_log_unreadable": log.unreadable if log is not None else None,
        "complete": None if seen is None else seen <= int(journal or 0),
        "reconciled": int(reconciled or 0),
        "outages": len(outages),
        "outage_seconds": math.floor(gap),
    }
