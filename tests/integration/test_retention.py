"""Retention (PIPL: keep personal data no longer than needed): the scheduler deletes old call
records, IVR steps and recordings and blanks old personal data, leaves everything younger (and
open incidents) alone, and reports what it did in the audit log and on /metrics. On the test's
database: SQLite, or PostgreSQL with CTI_TEST_DATABASE=postgresql."""

import asyncio
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import select

from cti.db import create_engine, migrate, session_maker
from cti.journal import repo
from cti.journal.models import Call, IvrStep
from cti.live.model import LiveCall
from cti.settings import load_settings
from desk.migrations import MIGRATIONS
from desk.models import AuditEntry, Incident
from desk.web.keys import SCHEDULER
from desk.web.metrics import ServerCollector
from reports.service import Archive, Scheduler
from tests.support import db

NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
DAY = 86400.0


def call(uid: str, days_ago: float, *, ended: bool = True) -> LiveCall:
    start = NOW.timestamp() - days_ago * DAY
    c = LiveCall(
        uid, uid, "PJSIP/carrier-1", start, caller_number="13800138000", caller_name="张三"
    )
    c.queued_at, c.queue = start + 2, "helpdesk"
    if ended:
        c.finish(start + 60)
    return c


def incident(number: str, days_ago: int, state: str, recording: str | None) -> Incident:
    at = NOW - timedelta(days=days_ago)
    return Incident(number=number, created_at=at, updated_at=at, recorded_by="IVR",
                    channel="voicemail", type="fault", state=state, caller_number="13800138000",
                    caller_key="13800138000", requester_name="张三", requester_mobile="13800138000",
                    requester_email="zs@example.cn", recording=recording)  # fmt: skip


async def test_the_scheduler_applies_retention_and_reports_it(tmp_path: Path) -> None:
    url = db.url_of(tmp_path)
    media = tmp_path / "media"
    (media / "recordings").mkdir(parents=True)
    env = {"CTI_DATABASE_URL": url, "CTI_AMI_HOST": "h", "CTI_AMI_USER": "u",
           "CTI_AMI_SECRET": "x", "CTI_DATA_DIR": str(tmp_path), "CTI_MEDIA_DIR": str(media),
           "CTI_RETENTION_CALLS_DAYS": "365", "CTI_RETENTION_IVR_STEPS_DAYS": "90",
           "CTI_RETENTION_RECORDINGS_DAYS": "30", "CTI_RETENTION_PERSONAL_DAYS": "180"}  # fmt: skip
    settings = load_settings(None, env)
    engine = create_engine(url)
    await migrate(engine, MIGRATIONS)
    sessions = session_maker(engine)
    calls = [call("old", 400), call("half", 200), call("recent", 10),
             call("open-old", 400, ended=False)]  # fmt: skip
    async with sessions.begin() as s:
        await repo.upsert_calls(s, [c.to_row(NOW.timestamp()) for c in calls])
        for uid, days in (("old", 400), ("half", 200), ("half", 100), ("recent", 10)):
            s.add(IvrStep(call_uniqueid=uid, seq=1, at=NOW - timedelta(days=days), route="ivr",
                          menu="main", step="menu", digits="13800138000"))  # fmt: skip
        s.add_all([
            incident("1", 200, "closed", "recordings/vm-old.wav"),  # all of it goes
            incident("2", 200, "in_progress", "recordings/vm-open.wav"),  # contacts kept
            incident("3", 10, "closed", "recordings/vm-new.wav"),  # too young for anything
        ])  # fmt: skip
    for name in ("vm-old.wav", "vm-open.wav", "vm-new.wav", "orphan-old.wav", "orphan-new.wav"):
        (media / "recordings" / name).write_bytes(b"RIFF")
    for name in ("orphan-old.wav",):
        old = NOW.timestamp() - 60 * DAY
        os.utime(media / "recordings" / name, (old, old))
    outside = tmp_path / "keep.wav"
    outside.write_bytes(b"RIFF")
    async with sessions.begin() as s:
        s.add(incident("4", 200, "closed", "../keep.wav"))  # a hostile path: never followed

    scheduler = Scheduler(sessions, settings, Archive(tmp_path / "reports"))
    result = await scheduler.apply_retention(NOW)
    assert result is not None
    assert result.counts() == {"calls": 1, "ivr_steps": 3, "recordings": 3,
                               "personal_calls": 2, "personal_incidents": 2}  # fmt: skip
    assert outside.exists() and any("outside the media folder" in e for e in result.errors)
    left = sorted(p.name for p in (media / "recordings").iterdir())
    assert left == ["orphan-new.wav", "vm-new.wav"]
    async with sessions() as s:
        rows = {c.uniqueid: c for c in (await s.scalars(select(Call))).all()}
        assert set(rows) == {"half", "recent", "open-old"}  # the open call is not ours to drop
        assert (rows["half"].caller_number, rows["half"].caller_name) == ("", "")
        assert rows["half"].wait_seconds is not None  # the figures stay
        assert rows["recent"].caller_name == "张三"
        steps = (await s.scalars(select(IvrStep))).all()
        assert [(st.call_uniqueid, st.digits) for st in steps] == [("recent", "13800138000")]
        inc = {i.number: i for i in (await s.scalars(select(Incident))).all()}
        assert (inc["1"].requester_name, inc["1"].requester_mobile, inc["1"].caller_number,
                inc["1"].recording) == ("", "", "", None)  # fmt: skip
        assert inc["2"].requester_name == "张三" and inc["2"].recording is None
        assert inc["3"].requester_name == "张三" and inc["3"].recording == "recordings/vm-new.wav"
        entries = (await s.scalars(select(AuditEntry))).all()
        assert [(e.actor, e.action) for e in entries] == [("retention", "retention.sweep")]
        assert entries[0].detail["calls"] == 1 and entries[0].detail["personal_days"] == 180

    # /metrics shows the last sweep.
    app = web.Application()
    app[SCHEDULER] = scheduler
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(app))
    text = generate_latest(registry).decode()
    assert 'cti_retention_removed{kind="calls"} 1.0' in text
    assert 'cti_retention_removed{kind="recordings"} 3.0' in text
    dashboard = (
        Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
    ).read_text()
    for name in set(re.findall(r"cti_retention_[a-z_]+", dashboard)):
        assert f"\n{name}" in text, name  # the sample dashboard plots what exists

    # Within the hour the scheduler does not sweep again; `cti retention` does, on demand, and
    # a sweep with nothing to do leaves no audit entry.
    assert await scheduler.apply_retention(NOW) is None
    await engine.dispose()
    full = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **env}
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cti", "retention"], env=full,
        capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "calls 0, ivr_steps 0, recordings 0, personal_calls 0, personal_incidents 0"
    )
    engine = create_engine(url)
    async with session_maker(engine)() as s:
        assert len((await s.scalars(select(AuditEntry))).all()) == 1
    await engine.dispose()
