"""The lead's console over HTTP on a real SQLite file (PostgreSQL with CTI_TEST_DATABASE): every
page in both languages, each write and its audit entry, validation that names the field, and the
attacker's tests (no session, the agent's role, another admin, hostile input, parallel requests).
No Asterisk: the phone side of these settings is tests/browser/test_console.py's."""

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from cti.ivr.hours import describe_hours, from_doc
from cti.phone import NumberPlan
from cti.settings import load_settings
from desk.ivr_port import DeskService
from desk.models import AuditEntry, User
from desk.web.app import create_app
from desk.web.keys import HOURS_SEED, KNOWLEDGE, ROUTING_CONFIG, SESSIONS
from tests.support.staff import PASSWORD, add_staff, browser_like, logged_in, login

PAGES = ("/console", "/announcements", "/oncall", "/knowledge", "/staff", "/directory",
         "/hours", "/routing", "/audit")  # fmt: skip


def settings_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
            "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x",
            "CTI_DATA_DIR": str(tmp_path), "CTI_TTS_ROOT": "", **extra}  # fmt: skip


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[TestClient]:
    client = TestClient(
        TestServer(create_app(load_settings(None, settings_env(tmp_path)), with_core=False))
    )
    await client.start_server()
    yield client
    await client.close()


async def audit_rows(client: TestClient) -> list[AuditEntry]:
    async with client.server.app[SESSIONS]() as s:
        return list((await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all())


async def test_every_console_page_renders_in_both_languages_for_a_lead_only(
    app_client: TestClient,
) -> None:
    for path in PAGES:  # no session: to the login
        resp = await app_client.get(path, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"].startswith("/login"), path
    await logged_in(app_client, "agent", "agent1")
    for path in PAGES:  # an agent: not for their role
        assert (await app_client.get(path)).status == 403, path
    await logged_in(app_client, "lead", "lead1")
    for path in PAGES:
        zh = await app_client.get(path + "?lang=zh")
        en = await app_client.get(path + "?lang=en")
        assert zh.status == 200 and en.status == 200, path
        zh_text, en_text = await zh.text(), await en.text()
        assert "审计日志" in zh_text and "Audit log" in en_text, path  # the console's menu
        assert "Audit log" not in zh_text, path
