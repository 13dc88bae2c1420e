"""The half-hour table of report figures (reports/slots.py) gives exactly what one pass over
`calls` gives: fresh, stale after any write to a finished call (whoever writes it), with other
thresholds, and for periods whose edges cut half-hours; on SQLite and on PostgreSQL."""

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from cti.db import SessionMaker, create_engine, migrate, session_maker
from cti.journal import repo
from cti.journal.models import Call, CallSlot
from cti.live.model import LiveCall, RecordSource
from cti.types import CallOutcome
from desk.migrations import MIGRATIONS
from reports.build import _half_hour, _slot_time
from reports.metrics import CallFigures, call_figures
from reports.slots import Thresholds, period_figures, refresh, slot_of

START = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)  # a Monday
DAYS = 3
OUTCOMES = [CallOutcome.ANSWERED] * 6 + [
    CallOutcome.ABANDONED,
    CallOutcome.QUEUE_TIMEOUT,
    CallOutcome.OVERFLOWED,
    CallOutcome.ENDED_IN_IVR,
    CallOutcome.VOICEMAIL,
]


def random_calls(n: int, seed: int = 5) -> list[dict[str, Any]]:
    """Finished calls over three days (some exactly on half-hour edges), one still live, one
    call-back leg; queues and agents of every kind, None and '' among them."""
    rng = random.Random(seed)
    now = (START + timedelta(days=DAYS)).timestamp()
    rows = []
    for i in range(n):
        if i % 17 == 0:  # on a slot's first or last microsecond
            t = START.timestamp() + rng.randrange(DAYS * 48) * 1800 - (i % 2) * 1e-6
        else:
            t = START.timestamp() + rng.uniform(0, DAYS * 86400)
        outcome = rng.choice(OUTCOMES)
        c = LiveCall(f"s{i:05d}", f"s{i:05d}", f"PJSIP/carrier-{i}", t, caller_number="1380")
        if outcome not in (CallOutcome.ENDED_IN_IVR, CallOutcome.VOICEMAIL):
            c.queued_at, c.queue = t + 5, rng.choice(["helpdesk", "helpdesk-en", ""])
            c.wait_override = rng.choice([0.0, 4.9, 5.0, 19.99, 20.0, 20.01, rng.uniform(0, 90)])
        if outcome == CallOutcome.ANSWERED:
            c.answered_at, c.agent = t + 5 + c.wait_override, rng.choice(["1001", "1002", ""])  # type: ignore[operator]
            c.talk_override = rng.uniform(10, 400)
        if i != n - 1:  # the last one is still live
            c.finish(t + 600)
        c.outcome = outcome
        if i % 23 == 0:
            c.callback_of = "s00000"
        if i % 29 == 0:
            c.source = RecordSource.RECONCILED
        rows.append(c.to_row(now))
    return rows


@pytest.fixture(params=["sqlite", "postgresql"])
async def sessions(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[AsyncEngine, SessionMaker]]:
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'cti.sqlite3'}"
    engine = create_engine(url)
    await migrate(engine, MIGRATIONS)
    yield engine, session_maker(engine)
    await engine.dispose()


async def one_pass(
    sessions: SessionMaker, start: datetime, end: datetime, t: Thresholds, queue: str | None = None
) -> tuple[dict[Any, CallFigures], dict[Any, CallFigures]]:
    """What reports computed before the table: by (queue, half-hour) and by agent, from calls."""
    kw: dict[str, Any] = {"sl_seconds": t.sl_seconds, "short_abandon": t.short_abandon,
                          "queue": queue}  # fmt: skip
    async with sessions() as s:
        groups = await call_figures(s, start, end, by=(Call.queue, _half_hour(s)), **kw)
        agents = await call_figures(s, start, end, by=Call.agent, **kw)
    by_slot: dict[Any, CallFigures] = {}
    for (q, key), f in groups.items():
        by_slot.setdefault((q or None, _slot_time(key)), CallFigures()).add(f)
    by_agent: dict[Any, CallFigures] = {}
    for a, f in agents.items():
        by_agent.setdefault(a or None, CallFigures()).add(f)
    return by_slot, by_agent


