"""Reports on a fixed data set in a real SQLite file: every figure equals a hand-computed value;
the outputs (HTML, CSV, XLSX, PDF) are written and readable; `cti report` and `cti staffing` work."""

import asyncio
import os
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from cti.db import create_engine, migrate, session_maker
from cti.journal import repo
from cti.journal.models import AgentStateSpan, Call
from cti.live.model import LiveCall, OverflowKind, OverflowStep, StepResult
from cti.types import CallOutcome
from desk.migrations import MIGRATIONS
from desk.models import Incident, SurveyResponse
from reports.build import ReportOptions, build_report, period_for
from reports.render import write

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 20)  # a Friday
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=TZ).timestamp()

# (outcome, wait, talk, acw, agent): hand-checkable.
ROWS: list[tuple[CallOutcome, float | None, float | None, float | None, str | None]] = [
    (CallOutcome.ANSWERED, 5, 100, 10, "1001"),
    (CallOutcome.ANSWERED, 10, 200, 20, "1001"),
    (CallOutcome.ANSWERED, 15, 300, 30, "1001"),
    (CallOutcome.ANSWERED, 20, 100, 10, "1002"),
    (CallOutcome.ANSWERED, 25, 200, 20, "1002"),
    (CallOutcome.ANSWERED, 40, 300, 30, "1002"),
    (CallOutcome.ABANDONED, 3, None, None, None),  # a short abandon (< 5 s)
    (CallOutcome.ABANDONED, 30, None, None, None),
    (CallOutcome.QUEUE_TIMEOUT, 60, None, None, None),
    (CallOutcome.OVERFLOWED, 70, None, None, None),
    (CallOutcome.ENDED_IN_IVR, None, None, None, None),  # never queued: not offered
]


def make(
    i: int, outcome: CallOutcome, wait: float | None, talk: float | None, agent: str | None
) -> LiveCall:
    t = T0 + i * 600
    c = LiveCall(f"r{i:03d}", f"r{i:03d}", f"PJSIP/carrier-{i}", t, caller_number="13800138000")
    if wait is not None:
        c.queued_at, c.queue = t + 10, "helpdesk"
        c.wait_override = wait
    if talk is not None:
        c.answered_at, c.agent = t + 10 + wait, agent  # type: ignore[operator]
        c.talk_override = talk
    c.finish(t + 500)
    c.outcome = outcome
    if outcome == CallOutcome.OVERFLOWED:
        c.overflows = [
            OverflowStep(OverflowKind.MOBILE, "13900000003", t + 80, t + 84, StepResult.ANSWERED)
        ]
    return c


async def seed(url: str) -> Any:
    engine = create_engine(url)
    await migrate(engine, MIGRATIONS)
    sessions = session_maker(engine)
    async with sessions.begin() as s:
        await repo.upsert_calls(
            s, [make(i, o, w, t, a).to_row(T0) for i, (o, w, t, _, a) in enumerate(ROWS)]
        )
    async with sessions.begin() as s:
        for i, (_, _, _, acw, _) in enumerate(ROWS):
            if acw is not None:
                await s.execute(
                    update(Call).where(Call.uniqueid == f"r{i:03d}").values(acw_seconds=acw)
                )
        day0 = datetime(2026, 11, 20, 8, 0, tzinfo=TZ).astimezone(UTC)
        s.add(
            AgentStateSpan(
                ext="1001",
                state="ready",
                reason="",
                started_at=day0,
                ended_at=day0 + timedelta(hours=1),
            )
        )
        s.add(AgentStateSpan(ext="1001", state="paused", reason="午饭", started_at=day0 + timedelta(hours=1),
                             ended_at=day0 + timedelta(hours=2)))  # fmt: skip
        s.add(
            AgentStateSpan(
                ext="1002",
                state="on_call",
                reason="",
                started_at=day0,
                ended_at=day0 + timedelta(minutes=30),
            )
        )
        for n, (first_line, score) in enumerate([(True, 5), (True, 4), (False, 3), (None, 5)]):
            created = day0 + timedelta(minutes=10 * n)
            s.add(Incident(number=f"261120{n:03d}", created_at=created, recorded_by="IVR", channel="phone", type="fault",
                           category="邮件" if n < 3 else "打印", symptom="", state="resolved" if first_line is not None else "new",
                           first_line_resolved=first_line, escalated_to=None if first_line is not False else "网络组",
                           resolved_at=created + timedelta(hours=1) if first_line is not None else None,
                           updated_at=created, caller_key=None))  # fmt: skip
            s.add(SurveyResponse(call_uniqueid=f"r{n:03d}", incident_number=f"261120{n:03d}",
                                 agent="1001" if n < 3 else "1002", score=score, at=created))  # fmt: skip
    return engine, sessions


