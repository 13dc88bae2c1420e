"""The incident workbench in headless Chromium against the real Asterisk, after hours: a caller
leaves a voicemail; the open workbench is alerted and lists it; the agent opens it, plays the
recording (fetched with Range requests) and works it to closed from the detail page, setting the
configuration item the forward-looking report groups by; an incident past its response target
shows as breached on the workbench and on the wallboard; a password request for a privileged
account is refused in writing on the portal."""

import asyncio
import os
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, Response, expect
from sqlalchemy import select, update

from cti.ami.client import AmiClient
from cti.sandbox.instance import InstanceState
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator
from desk.models import Incident, User
from desk.web.app import create_app
from desk.web.keys import SESSIONS
from reports.build import ReportOptions, build_report, period_for
from tests.conftest import server_settings
from tests.support import db
from tests.support.staff import PASSWORD, add_staff, logged_in

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DOCS = Path(__file__).resolve().parents[2] / "docs"


async def _shot(page: Page, tmp_path: Path, name: str) -> None:
    """A screenshot (kept in docs/ when CTI_UPDATE_SCREENSHOTS is set)."""
    path = tmp_path / name
    await page.screenshot(path=str(path), full_page=True)
    if os.environ.get("CTI_UPDATE_SCREENSHOTS"):
        shutil.copy(path, DOCS / name)


async def _login(browser: Browser, http: TestClient, username: str, path: str) -> Page:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1500, "height": 1000})
    page = await context.new_page()
    await page.goto(str(http.make_url(f"/login?next={path}")))
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"**{path}")
    return page


