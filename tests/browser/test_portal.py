"""The portal in headless Chromium: what the desk publishes in both languages, and a requester
who follows the link in the resolution notice, says it is not solved, and sees it reopened."""

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.async_api import Browser

from cti.phone import NumberPlan
from desk.directory import upsert_user
from desk.web.keys import SESSIONS
from tests.support.db import incident_history, query
from tests.support.smtp import smtp_server
from tests.support.staff import add_staff, login
from tests.support.web import desk_server, from_address

pytestmark = [pytest.mark.browser]


async def test_a_requester_reopens_from_the_notice_link(tmp_path: Path, browser: Browser) -> None:
    with smtp_server() as (port, inbox):
        async with (
            desk_server(
                tmp_path,
                CTI_SMTP_HOST="127.0.0.1",
                CTI_SMTP_PORT=str(port),
                CTI_DESK_PHONE="010-62345000",
            ) as server,  # fmt: skip
            from_address(server, "127.0.0.3") as agent,
        ):
            async with server.app[SESSIONS].begin() as s:
                user, _ = await upsert_user(s, {"employee_no": "E1001", "name": "张三",
                                                "email": "zhangsan@example.com"}, by="test",
                                            now=datetime.now(UTC), plan=NumberPlan(area_code="10"))  # fmt: skip
            await add_staff(server.app, "agent1", "agent", "1001")
            await login(agent, "agent1")
            r = await agent.post("/api/incidents", json={"type": "fault", "symptom": "VPN 断线",
                                                         "category": "网络", "user_id": user.id})  # fmt: skip
            number = (await r.json())["number"]
            r = await agent.post(f"/api/incidents/{number}/resolve", json={"text": "已重置"})
            assert (await r.json())["notice"]["sent"] is True
            body = inbox.messages[-1].get_payload(decode=True).decode()
            m = re.search(r"https?://[^/\s]+(/portal/feedback\?t=\S+)", body)
            assert m, body

            page = await browser.new_page()
            await page.goto(str(server.make_url("/portal?lang=en")))
            assert await page.text_content("#help-phone") == "010-62345000"
            assert "Monday to Friday" in (await page.text_content("#help-hours") or "")
            assert await page.locator("#services tbody tr").count() >= 4
            await page.click("#other-lang")
            await page.wait_for_selector("text=服务目录与服务承诺")

            await page.goto(str(server.make_url(m.group(1))))
            assert await page.text_content("#incident-number") == number
            await page.click("#reopen")  # no reason given: the page says what is missing
            await page.wait_for_selector("#portal-error")
            await page.fill("textarea[name=text]", "还是连不上")
            await page.click("#reopen")
            await page.wait_for_selector("#done")
            for _ in range(20):
                if query(tmp_path, "SELECT state FROM incidents")[0]["state"] == "in_progress":
                    break
                await asyncio.sleep(0.1)
            assert query(tmp_path, "SELECT state FROM incidents")[0]["state"] == "in_progress"
            reopened = [
                h for h in incident_history(tmp_path, number) if h["to_state"] == "in_progress"
            ]
            assert reopened[-1]["text"] == "还是连不上" and reopened[-1]["by"].startswith(
                "requester"
            )
            await page.close()
