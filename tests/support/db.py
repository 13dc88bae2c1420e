"""Reading (and seeding) a test server's database directly: the SQLite file in the test's folder,
or the PostgreSQL database the test was given (tests/conftest.py registers it with `use`)."""

import asyncio
import re
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from cti.db import create_engine, session_maker
from cti.ivr.ports import NewIncident
from cti.phone import NumberPlan, normalize
from desk import directory, incidents
from desk.models import IncidentState

_URLS: dict[Path, str] = {}


def use(folder: Path, url: str) -> None:
    """Servers of the test whose folder this is store into `url` (see server_settings)."""
    _URLS[folder] = url


def forget(folder: Path) -> None:
    """Back to the SQLite file in the folder."""
    _URLS.pop(folder, None)


def url_of(folder: Path) -> str:
    """The database URL of the test whose folder this is."""
    return _URLS.get(folder) or f"sqlite+aiosqlite:///{folder / 'cti.sqlite3'}"


def query(folder: Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of `sql` (with ? placeholders) from the test's database."""
    url = url_of(folder)
    if url.startswith("sqlite"):
        con = sqlite3.connect(url.split(":///", 1)[1])
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute(sql, args)]
        finally:
            con.close()
    numbered = iter(range(1, 1000))
    pg_sql = re.sub(r"\?", lambda _: f"${next(numbered)}", sql)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")

    async def fetch() -> list[dict[str, Any]]:
        con = await asyncpg.connect(dsn)
        try:
            return [dict(r) for r in await con.fetch(pg_sql, *args)]
        finally:
            await con.close()

    # The caller may be inside the event loop that runs the server: a loop of its own, aside.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, fetch()).result()


def _one(folder: Path, sql: str, *args: Any) -> dict[str, Any] | None:
    rows = query(folder, sql, *args)
    return rows[0] if rows else None


def _all(folder: Path, sql: str, *args: Any) -> list[dict[str, Any]]:
    return query(folder, sql, *args)


async def call(tmp_path: Path, uniqueid: str, timeout: float = 10.0) -> dict[str, Any]:
    """The call's journal record once it has ended (the journal flushes every 0.2 s; the
    server may run in this event loop, so this waits without blocking it)."""
    deadline = time.monotonic() + timeout
    while True:
        row = _one(tmp_path, "SELECT * FROM calls WHERE uniqueid = ?", uniqueid)
        if (row is not None and row["ended_at"]) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert row is not None, f"no call record {uniqueid}"
    return row


def incident(tmp_path: Path, number: str) -> dict[str, Any]:
    row = _one(tmp_path, "SELECT * FROM incidents WHERE number = ?", number)
    assert row is not None, f"no incident {number}"
    return row


def incident_of_call(tmp_path: Path, uniqueid: str) -> dict[str, Any] | None:
    return _one(tmp_path, "SELECT * FROM incidents WHERE call_uniqueid = ? ORDER BY id", uniqueid)


def incident_history(tmp_path: Path, number: str) -> list[dict[str, Any]]:
    return _all(tmp_path, "SELECT e.* FROM incident_events e JOIN incidents i ON i.id = e.incident_id "
                "WHERE i.number = ? ORDER BY e.id", number)  # fmt: skip


def survey_of_call(tmp_path: Path, uniqueid: str) -> dict[str, Any] | None:
    return _one(tmp_path, "SELECT * FROM survey_responses WHERE call_uniqueid = ?", uniqueid)


def ivr_steps(tmp_path: Path, uniqueid: str) -> list[dict[str, Any]]:
    return _all(tmp_path, "SELECT * FROM ivr_steps WHERE call_uniqueid = ? ORDER BY id", uniqueid)


async def import_users(tmp_path: Path, csv_file: Path) -> None:
    engine = create_engine(url_of(tmp_path))
    try:
        async with session_maker(engine).begin() as session:
            result = await directory.import_users(
                session,
                csv_file.read_bytes(),
                by="test",
                now=datetime.now(UTC),
                plan=NumberPlan(area_code="10"),
            )
            assert not result.errors, result.errors
    finally:
        await engine.dispose()


async def make_incident(tmp_path: Path, caller: str, *, state: str = "new") -> str:
    """An incident opened from `caller`'s phone, moved to `state`."""
    engine = create_engine(url_of(tmp_path))
    now = datetime.now(UTC)
    try:
        async with session_maker(engine).begin() as session:
            key = normalize(caller, NumberPlan(area_code="10")).key
            users = await directory.find_by_key(session, key) if key else []
            requester = directory.requester_of(users[0]) if users else None
            new = NewIncident(
                "fault", "故障报告", "test", "phone", caller, key, requester, "", "zh", ""
            )
            inc = await incidents.create(
                session, new, recorded_by="test", now=now, local_day=now.date()
            )
            path = {"resolved": ["in_progress", "resolved"], "in_progress": ["in_progress"],
                    "closed": ["in_progress", "resolved", "closed"]}.get(state, [])  # fmt: skip
            for to in path:
                await incidents.change_state(
                    session, inc, IncidentState(to), by="agent 1001", now=now
                )
            return inc.number
    finally:
        await engine.dispose()
