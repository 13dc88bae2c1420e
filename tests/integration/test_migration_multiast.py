"""Migration 0012_multiast on a journal that already has calls (SQLite, or PostgreSQL when the
run asks for it): they become the default Asterisk's, two Asterisks may then share a Uniqueid,
the half-hour figures still follow every write, and going back is refused while they do."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from cti.db import alembic_config, create_engine
from tests.support.db import query, url_of

MIGRATIONS = Path(__file__).resolve().parents[2] / "desk" / "migrations"
ROW = "INSERT INTO calls {cols} VALUES {vals}"


def _insert(url: str, asterisk: str | None, uniqueid: str, hour: int) -> None:
    names = ["uniqueid", "linkedid", "channel", "caller_number", "caller_name", "dialled_number",
             "arrived_at", "ended_at", "offers", "ring_no_answer", "overflows", "source",
             "inferred", "updated_at", "holds", "outcome"]  # fmt: skip
    values: dict[str, Any] = {
        "uniqueid": uniqueid, "linkedid": uniqueid, "channel": "", "caller_number": "",
        "caller_name": "", "dialled_number": "",
        "arrived_at": datetime(2026, 11, 30, hour, tzinfo=UTC),
        "ended_at": datetime(2026, 11, 30, hour, 1, tzinfo=UTC),
        "offers": "[]", "ring_no_answer": 0, "overflows": "[]", "source": "ami",
        "inferred": "[]", "updated_at": datetime(2026, 11, 30, hour, 1, tzinfo=UTC), "holds": 0,
        "outcome": "answered",
    }  # fmt: skip
    if asterisk is not None:
        names.append("asterisk")
        values["asterisk"] = asterisk
    sqlite = url.startswith("sqlite")
    if sqlite:  # SQLite keeps naive UTC text (cti.journal.models.UtcDateTime)
        values = {k: v.replace(tzinfo=None) if isinstance(v, datetime) else v
                  for k, v in values.items()}  # fmt: skip
    cols = "(" + ", ".join(names) + ")"
    vals = "(" + ", ".join(
        f"CAST(:{n} AS JSON)" if n in ("offers", "overflows", "inferred") and not sqlite
        else f":{n}" for n in names
    ) + ")"  # fmt: skip

    async def run() -> None:
        engine = create_engine(url)
        try:
            async with engine.begin() as con:
                await con.execute(text(ROW.format(cols=cols, vals=vals)), values)
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_existing_calls_become_mains_and_uniqueids_may_then_repeat(tmp_path: Path) -> None:
    url = url_of(tmp_path)
    cfg = alembic_config(url, MIGRATIONS)
    command.upgrade(cfg, "0011_slot_hold")
    _insert(url, None, "1764464400.1", 1)
    command.upgrade(cfg, "head")
    assert query(tmp_path, "SELECT asterisk, uniqueid FROM calls") == [
        {"asterisk": "main", "uniqueid": "1764464400.1"}
    ]
    for table in ("link_outages", "ivr_steps", "agent_states"):
        assert query(tmp_path, f"SELECT count(asterisk) AS n FROM {table}") == [{"n": 0}]
    slots = {r["slot"] for r in query(tmp_path, "SELECT slot FROM call_slots")}

    # The same Uniqueid on another Asterisk is another call; on the same one, refused.
    _insert(url, "east", "1764464400.1", 5)
    with pytest.raises(Exception, match=r"(?i)unique"):
        _insert(url, "east", "1764464400.1", 6)
    assert len(query(tmp_path, "SELECT id FROM calls")) == 2
    # The half-hour triggers (0010_perf) survived the rebuild: the new call's slot is stale.
    after = {r["slot"] for r in query(tmp_path, "SELECT slot FROM call_slots")}
    assert len(after - slots) == 1

    # Back to one Asterisk only when no Uniqueid is shared, and nothing changed meanwhile.
    with pytest.raises(RuntimeError, match="share Uniqueid"):
        command.downgrade(cfg, "0011_slot_hold")
    assert len(query(tmp_path, "SELECT asterisk FROM calls")) == 2
    command.upgrade(cfg, "head")  # still at head: a no-op
    asyncio.run(_delete_east(url))
    command.downgrade(cfg, "0011_slot_hold")
    assert query(tmp_path, "SELECT uniqueid FROM calls") == [{"uniqueid": "1764464400.1"}]
    with pytest.raises(Exception, match=r"(?i)unique"):
        _insert(url, None, "1764464400.1", 7)
    command.upgrade(cfg, "head")
    assert query(tmp_path, "SELECT asterisk FROM calls") == [{"asterisk": "main"}]


async def _delete_east(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as con:
            await con.execute(text("DELETE FROM calls WHERE asterisk = 'east'"))
    finally:
        await engine.dispose()


def test_cti_report_per_site(tmp_path: Path) -> None:
    """`cti report --site`: one declared site's report into the archive; an unknown site is
    refused with the sites there are, and nothing is written."""
    import json
    import os
    import subprocess
    import sys

    env = {
        **os.environ,
        "CTI_DATA_DIR": str(tmp_path / "data"),
        "CTI_DATABASE_URL": url_of(tmp_path),
        "CTI_AMI_HOST": "127.0.0.1",
        "CTI_AMI_USER": "cti",
        "CTI_AMI_SECRET": "a-secret-of-this-site-only",
        "CTI_SITE": "北京",
        "CTI_ASTERISKS": json.dumps({"east": {"site": "上海", "ami_host": "127.0.0.1"}}),
    }

    def report(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "cti", "report", "daily", "--date", "2026-11-30",
             "--format", "csv", *args],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    bad = report("--site", "广州")
    assert bad.returncode == 2 and "site must be one of 北京, 上海" in bad.stderr
    assert not (tmp_path / "data" / "reports").exists()
    good = report("--site", "上海")
    assert good.returncode == 0, good.stderr
    assert Path(good.stdout.strip()).name == "2026-11-30_site-east_zh.csv"
