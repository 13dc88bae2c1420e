"""The clause-7 metrics: each one a published card (Appendix B style) and one SQL computation
over the call journal and the desk records, so every figure can be traced to its rows.

Call classes (a call is in exactly one; `offered` is every call that reached a queue):
  answered        an agent answered it from the queue
  abandoned       the caller hung up while queued (short: within `short_abandon` seconds)
  timed out       the queue's timeout or an emptied queue ended the wait (queue_timeout, left_empty)
  overflowed      moved on to a mobile, IM responder or call-back (see `calls.overflows`)
  ended in IVR    never queued: not offered, reported separately
Call-back legs the desk placed (`callback_of` set) are not offered again.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.journal.models import Call
from desk.models import Incident, SurveyResponse


@dataclass(frozen=True)
class MetricCard:
    """A metric's definition as published in every report's footer and in the docs."""

    key: str
    name_zh: str
    name_en: str
    definition: str
    formula: str
    source: str
    period: str
    target: str
    owner: str


CARDS: tuple[MetricCard, ...] = tuple(
    MetricCard(**card)
    for card in yaml.safe_load((Path(__file__).parent / "cards.yaml").read_text("utf-8"))
)


@dataclass
class CallFigures:
    """Counts and sums over the calls of a period (one queue, one agent, or all)."""

    arrived: int = 0
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    timed_out: int = 0
    overflowed: int = 0
    ended_in_ivr: int = 0
    voicemail: int = 0
    answered_in_sl: int = 0
    wait_answered: float = 0.0
    talk: float = 0.0
    acw: float = 0.0
    hold: float = 0.0  # the part of `talk` the callers spent on hold
    reconciled: int = 0

    def rate(self, num: float, den: float) -> float | None:
        """num ÷ den, or None for an empty denominator."""
        return num / den if den else None

    @property
    def asa(self) -> float | None:
        return self.rate(self.wait_answered, self.answered)

    @property
    def aht(self) -> float | None:
        # talk_seconds runs from answer to the talk's end, hold included (as Asterisk counts
        # it): talk net of hold + hold + after-call work.
        return self.rate((self.talk - self.hold) + self.hold + self.acw, self.answered)

    @property
    def average_hold(self) -> float | None:
        return self.rate(self.hold, self.answered)

    @property
    def service_level(self) -> float | None:
        return self.rate(self.answered_in_sl, self.offered - self.short_abandoned)

    @property
    def abandon_rate(self) -> float | None:
        return self.rate(self.abandoned, self.offered)

    @property
    def net_abandon_rate(self) -> float | None:
        return self.rate(self.abandoned - self.short_abandoned, self.offered - self.short_abandoned)

    @property
    def answer_rate(self) -> float | None:
        return self.rate(self.answered, self.offered)

    def add(self, other: "CallFigures") -> None:
        """Add another group's counts and sums (every figure is additive)."""
        for name in CALL_FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        """Counts, sums and the derived metrics."""
        out = dict(self.__dict__)
        for key in (
            "asa",
            "aht",
            "average_hold",
            "service_level",
            "abandon_rate",
            "net_abandon_rate",
            "answer_rate",
        ):
            out[key] = getattr(self, key)
        return out


CALL_FIELDS = tuple(CallFigures.__dataclass_fields__)


def call_columns(sl_seconds: float, short_abandon: float) -> list[Any]:
    """The SQL of every CallFigures field, in CALL_FIELDS order, over `calls` rows."""
    o = Call.outcome
    queued = Call.queued_at.is_not(None)
    ans = o == "answered"

    def count(cond: Any) -> Any:
        return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)

    return [
        func.count(),
        count(queued),
        count(ans),
        count(o == "abandoned"),
        count(and_(o == "abandoned", Call.wait_seconds < short_abandon)),
        count(o.in_(["queue_timeout", "left_empty", "queue_full"])),
        count(o == "overflowed"),
        count(o.in_(["ended_in_ivr", "transferred"]) & ~queued),
        count(o == "voicemail"),
        count(and_(ans, Call.wait_seconds <= sl_seconds)),
        func.coalesce(func.sum(case((ans, Call.wait_seconds), else_=0)), 0),
        func.coalesce(func.sum(case((ans, Call.talk_seconds), else_=0)), 0),
        func.coalesce(func.sum(case((ans, Call.acw_seconds), else_=0)), 0),
        func.coalesce(func.sum(case((ans, Call.hold_seconds), else_=0)), 0),
        count(Call.source == "reconciled"),
    ]


