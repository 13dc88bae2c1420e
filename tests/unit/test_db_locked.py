"""A write that waits for SQLite's one write lock past the busy timeout is run again, not lost
(cti.db.retry_locked): the IVR's incident and its steps use it. A real database file, with the
lock held by another connection, as the journal's or the agents' writes hold it under load."""

import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from cti import db
from cti.ivr.ports import NewIncident
from cti.phone import NumberPlan
from desk.ivr_port import DeskService
from desk.migrations import MIGRATIONS


@pytest.fixture
def short_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT_MS", 100)


async def _engine(path: Path) -> db.AsyncEngine:
    engine = db.create_engine(f"sqlite+aiosqlite:///{path}")
    await db.migrate(engine, MIGRATIONS)
    return engine


def _hold_lock(path: Path) -> sqlite3.Connection:
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the write lock, until rollback
    return blocker


class Locked:
    """A migrated database file whose write lock another connection holds, and a write of one
    counter row that counts its attempts (and can end the lock when one starts)."""

    def __init__(self, engine: db.AsyncEngine, blocker: sqlite3.Connection) -> None:
        self.engine = engine
        self.sessions = db.session_maker(engine)
        self.blocker = blocker
        self.attempts = 0
        self.release_at: int | None = None

    async def write(self) -> str:
        self.attempts += 1
        if self.attempts == self.release_at:
            self.blocker.rollback()
        async with self.sessions.begin() as s:
            await s.execute(text("INSERT INTO incident_counters (day, last) VALUES ('x', 7)"))
        return "written"


@pytest.fixture
async def locked(tmp_path: Path, short_busy: None) -> AsyncIterator[Locked]:
    path = tmp_path / "cti.sqlite3"
    engine = await _engine(path)
    blocker = _hold_lock(path)
    try:
        yield Locked(engine, blocker)
    finally:
        blocker.close()
        await engine.dispose()


async def test_a_write_that_ran_out_of_time_is_run_again(
    locked: Locked, caplog: pytest.LogCaptureFixture
) -> None:
    locked.release_at = 2  # the lock holder is done once the first attempt has given up
    with caplog.at_level(logging.WARNING, "cti.db"):
        assert await db.retry_locked(locked.write, "test write") == "written"
    assert locked.attempts == 2
    assert "the database was locked (attempt 1)" in caplog.text
    async with locked.sessions() as s:
        assert (await s.execute(text("SELECT last FROM incident_counters"))).scalar() == 7


async def test_a_lock_that_never_ends_is_an_error_after_the_last_attempt(locked: Locked) -> None:
    with pytest.raises(OperationalError, match="database is locked"):
        await db.retry_locked(locked.write, "test write")
    assert locked.attempts == db.LOCKED_ATTEMPTS


async def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    engine = await _engine(tmp_path / "cti.sqlite3")
    sessions = db.session_maker(engine)
    attempts = 0

    async def write() -> None:
        nonlocal attempts
        attempts += 1
        async with sessions.begin() as s:
            await s.execute(text("INSERT INTO incident_counters (day, last) VALUES ('x', 1)"))
            await s.execute(text("INSERT INTO incident_counters (day, last) VALUES ('x', 2)"))

    try:
        with pytest.raises(IntegrityError):
            await db.retry_locked(write, "test write")
        assert attempts == 1
    finally:
        await engine.dispose()


class _ReleaseOnRetry(logging.Handler):
    """Ends the other writer's transaction when retry_locked says it will try again."""

    def __init__(self, blocker: sqlite3.Connection) -> None:
        super().__init__(logging.WARNING)
        self.blocker = blocker

    def emit(self, record: logging.LogRecord) -> None:
        if "the database was locked" in record.getMessage():
            self.blocker.rollback()


async def test_the_ivr_incident_waits_out_a_held_lock(tmp_path: Path, short_busy: None) -> None:
    """The IVR's incident, asked for while another writer holds the lock past the busy timeout:
    it is opened once the lock is free (before retry_locked, "database is locked" sent the
    caller to an agent without one)."""
    path = tmp_path / "cti.sqlite3"
    engine = await _engine(path)
    desk = DeskService(db.session_maker(engine), NumberPlan(area_code="10"), ZoneInfo("UTC"))
    blocker = _hold_lock(path)
    release = _ReleaseOnRetry(blocker)
    logging.getLogger("cti.db").addHandler(release)
    new = NewIncident(
        "fault", "网络", "VPN 断了", "phone", "13800138000", "+8613800138000", None,
        "1700000000.1", "zh", "1",
    )  # fmt: skip
    try:
        number = await desk.open_incident(new)
        assert number == datetime.now(UTC).strftime("%y%m%d") + "001"
    finally:
        logging.getLogger("cti.db").removeHandler(release)
        blocker.close()
        await engine.dispose()