def assert_hand_computed(r: dict[str, Any]) -> None:
    """The daily report of the fixed data set, figure by figure."""
    c, m = r["calls"], r["metrics"]
    assert (c["arrived"], c["offered"], c["answered"], c["abandoned"], c["short_abandoned"], c["timed_out"],
            c["overflowed"], c["ended_in_ivr"]) == (11, 10, 6, 2, 1, 1, 1, 1)  # fmt: skip
    assert m["service_level"] == pytest.approx(
        4 / 9
    )  # waits 5, 10, 15, 20 within 20 s; 10 − 1 short
    assert m["asa"] == pytest.approx(115 / 6)
    assert m["aht"] == pytest.approx((1200 + 120) / 6)  # talk + after-call work
    assert m["abandon_rate"] == pytest.approx(2 / 10) and m["net_abandon_rate"] == pytest.approx(
        1 / 9
    )
    assert m["answer_rate"] == pytest.approx(0.6)
    assert m["first_line"] == pytest.approx(2 / 3)  # three resolved, two at first line
    assert m["satisfaction"] == pytest.approx(3 / 4) and m["satisfaction_mean"] == pytest.approx(
        17 / 4
    )
    assert m["survey_response_rate"] == pytest.approx(4 / 6)
    agents = {a["agent"]: a for a in r["agents"]}
    assert agents["1001"]["occupancy"] == pytest.approx(
        660 / 3600
    )  # the paused hour is not available
    assert agents["1002"]["occupancy"] == pytest.approx(660 / 1800)
    assert m["occupancy"] == pytest.approx(1320 / 5400)
    assert (
        sum(r["hours"]) == 11 and r["hours"][9] == 6
    )  # 09:00-09:59 local: six arrivals 10 min apart
    assert r["categories"]["most_frequent"][0] == {"category": "邮件", "count": 3}
    assert r["categories"]["most_escalated"] == [{"category": "邮件", "escalated": 1}]
    assert {x["metric"] for x in r["misses"]} >= {"service_level", "answer_rate", "first_line"}
    assert r["coverage"]["journal_offered"] == 10 and r["coverage"]["queue_log_offered"] is None
    assert [u["number"] for u in r["unresolved"]] == ["261120003"]


