"""A simulated stretch of a day on the real Asterisk: the daily report's wait and talk figures
agree with Asterisk's own queue_log, call class by call class."""

from datetime import datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cti.ami.client import AmiClient
from cti.sandbox.instance import InstanceState
from desk.web.app import create_app
from desk.web.keys import SESSIONS, SETTINGS
from reports.build import ReportOptions, build_report, period_for
from tests.conftest import server_settings
from tests.integration.test_journal import mixed_callers, run_sim
from tests.support import journal


async def test_daily_report_agrees_with_queue_log(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0")
    async with TestClient(TestServer(create_app(settings))) as http:
        sim = await run_sim(sim_client, mixed_callers(24, seed=5), rate=3)
        result = await sim.run()
        prefix = f"sim-{sim.run_id}-"
        records = await journal.wait_finished(tmp_path, prefix, len(result.calls))
        assert len(records) == 24
        app = http.server.app
        tz = app[SETTINGS].tz
        period = period_for("daily", datetime.now(tz).date(), tz)
        report = await build_report(
            app[SESSIONS], period, ReportOptions(queue_log=Path(sandbox_state.queue_log))
        )
    ql = journal.queue_log_calls(sandbox_state.queue_log, prefix)
    answered = [c for c in ql.values() if c.outcome == "answered"]
    calls = report["calls"]
    assert calls["offered"] == len(ql) == 24
    assert calls["answered"] == len(answered)
    assert calls["abandoned"] == sum(c.outcome == "abandoned" for c in ql.values())
    assert calls["timed_out"] == sum(
        c.outcome in ("queue_timeout", "left_empty") for c in ql.values()
    )
    assert {"answered", "abandoned", "queue_timeout"} <= {c.outcome for c in ql.values()}
    # queue_log keeps whole seconds: each call may differ by under a second.
    assert calls["wait_answered"] == pytest.approx(
        sum(c.wait or 0 for c in answered), abs=len(answered)
    )
    assert calls["talk"] == pytest.approx(sum(c.talk or 0 for c in answered), abs=len(answered))
    assert report["metrics"]["asa"] == pytest.approx(
        sum(c.wait or 0 for c in answered) / len(answered), abs=1
    )
    # Coverage: every call queue_log saw today (this sandbox's other tests included) is counted
    # by queue_log; this journal holds this test's calls only.
    assert (
        report["coverage"]["queue_log_offered"] >= 24
        and report["coverage"]["journal_offered"] == 24
    )
