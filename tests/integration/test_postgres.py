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


async def test_what_callers_and_asterisk_send_fits_every_column_on_postgresql(pg_url: str) -> None:
    """Caller ID, keyed digits, channel variables: whatever their length (or a NUL in them), the
    call record, the IVR's incident, its history and the survey are stored, cut to fit.
    PostgreSQL refuses an over-long value where SQLite keeps it."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import select

    from cti.ivr.ports import NewIncident
    from cti.phone import NumberPlan
    from desk import incidents
    from desk.ivr_port import DeskService
    from desk.models import Incident, IncidentEvent, IncidentState, SurveyResponse

    engine = create_engine(pg_url)
    await migrate(engine, MIGRATIONS)
    sessions = session_maker(engine)
    long_number, long_id = "1" * 300, "u" * 400
    call = LiveCall(long_id, long_id, "PJSIP/" + "c" * 300, 1_800_000_000.0,
                    caller_number=long_number, caller_name="名\x00" * 300)  # fmt: skip
    call.ivr_path, call.incident_number, call.language = "main:*>" * 60, "9" * 50, "zh" * 9
    async with sessions.begin() as s:
        await repo.upsert_calls(s, [call.to_row(1_800_000_001.0)])
    desk = DeskService(sessions, NumberPlan(area_code="10"), ZoneInfo("Asia/Shanghai"))
    new = NewIncident("fault", "故障" * 150, "x", "phone", long_number, "k" * 90, None, long_id,
                      "en" * 9, "main:*>" * 60, recording="r" * 400)  # fmt: skip
    number = await desk.open_incident(new)
    async with sessions.begin() as s:
        inc = await incidents.get(s, number)
        for to in (IncidentState.IN_PROGRESS, IncidentState.RESOLVED):
            await incidents.change_state(s, inc, to, by="agent 1001", now=datetime.now(UTC))
    assert await desk.confirm_closure(number, f"caller {long_number} (IVR)")
    await desk.record_survey(long_id, "9" * 50, "a" * 200, 5)
    async with sessions() as s:
        row = (await repo.list_calls(s))[0][0]
        assert len(row.caller_name) == 200 and "\x00" not in row.caller_name
        assert row.caller_name.endswith("…") and len(row.ivr_path or "") == 200
        inc = await s.scalar(select(Incident).where(Incident.number == number))
        assert inc is not None and len(inc.menu_path) == 200 and len(inc.caller_number) == 80
        events = await s.scalars(select(IncidentEvent).where(IncidentEvent.incident_id == inc.id))
        assert [len(e.by) for e in events.all()][-1] == 80 and inc.state == "closed"
        survey = await s.scalar(select(SurveyResponse))
        assert survey is not None and survey.score == 5 and len(survey.agent or "") == 80
        assert survey.at <= datetime.now(UTC)
    await engine.dispose()