async def test_voicemail_to_closed_breaches_and_privileged_refusal(
    browser: Browser, sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    settings = server_settings(
        sandbox_state,
        tmp_path,
        CTI_CONFIG_DIR=str(FIXTURES / "config" / "closed"),
        CTI_SLA_SWEEP_SECONDS="0",
    )
    http = TestClient(TestServer(create_app(settings)))
    await http.start_server()
    try:
        app = http.server.app
        await db.import_users(tmp_path, FIXTURES / "users.csv")
        await logged_in(http, "lead", "desklead")
        r = await http.post("/api/cmdb", json={"name": "Exchange 邮件服务器", "service": "邮件"})
        assert r.status == 201
        await add_staff(app, "agent_a", "agent", "1301", name="王芳")
        page = await _login(browser, http, "agent_a", "/incidents")

        # A voicemail after hours: the open workbench is told, and lists it.
        caller = CallerSpec(90, 0, "", "13800138000", "张三",
                            reactions={"after_hours_menu": "1",
                                       "voicemail_intro": "wwwwwwwwwwwwwwwwwwww#"})  # fmt: skip
        sim = Simulator(sim_client, SimulationPlan(
            rate=1, agents=[AgentSpec("1001", (1, 1), (2, 3))], callers=[caller]))  # fmt: skip
        await sim.setup_agents()
        (call,) = (await sim.run(timeout=240)).calls
        incident = db.incident_of_call(tmp_path, call.uniqueid)
        assert incident is not None and incident["channel"] == "voicemail"
        number = incident["number"]
        await expect(page.locator(f"#desk-alerts [data-number='{number}']")).to_be_visible(
            timeout=20000
        )
        row = page.locator(f"#incidents tr[data-number='{number}']")
        await expect(row).to_contain_text("张三", timeout=20000)

        # The call log plays it too.
        await page.goto(str(http.make_url("/calls")))
        link = page.locator(f"#calls tr[data-uniqueid='{call.uniqueid}'] a.voicemail")
        href = await link.get_attribute("href")
        assert href is not None
        part = await page.request.get(str(http.make_url(href)), headers={"Range": "bytes=0-99"})
        assert part.status == 206 and len(await part.body()) == 100
        await page.goto(str(http.make_url("/incidents")))

        # Open it and play the recording: the player asks for byte ranges.
        ranges: list[Response] = []
        page.on(
            "response",
            lambda resp: ranges.append(resp) if "/voicemail" in resp.url else None,
        )
        await row.locator("a").first.click()
        await page.wait_for_url(f"**/incidents/{number}")
        await expect(page.locator("#voicemail")).to_be_visible()
        player = page.locator("#voicemail-player")
        await player.click()  # a user gesture, so play() is allowed
        await page.evaluate("document.getElementById('voicemail-player').play()")
        await page.wait_for_function(
            "() => { const a = document.getElementById('voicemail-player');"
            " return a.duration > 0 && a.currentTime > 0; }",
            timeout=20000,
        )
        assert any(resp.status == 206 for resp in ranges), [r.status for r in ranges]

        # Work it to closed from the page.
        form = page.locator("#classify-form")
        await form.locator("select[name=config_item]").select_option("Exchange 邮件服务器")
        await form.locator("select[name=type]").select_option("fault")
        await form.locator("select[name=priority]").select_option("2")
        await form.locator("button[type=submit]").click()
        await expect(page.locator("#message")).to_have_class("ok")
        await page.click("#btn-take")
        await expect(page.locator("#inc-assignee")).to_have_text("agent_a")
        await page.fill("#action-text", "已回电，邮箱密码过期，已指导用户修改")
        await page.click("#btn-note")
        await expect(page.locator("#history li[data-kind=note]")).to_have_count(1)
        await page.click("#btn-resolve")
        await expect(page.locator("#inc-state")).to_have_attribute("data-state", "resolved")
        page.once("dialog", lambda d: asyncio.ensure_future(d.accept()))
        await page.click("#btn-close")
        await expect(page.locator("#inc-state")).to_have_attribute("data-state", "closed")
        await _shot(page, tmp_path, "incident-page.png")
        closed = db.incident(tmp_path, number)
        assert closed["state"] == "closed" and closed["config_item"] == "Exchange 邮件服务器"
        assert closed["assignee"] == "agent_a" and closed["responded_at"] is not None

        # An incident past its response target: breached on the workbench and the wallboard.
        r = await http.post("/api/incidents", json={"type": "fault", "symptom": "网盘无法访问",
                                                    "config_item": "Exchange 邮件服务器"})  # fmt: skip
        late = (await r.json())["number"]
        async with app[SESSIONS].begin() as s:
            await s.execute(
                update(Incident)
                .where(Incident.number == late)
                .values(
                    responded_at=None,
                    response_due_at=datetime.now(UTC) - timedelta(minutes=5),
                )
            )
        await page.goto(str(http.make_url("/incidents")))
        late_row = page.locator(f"#incidents tr[data-number='{late}']")
        await expect(late_row).to_have_class("breached")
        await page.select_option("#filters select[name=sla]", "breached")
        await expect(page.locator("#incidents tbody tr")).to_have_count(1)
        await expect(page.locator("#incidents tbody tr").first).to_have_attribute(
            "data-number", late
        )
        await _shot(page, tmp_path, "workbench.png")
        board = await _login(browser, http, "desklead", "/wallboard")
        breached = board.locator("[data-sla=breached]")
        await expect(breached.locator("b")).to_have_text("1", timeout=20000)
        await expect(breached).to_have_attribute("data-level", "red")
        await expect(board.locator(f"#sla-worst tr[data-number='{late}']")).to_be_visible()

        # Both faults name the item: the forward-looking report's weak components have data.
        report = await build_report(
            app[SESSIONS],
            period_for("forward", date.today(), ZoneInfo("Asia/Shanghai")),
            ReportOptions(),
        )
        assert {"config_item": "Exchange 邮件服务器", "faults": 2} in report["forward"][
            "repeated_faults"
        ]

        # 6.2 on the portal: the account named is privileged, refused in writing.
        async with app[SESSIONS].begin() as s:
            await s.execute(update(User).where(User.employee_no == "10087").values(privileged=True))
        portal = await (await browser.new_context(locale="zh-CN")).new_page()
        await portal.goto(str(http.make_url("/portal")))
        form = portal.locator("#request-form")
        await form.locator("input[name=name]").fill("张三")
        await form.locator("input[name=phone]").fill("13800138000")
        await form.locator("select[name=category]").select_option("密码重置")
        await form.locator("input[name=account]").fill("10087")
        await form.locator("textarea[name=symptom]").fill("请重置管理员账号密码")
        await form.locator("button[type=submit]").click()
        await expect(portal.locator("#portal-refused")).to_contain_text("特权账号")
        refused = (await portal.locator("#created-number").text_content() or "").strip()
        async with app[SESSIONS]() as s:
            row2 = await s.scalar(select(Incident).where(Incident.number == refused))
            assert row2 is not None and row2.escalated_to == "系统管理员组"
            assert row2.account == "10087"
    finally:
        await http.close()
