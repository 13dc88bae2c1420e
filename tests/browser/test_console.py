"""The lead's console and the TV wallboard in headless Chromium against a real server and
database: a lead adds an agent, puts an engineer on call, publishes an outage announcement and
edits an article from the pages, the audit page shows each write; the agent added logs in. The
TV wallboard fills 1920x1080 with large figures, the half-hour chart and the banner in words,
and stays bounded (DOM and JS heap) through hundreds of pushed snapshots and reconnects.
Screenshots go to docs/ when CTI_UPDATE_SCREENSHOTS is set."""

import os
import shutil
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, expect

from cti.settings import load_settings
from desk.web.app import create_app
from desk.web.keys import HUB, KNOWLEDGE
from desk.web.messages import WALLBOARD
from tests.support.staff import PASSWORD, add_staff, login

pytestmark = [pytest.mark.browser]
DOCS = Path(__file__).resolve().parents[2] / "docs"
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[TestClient]:
    env = {"CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
           "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x",
           "CTI_DATA_DIR": str(tmp_path), "CTI_TTS_ROOT": ""}  # fmt: skip
    client = TestClient(TestServer(create_app(load_settings(None, env), with_core=False)))
    await client.start_server()
    await add_staff(client.server.app, "lead", "lead", name="刘主管")
    yield client
    await client.close()


async def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    path = Path(os.environ.get("CTI_SCREENSHOT_DIR", "/tmp")) / name
    await page.screenshot(path=str(path), full_page=full_page)
    if os.environ.get("CTI_UPDATE_SCREENSHOTS"):
        DOCS.mkdir(exist_ok=True)
        shutil.copy(path, DOCS / name)