async def test_figures_equal_the_hand_computed_values(tmp_path: Path) -> None:
    engine, sessions = await seed(f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        period = period_for("daily", DAY, TZ)
        r = await build_report(sessions, period, ReportOptions(sl_seconds=20, short_abandon=5))
    finally:
        await engine.dispose()
    assert_hand_computed(r)


async def test_weekly_monthly_and_forward(tmp_path: Path) -> None:
    engine, sessions = await seed(f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        weekly = await build_report(sessions, period_for("weekly", DAY, TZ), ReportOptions())
        monthly = await build_report(sessions, period_for("monthly", DAY, TZ), ReportOptions())
        forward = await build_report(
            sessions, period_for("forward", DAY + timedelta(days=7), TZ), ReportOptions()
        )
    finally:
        await engine.dispose()
    assert weekly["period"]["label"] == "2026-11-16 – 2026-11-22" and len(weekly["trend"]) == 7
    assert [t["offered"] for t in weekly["trend"]] == [0, 0, 0, 0, 10, 0, 0]
    assert (
        monthly["period"]["label"] == "2026-11-01 – 2026-11-30"
        and monthly["calls"]["offered"] == 10
    )
    staffing = forward["forward"]["staffing"]
    # 10 queued calls on a Friday four weeks back: 2.5 per half-hour slot-week at most.
    assert staffing and all(p["weekday"] == 4 for p in staffing)
    assert sum(p["calls"] for p in staffing) == pytest.approx(10 / 4)
    # Queued at 09:00:10, 09:10:10 ... 10:30:10 local: 09:00-09:29 has 3, 09:30-09:59 has 3, then 3, 1.
    assert [(p["slot"], p["calls"]) for p in staffing] == [
        ("09:00", 0.75),
        ("09:30", 0.75),
        ("10:00", 0.75),
        ("10:30", 0.25),
    ]
    assert forward["forward"]["aht"] == pytest.approx(220.0)  # last week's talk + after-call work


async def test_outputs(tmp_path: Path) -> None:
    engine, sessions = await seed(f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        report = await build_report(
            sessions, period_for("daily", DAY, TZ), ReportOptions(lang="zh")
        )
    finally:
        await engine.dispose()
    html = write(report, "html", tmp_path / "r.html").read_text()
    assert (
        "日报 · 2026-11-20" in html
        and 'data-metric="service_level">44.4%' in html
        and "<svg" in html
    )
    csv_text = write(report, "csv", tmp_path / "r.csv").read_text(encoding="utf-8")
    assert csv_text.startswith("\ufeff# metrics") and "service_level,服务水平,0.444" in csv_text
    wb = load_workbook(write(report, "xlsx", tmp_path / "r.xlsx"))
    rows = {row[0]: row[2] for row in wb["metrics"].iter_rows(min_row=2, values_only=True)}
    assert rows["asa"] == pytest.approx(115 / 6)
    assert {"metrics", "calls", "agents", "coverage", "definitions"} <= set(wb.sheetnames)
    pdf = write(report, "pdf", tmp_path / "r.pdf")
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 10_000


async def test_report_and_staffing_commands(tmp_path: Path) -> None:
    engine, _ = await seed(f"sqlite+aiosqlite:///{tmp_path / 'cti.sqlite3'}")
    await engine.dispose()
    env = {**os.environ, "CTI_DATA_DIR": str(tmp_path), "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti",
           "CTI_AMI_SECRET": "x", "CTI_QUEUE_LOG_PATH": ""}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti", "report", "daily", "--date", "2026-11-20", "--format", "html,xlsx",
        "--lang", "en", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    paths = [Path(p) for p in out.decode().split()]
    assert [p.name for p in paths] == ["2026-11-20_en.html", "2026-11-20_en.xlsx"]
    assert all(p.exists() and p.parent == tmp_path / "reports" / "daily" for p in paths)
    assert "Daily report · 2026-11-20" in paths[0].read_text()
    bad = await asyncio.create_subprocess_exec(sys.executable, "-m", "cti", "report", "daily", "--format", "doc",
                                               env=env, stderr=asyncio.subprocess.PIPE)  # fmt: skip
    _, err = await bad.communicate()
    assert bad.returncode == 2 and b"format must be" in err
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti", "staffing", "--calls", "100", "--interval", "1800", "--aht", "180",
        "--target", "0.8", "--threshold", "20", "--shrinkage", "0.3", stdout=asyncio.subprocess.PIPE)  # fmt: skip
    out, _ = await proc.communicate()
    text = out.decode()
    assert "agents needed:    14" in text and "with shrinkage:   20" in text and "88.8%" in text


async def test_reports_on_the_web(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from cti.settings import load_settings
    from desk.web.app import create_app
    from tests.support.staff import logged_in

    engine, _ = await seed(f"sqlite+aiosqlite:///{tmp_path / 'cti.sqlite3'}")
    await engine.dispose()
    env = {
        "CTI_DATA_DIR": str(tmp_path),
        "CTI_AMI_HOST": "127.0.0.1",
        "CTI_AMI_USER": "cti",
        "CTI_AMI_SECRET": "x",
    }
    async with TestClient(
        TestServer(create_app(load_settings(None, env), with_core=False))
    ) as http:
        await logged_in(http, "agent")
        assert (await http.get("/reports")).status == 403
        assert (
            await http.post("/api/reports", json={"kind": "daily", "date": "2026-11-20"})
        ).status == 403
    async with TestClient(
        TestServer(create_app(load_settings(None, env), with_core=False))
    ) as http:
        await logged_in(http, "lead", "lead2")
        r = await http.post("/api/reports", json={"kind": "daily", "date": "2026-11-20", "formats": ["html", "csv"],
                                                  "lang": "en"})  # fmt: skip
        assert r.status == 201, await r.text()
        files = (await r.json())["files"]
        assert files == [
            "/reports/files/daily/2026-11-20_en.html",
            "/reports/files/daily/2026-11-20_en.csv",
        ]
        page = await http.get(files[0])
        assert page.status == 200 and "Daily report · 2026-11-20" in await page.text()
        view = await http.get(
            "/reports/view", params={"kind": "weekly", "date": "2026-11-20", "format": "xlsx"}
        )
        assert view.status == 200 and view.headers["Content-Type"].startswith(
            "application/vnd.openxml"
        )
        for bad in ({"kind": "yearly", "date": "2026-11-20"}, {"kind": "daily", "date": "20/11/2026"},
                    {"kind": "daily", "date": "2026-11-20", "formats": ["doc"]},
                    {"kind": "custom", "date": "2026-11-20", "end": "2026-11-01"}):  # fmt: skip
            assert (await http.post("/api/reports", json=bad)).status == 400, bad
        assert (await http.get("/reports/files/daily/..%2Fcti.sqlite3")).status == 404
        assert (await http.get("/reports/files/secret/x.html")).status == 404
        listing = (await (await http.get("/api/reports")).json())["files"]
        assert {f["name"] for f in listing} >= {
            "2026-11-20_en.html",
            "2026-11-20_en.csv",
            "2026-11-16_zh.xlsx",
        }
        html = await (await http.get("/reports")).text()
        assert "2026-11-20_en.html" in html
        # Tables A.1 and A.2.
        a1 = await http.get(
            "/api/exports/requests", params={"since": "2026-11-20", "format": "csv"}
        )
        text = (await a1.read()).decode("utf-8-sig")
        assert a1.status == 200 and text.splitlines()[0].startswith("编号 Number,时间 Time")
        assert len(text.splitlines()) == 5 and "261120002" in text
        a2 = await http.get("/api/exports/staff", params={"format": "xlsx"})
        assert a2.status == 200 and (await a2.read())[:2] == b"PK"
        assert (await http.get("/api/exports/requests", params={"since": "x"})).status == 400
        assert (await http.get("/api/exports/staff", params={"format": "pdf"})).status == 400


async def test_scheduler_writes_each_report_once_and_sweeps(tmp_path: Path) -> None:
    from cti.settings import load_settings
    from reports.service import Archive, Scheduler

    engine, sessions = await seed(f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        settings = load_settings(None, {"CTI_DATA_DIR": str(tmp_path), "CTI_AMI_HOST": "127.0.0.1",
                                        "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x", "CTI_REPORT_FORMATS": "html,csv"})  # fmt: skip
        archive = Archive(tmp_path / "reports", retention_days=30)
        scheduler = Scheduler(sessions, settings, archive)
        # 2026-12-01 08:00 local, a Tuesday: yesterday's daily, last week's weekly, this week's
        # forward-looking report, November's monthly.
        now = datetime(2026, 12, 1, 8, 0, tzinfo=TZ).astimezone(UTC)
        assert scheduler.due(datetime(2026, 12, 1, 0, 5, tzinfo=TZ)) == []  # not before 00:10
        made = await scheduler.run_once(now)
        names = sorted(f"{p.parent.name}/{p.name}" for p in made)
        assert names == sorted(f"{k}/{d}_{lang}.{f}" for k, d in [("daily", "2026-11-30"), ("weekly", "2026-11-23"),
                                                                   ("forward", "2026-11-30"), ("monthly", "2026-11-01")]
                               for lang in ("zh", "en") for f in ("html", "csv"))  # fmt: skip
        assert await scheduler.run_once(now) == []  # once only
        monthly = (tmp_path / "reports" / "monthly" / "2026-11-01_en.html").read_text()
        assert "Monthly report · 2026-11-01 – 2026-11-30" in monthly
        old = tmp_path / "reports" / "daily" / "2025-01-01_zh.html"
        old.write_text("old")
        os.utime(old, (0, 0))
        assert archive.sweep() == 1 and not old.exists()
    finally:
        await engine.dispose()