def figures_of(row: Any) -> CallFigures:
    """CallFigures from the values of call_columns (or of their sums), in CALL_FIELDS order."""
    v = list(row)
    f = CallFigures()
    for name, value in zip(CALL_FIELDS, v, strict=True):
        setattr(
            f,
            name,
            float(value) if name in ("wait_answered", "talk", "acw", "hold") else int(value),
        )
    return f


async def call_figures(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    sl_seconds: float = 20,
    short_abandon: float = 5,
    by: Any = None,
    queue: str | None = None,
    asterisks: Sequence[str] | None = None,
) -> dict[Any, CallFigures]:
    """Figures for calls that ended, having arrived in [start, end), grouped by a column or a
    tuple of columns (None: one group "*"); of these Asterisks' calls only (None: all)."""
    keys = list(by) if isinstance(by, tuple) else [by] if by is not None else []
    cols = call_columns(sl_seconds, short_abandon)
    stmt = select(*keys, *cols).where(
        Call.arrived_at >= start,
        Call.arrived_at < end,
        Call.callback_of.is_(None),
        Call.ended_at.is_not(None),
    )
    if queue:
        stmt = stmt.where(Call.queue == queue)
    if asterisks is not None:
        stmt = stmt.where(Call.asterisk.in_(list(asterisks)))
    if keys:
        stmt = stmt.group_by(*keys)
    out: dict[Any, CallFigures] = {}
    n = len(keys)
    for row in (await session.execute(stmt)).all():
        if not keys:
            out["*"] = figures_of(row)
        else:
            out[tuple(row[:n]) if n > 1 else row[0]] = figures_of(row[n:])
    return out


@dataclass
class IncidentFigures:
    """Incidents of a period."""

    opened: int = 0
    resolved: int = 0
    first_line: int = 0
    escalated: int = 0
    unresolved_now: int = 0

    @property
    def first_line_rate(self) -> float | None:
        return self.first_line / self.resolved if self.resolved else None


async def incident_figures(
    session: AsyncSession, start: datetime, end: datetime
) -> IncidentFigures:
    """Opened and resolved in [start, end); first-line; open now."""
    opened = await session.scalar(
        select(func.count()).where(Incident.created_at >= start, Incident.created_at < end)
    )
    resolved_row = (
        await session.execute(
            select(
                func.count(),
                func.coalesce(
                    func.sum(case((Incident.first_line_resolved.is_(True), 1), else_=0)), 0
                ),
                func.coalesce(func.sum(case((Incident.escalated_to.is_not(None), 1), else_=0)), 0),
            ).where(Incident.resolved_at >= start, Incident.resolved_at < end)
        )
    ).one()
    open_now = await session.scalar(
        select(func.count()).where(Incident.state.not_in(["resolved", "closed"]))
    )
    return IncidentFigures(int(opened or 0), int(resolved_row[0]), int(resolved_row[1]),
                           int(resolved_row[2]), int(open_now or 0))  # fmt: skip


@dataclass
class Satisfaction:
    """Post-call survey answers of a period."""

    responses: int = 0
    satisfied: int = 0  # scores 4-5
    score_sum: int = 0

    @property
    def share_satisfied(self) -> float | None:
        return self.satisfied / self.responses if self.responses else None

    @property
    def mean(self) -> float | None:
        return self.score_sum / self.responses if self.responses else None


async def satisfaction(
    session: AsyncSession, start: datetime, end: datetime, *, by_agent: bool = False
) -> dict[str, Satisfaction]:
    """Survey figures in [start, end), in total ("*") or per agent."""
    cols = [func.count(), func.coalesce(func.sum(case((SurveyResponse.score >= 4, 1), else_=0)), 0),
            func.coalesce(func.sum(SurveyResponse.score), 0)]  # fmt: skip
    stmt = select(*(([SurveyResponse.agent] if by_agent else []) + cols)).where(
        SurveyResponse.at >= start, SurveyResponse.at < end
    )
    if by_agent:
        stmt = stmt.group_by(SurveyResponse.agent)
    out = {}
    for row in (await session.execute(stmt)).all():
        key = (row[0] or "?") if by_agent else "*"
        vals = row[1:] if by_agent else row
        out[key] = Satisfaction(int(vals[0]), int(vals[1]), int(vals[2]))
    return out