async def log_in(page: Page, base: str, username: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/login?lang=zh")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


async def test_a_lead_runs_the_desk_from_the_pages_and_the_audit_log_shows_it(
    browser: Browser, server: TestClient
) -> None:
    base = str(server.make_url("")).rstrip("/")
    page = await browser.new_page(viewport={"width": 1400, "height": 900})
    await log_in(page, base, "lead")
    # Staff: a new agent, with Table A.2's fields; a bad extension is refused by name first.
    await page.goto(f"{base}/staff?lang=zh")
    form = page.locator("#add-staff")
    await form.locator("[name=username]").fill("zhaoliu")
    await form.locator("[name=name]").fill("赵六")
    await form.locator("[name=extension]").fill("10x")
    await form.locator("[name=position]").fill("热线工程师")
    await form.locator("[name=services]").fill("邮箱, VPN")
    await form.locator("[name=office_phone]").fill("010-62345601")
    await form.locator("[name=password]").fill("zhaoliu pass 1")
    await form.locator("button[type=submit]").click()
    await expect(form.locator(".msg")).to_contain_text("extension")
    await form.locator("[name=extension]").fill("1004")
    await form.locator("button[type=submit]").click()
    await expect(page.locator('#staff tr[data-username="zhaoliu"]')).to_contain_text("热线工程师")
    await shot(page, "console-staff.png")
    # On call: the new engineer, now until tomorrow.
    await page.goto(f"{base}/oncall?lang=zh")
    add = page.locator("#add-oncall")
    await add.locator("[name=staff]").select_option("zhaoliu")
    await add.locator("[name=mobile]").fill("13900000004")
    now = datetime.now(TZ)
    await add.locator("[name=starts_at]").fill(
        (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    )
    await add.locator("[name=ends_at]").fill((now + timedelta(hours=20)).strftime("%Y-%m-%dT%H:%M"))
    await add.locator("button[type=submit]").click()
    await expect(page.locator("#now-on-call")).to_contain_text("赵六")
    await shot(page, "console-oncall.png")
    # An outage announcement.
    await page.goto(f"{base}/announcements?lang=zh")
    ann = page.locator("#new-announcement")
    await ann.locator("[name=kind]").select_option("outage")
    await ann.locator("[name=title]").fill("邮箱故障")
    await ann.locator("[name=text_zh]").fill("邮箱系统故障，正在抢修，预计一小时内恢复。")
    await ann.locator("button[type=submit]").click()
    await expect(page.locator("#announcements")).to_contain_text("邮箱故障")
    await shot(page, "console-announcements.png")
    # An article, added then edited: the next match finds the edited text.
    created = await server.post(
        "/api/knowledge", json={"title": "打印机卡纸", "body": "打开前盖"},
        headers={"X-CSRF-Token": await login(server, "lead")},
    )  # fmt: skip
    article = await created.json()
    await page.goto(f"{base}/knowledge?lang=zh")
    box = page.locator(f'details.article[data-id="{article["id"]}"]')
    await box.locator("summary").click()
    await box.locator("[name=title]").fill("VPN 连不上")
    await box.locator("[name=body]").fill("重新安装 VPN 客户端并检查证书")
    await box.locator("button[type=submit]").click()
    await expect(
        page.locator(f'details.article[data-id="{article["id"]}"] summary')
    ).to_contain_text("VPN")
    found = await server.server.app[KNOWLEDGE].match("VPN 连不上", fresh=True)
    assert [a["id"] for a in found["knowledge"]] == [article["id"]]
    await shot(page, "console-knowledge.png")
    for path, name in (("/hours", "console-hours.png"), ("/routing", "console-routing.png"),
                       ("/directory", "console-directory.png")):  # fmt: skip
        await page.goto(f"{base}{path}?lang=zh")
        await shot(page, name)
    # The hours: a bad range is refused with the field named, the calendar previews a holiday.
    await page.goto(f"{base}/hours?lang=zh")
    await page.fill("[data-day=sat]", "09:00-08:00")
    await page.click("#hours-preview")
    await expect(page.locator("#hours-form .msg")).to_contain_text("weekly.sat[1]")
    await page.fill("[data-day=sat]", "09:00-12:00")
    await page.click("#hours-preview")
    await expect(page.locator("#said-zh")).to_contain_text("周六 9点至12点")
    # The audit log shows each of those writes.
    await page.goto(f"{base}/audit?lang=zh&actor=lead")
    table = page.locator("#audit")
    for action in ("staff.create", "oncall.add", "announcement.create", "article.update"):
        await expect(table).to_contain_text(action)
    await shot(page, "console-audit.png")
    # The agent the lead added logs in to their desk.
    agent = await browser.new_page()
    await log_in(agent, base, "zhaoliu", "zhaoliu pass 1")
    assert agent.url.endswith("/agent")
    await agent.close()
    await page.close()


def board(i: int, *, backed_up: bool) -> dict[str, Any]:
    """A wallboard snapshot as reports/wallboard.py makes it (two queues, eight agents)."""
    today = {"offered": 120 + i, "answered": 110, "abandoned": 6, "overflowed": 4,
             "service_level": 0.78, "asa": 17.4, "aht": 210.0, "abandon_rate": 0.05,
             "short_abandoned": 1, "timed_out": 0}  # fmt: skip
    agents = {"ready": 2, "ringing": 0, "on_call": 4, "wrap_up": 1, "paused": 1, "logged_out": 0}
    return {
        "type": "wallboard", "at": 1_800_000_000 + i, "timezone": "Asia/Shanghai",
        "today": "2026-11-30", "service_level_seconds": 20,
        "thresholds": {"waiting": [3, 6], "longest_wait": [60, 120],
                       "service_level": [0.8, 0.6], "abandon_rate": [0.05, 0.1]},
        "chart": {"day": "2026-11-30", "slots": [f"{h // 2:02d}:{h % 2 * 30:02d}" for h in range(48)],
                  "calls": [0] * 16 + [4, 9, 14, 18, 12, 9, 6, 11, 16, 13, 9, 7, 3] + [0] * 19,
                  "forecast": [0.0] * 16 + [5, 10, 12, 15, 14, 10, 7, 10, 14, 12, 10, 6, 2] + [0.0] * 19},
        "queues": [{"queue": q, "waiting": 4 + i % 3, "longest_wait": 75.0, "agents": agents,
                    "today": today, "arrival_rate_per_hour": 40.0,
                    "backed_up": None} for q in ("helpdesk", "helpdesk-en")],
        "total": {"queue": "*", "waiting": 8, "longest_wait": 95.0, "agents": agents, "today": today},
        "agents": [{"ext": f"10{n:02d}", "state": "on_call" if n < 4 else "ready", "reason": "",
                    "since": 1_800_000_000 - 60 * n, "wrapup_until": None, "queues": ["helpdesk"],
                    "name": ["王芳", "李四", "张伟", "刘洋", "陈静", "杨磊", "赵敏", "黄强"][n],
                    "call": {"caller_number": "13800138000", "caller_name": "张三",
                             "incident_number": f"26113000{n}", "answered_at": None} if n < 4 else None}
                   for n in range(8)],
        "waiting_calls": [{"uniqueid": f"u{i}.{n}", "queue": "helpdesk", "caller_number": f"1380013{n:04d}",
                           "incident_number": f"2611300{n:02d}", "wait": 30.0 + n, "overflowed": False}
                          for n in range(8)],
        "banners": [{"queue": "helpdesk", "since": 1_800_000_000, "alert_id": 1,
                     "rules": {"waiting_per_ready_agent": None, "no_agent_ready": 1.0},
                     "text": {"zh": "每名就绪坐席的等待来电 ∞, 无就绪坐席",
                              "en": "callers waiting per ready agent ∞, no agent ready"}}]
        if backed_up else [],
        "announcements": [{"kind": "outage", "title": "邮箱故障", "text_zh": "邮箱系统故障，正在抢修。",
                           "text_en": "E-mail is down."}],
    }  # fmt: skip


async def test_the_tv_wallboard_fills_the_screen_and_stays_bounded_for_days(
    browser: Browser, server: TestClient
) -> None:
    base = str(server.make_url("")).rstrip("/")
    page = await browser.new_page(viewport={"width": 1920, "height": 1080})
    await log_in(page, base, "lead")
    await page.goto(f"{base}/wallboard?mode=tv&lang=zh")
    await page.wait_for_function("() => document.body.dataset.ws === 'open'")
    hub = server.server.app[HUB]
    hub.publish(WALLBOARD, board(0, backed_up=True))
    await expect(page.locator("#banners")).to_contain_text("无就绪坐席")
    await expect(page.locator("#banners")).not_to_contain_text("no_agent_ready")
    assert await page.locator("#chart rect.bar").count() == 48
    assert await page.locator("#chart polyline.forecast").count() == 1
    size = await page.evaluate(
        "parseFloat(getComputedStyle(document.querySelector('[data-tile=waiting] .big')).fontSize)"
    )
    assert size >= 64  # read from across the room
    width, height = await page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    assert width <= 1920 and height <= 1080  # one screen: nothing cut off, nothing to scroll
    await expect(page.locator('[data-tile="service_level"] .big')).to_have_text("78.0%")
    await expect(page.locator('[data-tile="service_level"]')).to_have_attribute(
        "data-level", "amber"
    )
    await expect(page.locator("#agents")).to_contain_text("王芳")
    # The clock is the desk's (Asia/Shanghai), whatever the screen's zone (UTC here).
    clock = await page.locator("#clock").inner_text()
    assert datetime.now(TZ).strftime("%H:") in clock
    await shot(page, "wallboard-tv.png", full_page=False)

    cdp = await page.context.new_cdp_session(page)

    async def measure() -> tuple[float, int]:
        await cdp.send("HeapProfiler.collectGarbage")
        heap = await cdp.send("Runtime.getHeapUsage")
        nodes = await page.evaluate("document.getElementsByTagName('*').length")
        return float(heap["usedSize"]), int(nodes)

    async def push(rounds: int, start: int) -> None:
        for i in range(start, start + rounds):
            hub.publish(WALLBOARD, board(i, backed_up=i % 2 == 0))
            if i % 10 == 0 or i % 50 == 49:  # the page has drawn every board sent so far
                await page.wait_for_function(f"() => (window.__boards || 0) >= {i + 1}")
            if i % 50 == 49:  # the server drops the socket: the page reconnects by itself
                opens = await page.evaluate("window.__opens || 0")
                for session_id in list(hub._sessions):
                    await hub.end_session(session_id)
                await page.wait_for_function(
                    f"() => (window.__opens || 0) > {opens}", timeout=20000
                )

    await push(300, 1)
    heap1, nodes1 = await measure()
    await push(300, 301)
    heap2, nodes2 = await measure()
    assert nodes2 <= nodes1 + 20, (nodes1, nodes2)
    assert heap2 <= heap1 * 1.25 + 512 * 1024, (heap1, heap2)
    assert await page.evaluate("window.__opens") >= 12
    await page.close()
