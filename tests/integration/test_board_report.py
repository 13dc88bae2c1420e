"""One definition of each metric: the wallboard and the daily report give the same figures for
the same calls — including the calls that used to split them (short abandons, calls still live,
call-back legs, a threshold set in two places)."""

from datetime import datetime
from pathlib import Path

import pytest

from cti.ami.client import AmiClient, AmiOptions
from cti.journal import repo
from cti.live.agents import AgentService
from cti.live.bus import Bus
from cti.live.model import LiveCall
from cti.live.queues import QueueBook
from cti.live.tracker import CallTracker
from reports.build import ReportOptions, build_report, period_for
from reports.wallboard import LiveSite, MetricSettings, snapshot
from tests.integration.test_reports import DAY, T0, TZ, seed

METRICS = ("service_level", "asa", "aht", "abandon_rate", "net_abandon_rate", "answer_rate")


@pytest.mark.parametrize("sl", [20.0, 10.0])
async def test_the_wallboard_shows_the_daily_reports_figures(tmp_path: Path, sl: float) -> None:
    engine, sessions = await seed(f"sqlite+aiosqlite:///{tmp_path / 'j.sqlite3'}")
    try:
        # Calls the old board counted and the report did not: one still waiting (live), and a
        # call-back leg the desk placed (its caller was offered once already).
        live = LiveCall("live-1", "live-1", "PJSIP/carrier-x", T0 + 3000, caller_number="1390")
        live.queued_at = live.in_queue_since = T0 + 3005
        live.queue = "helpdesk"
        leg = LiveCall("cb-1", "cb-1", "Local/1390@cti-callback", T0 + 3100, callback_of="r007")
        leg.queued_at, leg.queue, leg.answered_at = T0 + 3101, "helpdesk", T0 + 3102
        leg.finish(T0 + 3200)
        async with sessions.begin() as s:
            await repo.upsert_calls(s, [live.to_row(T0), leg.to_row(T0)])

        bus = Bus()
        tracker = CallTracker(["cti-inbound"], bus)
        agents = AgentService(AmiClient(AmiOptions("127.0.0.1", 1, "u", "p")), bus, lambda e: e, 30)
        metrics = MetricSettings(sl_seconds=sl, short_abandon=5)
        evening = datetime(DAY.year, DAY.month, DAY.day, 18, 0, tzinfo=TZ)
        live = [LiveSite("main", "main", QueueBook(tracker, agents, bus), agents)]
        board = await snapshot(sessions, live, TZ, metrics, {}, {}, day=evening)
        report = await build_report(
            sessions, period_for("daily", DAY, TZ), ReportOptions(sl_seconds=sl, short_abandon=5)
        )
        shown = board["total"]["today"]
        helpdesk = next(q for q in board["queues"] if q["queue"] == "helpdesk")["today"]
        for metric in METRICS:
            assert shown[metric] == pytest.approx(report["metrics"][metric]), metric
            assert helpdesk[metric] == pytest.approx(report["metrics"][metric]), metric
        for count in ("offered", "answered", "abandoned", "short_abandoned", "overflowed"):
            assert shown[count] == report["calls"][count], count
        # The hand-computed figures (test_reports): 4 of 9 within 20 s, 2 of 9 within 10 s.
        assert shown["service_level"] == pytest.approx(4 / 9 if sl == 20 else 2 / 9)
        assert board["service_level_seconds"] == sl
        await agents.close()
    finally:
        await engine.dispose()
