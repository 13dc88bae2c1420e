"""The half-hour table of report figures: a period's call figures read from it, and the slots
whose calls changed recomputed into it.

`call_slot_figures` holds reports.metrics' additive call figures per (UTC half-hour, queue,
agent); triggers on `calls` bump a slot's version in `call_slots` whenever a finished call in it
is written (cti/journal/models.py). A report reads the slots that are fresh (computed for their
current version and for the report's thresholds) from the table and computes the rest, and the
partial half-hours at the period's edges, from `calls` — so every figure is what one pass over
`calls` would give, however stale the table. `refresh` brings stale slots up to date; the report
scheduler runs it every minute, so a report finds almost everything fresh.
"""

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, insert, literal_column, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cti.db import SessionMaker
from cti.journal.models import SLOT_SECONDS, Call, CallSlot, CallSlotFigures
from reports.metrics import CALL_FIELDS, CallFigures, call_columns, figures_of

logger = logging.getLogger(__name__)

# At most this many consecutive slots (a day) are computed from `calls` in one query: the memory
# a query's groups take stays bounded whatever the period.
RANGE_SLOTS = 48
FIGURES_TABLE = cast(Table, CallSlotFigures.__table__)
# The slot of a call as the triggers of migration 0010_perf compute it (they must agree).
_SLOT_SQL = {
    "sqlite": "(CAST(strftime('%s', substr(calls.arrived_at, 1, 19)) AS INTEGER) / 1800)",
    "postgresql": "CAST(floor(extract(epoch FROM calls.arrived_at) / 1800) AS INTEGER)",
}


