"""The journal and the reports on PostgreSQL (a server of the tests' own, tests/support/postgres.py):
migrations, upserts, queries."""

from cti.db import create_engine, migrate, session_maker
from cti.journal import repo
from cti.live.model import LiveCall
from desk.migrations import MIGRATIONS


async def test_journal_on_postgresql(pg_url: str) -> None:
    engine = create_engine(pg_url)
    await migrate(engine, MIGRATIONS)
    await migrate(engine, MIGRATIONS)  # idempotent
    sessions = session_maker(engine)
    call = LiveCall("pg-1", "pg-1", "PJSIP/x", 1_800_000_000.25, caller_name="张三")
    async with sessions.begin() as s:
        await repo.upsert_calls(s, [call.to_row(1_800_000_000.5)])
    call.queued_at = 1_800_000_001.5
    call.finish(1_800_000_031.75)
    async with sessions.begin() as s:
        await repo.upsert_calls(s, [call.to_row(1_800_000_032.0)])
    async with sessions() as s:
        rows, total = await repo.list_calls(s)
        assert total == 1
        assert rows[0].caller_name == "张三" and rows[0].outcome == "abandoned"
        assert rows[0].arrived_at.timestamp() == 1_800_000_000.25
        assert await repo.open_calls(s) == []
    await engine.dispose()


async def test_reports_on_postgresql(pg_url: str) -> None:
    """The same hand-computed figures from PostgreSQL (its half-hour bucket is to_char)."""
    from reports.build import ReportOptions, build_report, period_for
    from tests.integration.test_reports import DAY, TZ, assert_hand_computed, seed

    engine, sessions = await seed(pg_url)
    try:
        r = await build_report(
            sessions, period_for("daily", DAY, TZ), ReportOptions(sl_seconds=20, short_abandon=5)
        )
        assert_hand_computed(r)
        weekly = await build_report(sessions, period_for("weekly", DAY, TZ), ReportOptions())
        assert [t["offered"] for t in weekly["trend"]] == [0, 0, 0, 0, 10, 0, 0]
    finally:
        await engine.dispose()
