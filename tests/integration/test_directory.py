"""The user directory on a real SQLite file: CSV import, lookup by phone, change history."""

import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cti.db import create_engine, migrate, session_maker
from cti.phone import NumberPlan
from desk import directory
from desk.migrations import MIGRATIONS

CSV = Path(__file__).resolve().parents[1] / "fixtures" / "users.csv"
NOW = datetime(2026, 11, 25, tzinfo=UTC)


@pytest.fixture
async def sessions(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'cti.sqlite3'}")
    await migrate(engine, MIGRATIONS)
    yield session_maker(engine)
    await engine.dispose()


async def test_import_and_lookup_by_any_form_of_the_number(sessions) -> None:  # type: ignore[no-untyped-def]
    async with sessions.begin() as s:
        result = await directory.import_users(
            s, CSV.read_bytes(), by="test", now=NOW, plan=NumberPlan(area_code="10")
        )
    assert (result.created, result.errors) == (3, [])
    async with sessions() as s:
        for key in ("+8613800138000", "+861062345678", "ext:1002", "+8613712345678"):
            users = await directory.find_by_key(s, key)
            assert len(users) == 1, key
        assert (await directory.find_by_employee(s, "10087")).name == "李四"  # type: ignore[union-attr]


async def test_update_keeps_history_and_reindexes_phones(sessions) -> None:  # type: ignore[no-untyped-def]
    async with sessions.begin() as s:
        await directory.import_users(
            s, CSV.read_bytes(), by="test", now=NOW, plan=NumberPlan(area_code="10")
        )
    changed = (
        CSV.read_text().replace("13800138000", "13811112222").replace("信息中心", "信息技术部")
    )
    async with sessions.begin() as s:
        result = await directory.import_users(
            s, changed.encode(), by="agent 1001", now=NOW, plan=NumberPlan(area_code="10")
        )
    assert (result.created, result.updated, result.unchanged) == (0, 1, 2)
    async with sessions() as s:
        assert not await directory.find_by_key(s, "+8613800138000")
        assert (await directory.find_by_key(s, "+8613811112222"))[0].department == "信息技术部"


async def test_errors_name_the_line_and_change_nothing(sessions, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = "工号,姓名,手机,邮箱\n30001,王五,13600136000,w@example.com\n30002,,12,not-an-email\n30001,赵六,,\n"
    async with sessions.begin() as s:
        result = await directory.import_users(
            s, bad.encode("gb18030"), by="t", now=NOW, plan=NumberPlan(area_code="10")
        )
    assert result.created == 0
    assert result.errors[0].startswith("line 3: ") and "name is required" in result.errors[0]
    assert "mobile '12'" in result.errors[0] and "not-an-email" in result.errors[0]
    assert result.errors[1].startswith("line 4: ") and "appears twice" in result.errors[1]
    rows = (
        sqlite3.connect(tmp_path / "cti.sqlite3").execute("SELECT count(*) FROM users").fetchone()
    )
    assert rows == (0,)


def test_cli_import_reports_and_exits_nonzero_on_errors(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CTI_DATA_DIR": str(tmp_path),
           "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x"}  # fmt: skip
    ok = subprocess.run(
        [sys.executable, "-m", "cti", "user", "import", str(CSV)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0 and "3 created" in ok.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("employee_no,name,fax\n1,x,2\n")
    out = subprocess.run(
        [sys.executable, "-m", "cti", "user", "import", str(bad)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert (
        out.returncode == 1
        and "unknown columns fax" in out.stdout
        and "nothing was imported" in out.stdout
    )