def same(a: dict[Any, CallFigures], b: dict[Any, CallFigures]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        fa, fb = a[k].as_dict(), b[k].as_dict()
        assert fa == pytest.approx(fb), k


async def check(
    sessions: SessionMaker, start: datetime, end: datetime, t: Thresholds, queue: str | None = None
) -> tuple[int, int]:
    """The table's figures equal the pass over calls; (slots from the table, from calls)."""
    want_slots, want_agents = await one_pass(sessions, start, end, t, queue)
    async with sessions() as s:
        got = await period_figures(
            s, start, end, sl_seconds=t.sl_seconds, short_abandon=t.short_abandon, queue=queue
        )
    same(got.by_slot, want_slots)
    same(got.by_agent, want_agents)
    assert sum(f.arrived for f in want_slots.values()) > 0
    return got.slots_from_table, got.slots_from_calls


async def test_the_table_gives_the_figures_of_one_pass_over_calls(
    sessions: tuple[AsyncEngine, SessionMaker],
) -> None:
    _, sm = sessions
    t = Thresholds(20, 5)
    async with sm.begin() as s:
        await repo.upsert_calls(s, random_calls(600))
    end = START + timedelta(days=DAYS)
    # Nothing computed yet: every slot from calls.
    from_table, _ = await check(sm, START, end, t)
    assert from_table == 0
    assert await refresh(sm, t) > 0
    from_table, from_calls = await check(sm, START, end, t)
    assert from_table > 100 and from_calls == 0
    assert await refresh(sm, t) == 0  # nothing changed since
    # Writes after the fact, as the journal, the agent service and an operator make them.
    async with sm.begin() as s:
        await repo.set_acw(s, "s00003", 42.5)
        await s.execute(update(Call).where(Call.uniqueid == "s00010").values(outcome="abandoned"))
        await s.execute(
            update(Call)
            .where(Call.uniqueid == "s00020")
            .values(arrived_at=START + timedelta(days=1, minutes=1))
        )
        await s.execute(delete(Call).where(Call.uniqueid == "s00030"))
        await repo.upsert_calls(s, random_calls(5, seed=99)[:4])  # written again: new figures
    from_table, from_calls = await check(sm, START, end, t)
    assert 0 < from_calls < from_table
    # Other thresholds: nothing in the table fits them, so all from calls, and still exact.
    other = Thresholds(30, 3)
    from_table, _ = await check(sm, START, end, other, queue="helpdesk")
    assert from_table == 0
    assert await refresh(sm, t) == from_calls
    from_table, from_calls = await check(sm, START, end, t, queue="helpdesk-en")
    assert from_calls == 0
    # A period whose edges cut half-hours (a zone 45 minutes off the half-hour, a custom range).
    await check(sm, START + timedelta(hours=5, minutes=45), end - timedelta(minutes=20), t)
    await check(sm, START + timedelta(minutes=7), START + timedelta(minutes=21), t)


async def test_the_triggers_put_a_call_in_its_utc_half_hour(
    sessions: tuple[AsyncEngine, SessionMaker],
) -> None:
    """The triggers compute a call's slot in SQL; reports/slots.py in Python: they agree, to the
    microsecond on each side of a half-hour's edge, and only finished calls count."""
    _, sm = sessions
    edge = START + timedelta(hours=7, minutes=30)
    times = [edge - timedelta(microseconds=1), edge, edge + timedelta(minutes=29, seconds=59)]
    rows = []
    for i, at in enumerate(times):
        c = LiveCall(f"e{i}", f"e{i}", "PJSIP/carrier", at.timestamp())
        c.finish(at.timestamp() + 60)
        rows.append(c.to_row(at.timestamp()))
    live = LiveCall("live", "live", "PJSIP/carrier", (edge + timedelta(hours=3)).timestamp())
    rows.append(live.to_row(edge.timestamp()))
    async with sm.begin() as s:
        await repo.upsert_calls(s, rows)
    async with sm() as s:
        marked = dict((await s.execute(select(CallSlot.slot, CallSlot.version))).all())
    assert marked == {slot_of(edge) - 1: 1, slot_of(edge): 2}
    assert slot_of(times[0]) == slot_of(edge) - 1 and slot_of(times[2]) == slot_of(edge)