def slot_of(at: datetime) -> int:
    """The UTC half-hour `at` falls in."""
    return int(at.timestamp() // SLOT_SECONDS)


def slot_start(slot: int) -> datetime:
    """When a slot begins (aware UTC)."""
    return datetime.fromtimestamp(slot * SLOT_SECONDS, UTC)


def _slot_expr(session: AsyncSession) -> Any:
    return literal_column(_SLOT_SQL[session.get_bind().dialect.name])


Values = list[float]  # a group's figures in CALL_FIELDS order, while they are summed


def _accumulate(into: dict[Any, Values], key: Any, values: Any) -> None:
    current = into.get(key)
    if current is None:
        into[key] = list(values)
    else:
        for i, v in enumerate(values):
            current[i] += v


@dataclass
class PeriodFigures:
    """A period's call figures by (queue, slot start) and by agent (None: no queue, no agent)."""

    slots_from_table: int = 0
    slots_from_calls: int = 0
    _by_slot: dict[tuple[str | None, int], Values] = field(default_factory=dict)
    _by_agent: dict[str | None, Values] = field(default_factory=dict)

    def add(self, queue: str | None, slot: int, agent: str | None, values: Any) -> None:
        """Count one group's figures ('' and None are one key: unknown)."""
        _accumulate(self._by_slot, (queue or None, slot), values)
        _accumulate(self._by_agent, agent or None, values)

    @property
    def by_slot(self) -> dict[tuple[str | None, datetime], CallFigures]:
        """Figures per (queue, UTC half-hour start)."""
        return {(q, slot_start(s)): figures_of(v) for (q, s), v in self._by_slot.items()}

    @property
    def by_agent(self) -> dict[str | None, CallFigures]:
        """Figures per agent."""
        return {a: figures_of(v) for a, v in self._by_agent.items()}


@dataclass(frozen=True)
class Thresholds:
    """What a slot's figures were computed for (the service level and short abandon seconds)."""

    sl_seconds: float
    short_abandon: float


def _fresh(t: Thresholds) -> Any:
    return and_(
        CallSlot.version == CallSlot.computed_version,
        CallSlot.sl_seconds == t.sl_seconds,
        CallSlot.short_abandon == t.short_abandon,
    )


def _runs(slots: Iterable[int]) -> Iterator[tuple[int, int]]:
    """[first, last) ranges of consecutive slots, each at most RANGE_SLOTS long."""
    first = last = None
    for s in sorted(slots):
        if first is not None and last is not None and s == last and s - first < RANGE_SLOTS:
            last = s + 1
            continue
        if first is not None and last is not None:
            yield first, last
        first, last = s, s + 1
    if first is not None and last is not None:
        yield first, last


async def _from_calls(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    t: Thresholds,
    queue: str | None = None,
    asterisks: Sequence[str] | None = None,
) -> list[tuple[int, str | None, str | None, Any]]:
    """(slot, queue, agent, figures in CALL_FIELDS order) of the finished calls that arrived in
    [start, end) (on these Asterisks; None: all)."""
    slot = _slot_expr(session)
    stmt = (
        select(slot, Call.queue, Call.agent, *call_columns(t.sl_seconds, t.short_abandon))
        .where(
            Call.arrived_at >= start,
            Call.arrived_at < end,
            Call.callback_of.is_(None),
            Call.ended_at.is_not(None),
        )
        .group_by(slot, Call.queue, Call.agent)
    )
    if queue:
        stmt = stmt.where(Call.queue == queue)
    if asterisks is not None:
        stmt = stmt.where(Call.asterisk.in_(list(asterisks)))
    rows = (await session.execute(stmt)).all()
    return [(int(r[0]), r[1], r[2], r[3:]) for r in rows]


async def period_figures(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    sl_seconds: float = 20,
    short_abandon: float = 5,
    queue: str | None = None,
    asterisks: Sequence[str] | None = None,
) -> PeriodFigures:
    """The figures of the finished calls that arrived in [start, end), grouped by (queue, UTC
    half-hour) and by agent; exactly what one pass over `calls` gives.

    Of some Asterisks only (a site's report): from `calls` itself, as the half-hour table sums
    every Asterisk's calls together."""
    t = Thresholds(float(sl_seconds), float(short_abandon))
    out = PeriodFigures()
    if asterisks is not None:
        for s, q, agent, f in await _from_calls(session, start, end, t, queue, asterisks):
            out.add(q, s, agent, f)
        return out
    first = -(-int(start.timestamp()) // SLOT_SECONDS)  # the first whole slot
    last = int(end.timestamp()) // SLOT_SECONDS  # the end of the last whole slot
    edges = []
    if first >= last:  # no whole slot: all from calls
        edges.append((start, end))
    else:
        if slot_start(first) > start:
            edges.append((start, slot_start(first)))
        if slot_start(last) < end:
            edges.append((slot_start(last), end))
    for edge_start, edge_end in edges:
        for s, q, agent, f in await _from_calls(session, edge_start, edge_end, t, queue):
            out.add(q, s, agent, f)
    if first >= last:
        return out
    in_period = and_(CallSlot.slot >= first, CallSlot.slot < last)
    stale = (await session.scalars(select(CallSlot.slot).where(in_period, ~_fresh(t)))).all()
    out.slots_from_calls = len(stale)
    for a, b in _runs(stale):  # every slot of a run is stale
        for s, q, agent, f in await _from_calls(session, slot_start(a), slot_start(b), t, queue):
            out.add(q, s, agent, f)
    # The fresh slots, summed in SQL: by (slot, queue) and by agent.
    sums = [func.sum(getattr(CallSlotFigures, name)) for name in CALL_FIELDS]
    fresh = (
        select(CallSlotFigures.slot)
        .join(CallSlot, CallSlot.slot == CallSlotFigures.slot)
        .where(in_period, _fresh(t))
    )
    where = [CallSlotFigures.slot >= first, CallSlotFigures.slot < last]
    where.append(CallSlotFigures.slot.in_(fresh.scalar_subquery()))
    if queue:
        where.append(CallSlotFigures.queue == queue)
    by_slot = await session.execute(
        select(CallSlotFigures.slot, CallSlotFigures.queue, *sums)
        .where(*where)
        .group_by(CallSlotFigures.slot, CallSlotFigures.queue)
    )
    slots_seen = set()
    for row in by_slot.all():
        slots_seen.add(int(row[0]))
        _accumulate(out._by_slot, (row[1] or None, int(row[0])), row[2:])
    out.slots_from_table = len(slots_seen)
    by_agent = await session.execute(
        select(CallSlotFigures.agent, *sums).where(*where).group_by(CallSlotFigures.agent)
    )
    for row in by_agent.all():
        _accumulate(out._by_agent, row[0] or None, row[1:])
    return out


async def refresh(sessions: SessionMaker, t: Thresholds, *, limit: int = 2000) -> int:
    """Recompute up to `limit` stale slots (oldest first) into the table; how many were."""
    async with sessions() as session:
        rows = (
            await session.execute(
                select(CallSlot.slot, CallSlot.version)
                .where(~_fresh(t))
                .order_by(CallSlot.slot)
                .limit(limit)
            )
        ).all()
    versions = {int(s): int(v) for s, v in rows}
    done = 0
    for a, b in _runs(versions):
        # The versions were read before the calls: a call written meanwhile leaves the slot
        # stale (its version moved on), and the next refresh computes it again.
        async with sessions() as session:
            found = await _from_calls(session, slot_start(a), slot_start(b), t)
        async with sessions.begin() as session:
            await session.execute(
                delete(CallSlotFigures).where(CallSlotFigures.slot >= a, CallSlotFigures.slot < b)
            )
            if found:
                await session.execute(
                    insert(FIGURES_TABLE),
                    [
                        {
                            "slot": s,
                            "queue": q,
                            "agent": agent,
                            **dict(zip(CALL_FIELDS, v, strict=True)),
                        }
                        for (s, q, agent), v in _merge_keys(found).items()
                    ],
                )
            await session.execute(
                update(CallSlot),
                [
                    {"slot": s, "computed_version": versions[s], "sl_seconds": t.sl_seconds,
                     "short_abandon": t.short_abandon}
                    for s in range(a, b)
                ],
            )  # fmt: skip
        done += b - a
    if done:
        logger.debug("report half-hour table: %d slots recomputed", done)
    return done


def _merge_keys(
    found: list[tuple[int, str | None, str | None, Any]],
) -> dict[tuple[int, str, str], Values]:
    """None and '' are one key in the table (queue or agent unknown): merge their groups."""
    merged: dict[Any, Values] = {}
    for s, q, agent, values in found:
        _accumulate(merged, (s, q or "", agent or ""), values)
    return merged
