"""Agent state spans written in batches: a batch with several changes of one agent leaves the
table as one change after another would (each span closed by the next, only the last open), on
SQLite and on PostgreSQL (its executemany goes another way)."""

import itertools
from pathlib import Path

import pytest
from sqlalchemy import select

from cti.db import create_engine, migrate, session_maker
from cti.journal.agent_states import StateLog
from cti.journal.models import AgentStateSpan
from cti.live.bus import AgentStateChanged, Bus
from cti.live.model import AgentState, AgentView
from desk.migrations import MIGRATIONS


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]
)
async def test_a_batch_with_several_changes_of_an_agent_chains_its_spans(
    tmp_path: Path, request: pytest.FixtureRequest, database: str
) -> None:
    url = (
        request.getfixturevalue("pg_url")
        if database == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}"
    )
    engine = create_engine(url)
    await migrate(engine, MIGRATIONS)
    sessions = session_maker(engine)
    bus = Bus()
    log = StateLog(sessions, bus)

    def change(ext: str, state: AgentState, at: float, reason: str = "") -> None:
        bus.publish(AgentStateChanged(AgentView(ext, state, reason, at, ("helpdesk",), None)))

    try:
        change("1001", AgentState.READY, 1000)
        change("1002", AgentState.READY, 1000.5)
        await log.flush()  # each agent's first span, open
        change("1001", AgentState.RINGING, 1001)
        change("1001", AgentState.ON_CALL, 1002)
        change("1002", AgentState.PAUSED, 1002.5, "午饭 lunch")
        change("1001", AgentState.ON_CALL, 1002.7)  # the same state again: no new span
        change("1001", AgentState.WRAP_UP, 1003)
        change("1001", AgentState.READY, 1004)
        await log.flush()  # one batch: four changes of 1001, one of 1002
        async with sessions() as s:
            rows = (await s.scalars(select(AgentStateSpan).order_by(AgentStateSpan.id))).all()
    finally:
        await log.close()
        await engine.dispose()
    for ext, states in (
        ("1001", ["ready", "ringing", "on_call", "wrap_up", "ready"]),
        ("1002", ["ready", "paused"]),
    ):
        spans = [r for r in rows if r.ext == ext]
        assert [r.state for r in spans] == states
        assert all(a.ended_at == b.started_at for a, b in itertools.pairwise(spans))
        assert [r.ended_at is None for r in spans] == [False] * (len(states) - 1) + [True]
    assert [r.started_at.timestamp() for r in rows if r.ext == "1001"] == [
        1000, 1001, 1002, 1003, 1004
    ]  # fmt: skip
    assert [r.reason for r in rows if r.ext == "1002"] == ["", "午饭 lunch"]
