"""Issue 12's "Done when", in headless Chromium against the real Asterisk sandbox: a lead, from
the pages only, adds an agent, puts an engineer on call, publishes an outage announcement and
edits a knowledge article; then the phone side follows. The new agent logs in and takes a queue
call (the simulator's Local-channel phone for their extension); the caller hears the
announcement (Asterisk streamed that announcement's own audio file, and the IVR's step log says
so); the pop matches the edited article and shows the wait the caller had; the lead closes the
desk for today on the hours page, and the next caller's urgent fault is dialled to the engineer
just put on call (the Dial Asterisk ran, and the engineer's phone answered); the audit page shows
each of those writes."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, expect

from cti.ami import events as ev
from cti.ami.client import AmiClient, AmiOptions
from cti.sandbox.instance import InstanceState
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator
from desk.staff import upsert_staff
from desk.web.app import create_app
from desk.web.keys import SESSIONS
from tests.conftest import server_settings
from tests.support import db
from tests.support.staff import PASSWORD, add_staff, browser_like, login

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
TZ = ZoneInfo("Asia/Shanghai")  # the desk's zone (tests/fixtures/config/open/hours.yaml)
AGENT_EXT = "1404"
# The sandbox's carrier: 139000000NN answers after NN seconds.
ENGINEER_MOBILE = "13900000004"
FALLBACK = "13900000003"  # hours.yaml's static on-call number, which the roster must beat


class DialplanWatch:
    """What Asterisk executed, as AMI reports it to a second login of the simulator's user: every
    Newexten (application and its data) of the channels the test cares about."""

    def __init__(self, st: InstanceState) -> None:
        self.client = AmiClient(AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret))
        self.seen: list[ev.Newexten] = []
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.client.start()
        await self.client.wait_connected(30)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            e = await self.client.events.get()
            if isinstance(e, ev.Newexten):
                self.seen.append(e)

    def ran(self, uniqueid: str, application: str) -> list[str]:
        """The data of each `application` the channel `uniqueid` executed."""
        return [
            e.app_data for e in self.seen if e.uniqueid == uniqueid and e.application == application
        ]

    def in_context(self, context: str, exten: str) -> list[ev.Newexten]:
        """What channels in `context` at `exten` executed (e.g. a simulated mobile's phone)."""
        return [e for e in self.seen if e.context == context and e.exten == exten]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.close()


@asynccontextmanager
async def desk(st: InstanceState, tmp_path: Path) -> AsyncIterator[TestClient]:
    """The CTI server (AMI, FastAGI, journal) on the sandbox, its database on tmp_path."""
    http = TestClient(TestServer(create_app(server_settings(st, tmp_path, CTI_WRAPUP_SECONDS="2"))))
    await http.start_server()
    try:
        yield http
    finally:
        await http.close()


async def log_in(browser: Browser, base: str, username: str, password: str = PASSWORD) -> Page:
    context = await browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    await page.goto(f"{base}/login?lang=zh")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    return page


async def test_done_when_a_lead_sets_the_desk_up_from_the_pages_and_the_phones_follow(
    browser: Browser, sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    watch = DialplanWatch(sandbox_state)
    await watch.start()
    try:
        await lead_sets_up_and_the_phones_follow(
            browser, sim_client, sandbox_state, tmp_path, watch
        )
    finally:
        await watch.close()


async def lead_sets_up_and_the_phones_follow(
    browser: Browser,
    sim_client: AmiClient,
    sandbox_state: InstanceState,
    tmp_path: Path,
    watch: DialplanWatch,
) -> None:
    """The scenario (see the module's docstring)."""
    async with desk(sandbox_state, tmp_path) as http:
        app = http.server.app
        base = str(http.make_url("")).rstrip("/")
        # What the desk had before the lead sat down: the user directory, the lead, an engineer
        # (Table A.2 with a mobile, no desk phone) and an article about something else.
        await db.import_users(tmp_path, FIXTURES / "users.csv")
        await add_staff(app, "lead", "lead", name="刘主管")
        async with app[SESSIONS].begin() as s:
            await upsert_staff(s, {"username": "wanggong", "name": "王工", "role": "agent",
                                   "position": "网络工程师", "mobile": ENGINEER_MOBILE}, PASSWORD)  # fmt: skip
        setup = browser_like(http)
        try:
            await login(setup, "lead")
            made = await setup.post("/api/knowledge", json={"title": "打印机卡纸",
                                                            "body": "打开前盖，取出卡住的纸张。"})  # fmt: skip
            assert made.status == 201
            article = await made.json()
        finally:
            await setup.close()

        lead = await log_in(browser, base, "lead")
        # 1. Staff: a new agent with a desk phone (the sandbox's simulated phone for 1404).
        await lead.goto(f"{base}/staff?lang=zh")
        form = lead.locator("#add-staff")
        for name, value in {"username": "zhaoliu", "name": "赵六", "extension": AGENT_EXT,
                            "position": "热线工程师", "services": "账号, 邮箱",
                            "office_phone": "010-62345604", "password": "zhaoliu pass 1"}.items():  # fmt: skip
            await form.locator(f"[name={name}]").fill(value)
        await form.locator("button[type=submit]").click()
        # The password's hash (argon2) and the page's reload: more than expect's 5 s under load.
        await expect(lead.locator('#staff tr[data-username="zhaoliu"]')).to_contain_text(
            AGENT_EXT, timeout=20000
        )

        # 2. On call: the engineer, by name from the staff list; the roster takes their mobile
        # from Table A.2 (the page's mobile field left empty).
        await lead.goto(f"{base}/oncall?lang=zh")
        add = lead.locator("#add-oncall")
        await add.locator("[name=staff]").select_option("wanggong")
        now = datetime.now(TZ)
        await add.locator("[name=starts_at]").fill(
            (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        )
        await add.locator("[name=ends_at]").fill(
            (now + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")
        )
        await add.locator("button[type=submit]").click()
        await expect(lead.locator("#now-on-call")).to_contain_text(f"王工 {ENGINEER_MOBILE}")

        # 3. An outage announcement, synthesised for callers; the lead can hear it in the page.
        await lead.goto(f"{base}/announcements?lang=zh")
        ann_form = lead.locator("#new-announcement")
        await ann_form.locator("[name=kind]").select_option("outage")
        await ann_form.locator("[name=title]").fill("邮箱故障")
        await ann_form.locator("[name=text_zh]").fill("邮箱系统故障，正在抢修，预计一小时内恢复。")
        await ann_form.locator("button[type=submit]").click()
        row = lead.locator("#announcements tr", has_text="邮箱故障")
        await expect(row.locator("audio")).to_have_count(1, timeout=60000)
        ann_id = int(await row.get_attribute("data-id") or 0)
        audio = await lead.evaluate(
            "async (src) => { const r = await fetch(src); return [r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength]; }",
            await row.locator("audio").get_attribute("src"),
        )
        assert audio[0] == 200 and audio[1] == "audio/wav" and audio[2] > 8000, audio

        # 4. The article, edited into the one the next caller needs.
        await lead.goto(f"{base}/knowledge?lang=zh")
        box = lead.locator(f'details.article[data-id="{article["id"]}"]')
        await box.locator("summary").click()
        await box.locator("[name=title]").fill("密码重置流程")
        await box.locator("[name=body]").fill(
            "用户忘记密码或密码过期：核实身份后在统一身份认证平台重置密码。"
        )
        await box.locator("button[type=submit]").click()
        await expect(
            lead.locator(f'details.article[data-id="{article["id"]}"] summary')
        ).to_contain_text("密码重置流程")

        # The phone side. The new agent logs in at their desk and goes ready.
        agent = await log_in(browser, base, "zhaoliu", "zhaoliu pass 1")
        assert agent.url.endswith("/agent")
        await expect(agent.locator("body")).to_have_attribute("data-ws", "open")
        await agent.click("#btn-ready")
        await expect(agent.locator("#agent-state")).to_have_attribute(
            "data-state", "ready", timeout=15000
        )
        board = await log_in(browser, base, "lead")
        await board.goto(f"{base}/wallboard?lang=zh")
        await expect(board.locator("body")).to_have_attribute("data-ws", "open")

        # A caller who forgot a password: hears the announcement, does not press 1 (not
        # affected), goes through the menu to the queue; the agent's phone rings for 4 s.
        caller = CallerSpec(120, 0, "", "13800138000", "张三",
                            reactions={"main_menu": "2", "service_menu": "1"})  # fmt: skip
        sim = Simulator(sim_client, SimulationPlan(
            rate=1, agents=[AgentSpec(AGENT_EXT, (4, 4), (10, 10))], callers=[caller]))  # fmt: skip
        await sim.prime_agents()
        run = asyncio.create_task(sim.run(timeout=150))
        await expect(agent.locator("#pop")).not_to_have_attribute(
            "data-uniqueid", "", timeout=90000
        )
        # The next pop matches the edited article.
        await expect(agent.locator("#kb-list li").first).to_contain_text("密码重置流程")
        await expect(agent.locator("#call-number")).to_contain_text("13800138000")
        await expect(agent.locator("#call-phase")).to_have_text("通话中", timeout=15000)
        # The wallboard's row for the agent: their name, and the caller's name and number.
        row = board.locator(f'#agents tr[data-ext="{AGENT_EXT}"]')
        await expect(row).to_contain_text("赵六")
        await expect(row).to_contain_text("张三 13800138000", timeout=10000)
        (call,) = (await run).calls
        assert call.result == "answered" and call.agent == AGENT_EXT
        record = await db.call(tmp_path, call.uniqueid)
        assert record["agent"] == AGENT_EXT and record["outcome"] == "answered"
        # The pop's wait is the caller's (the phone rang 4 s: the stint they were still in).
        shown = float(await agent.locator("#call-wait").inner_text())
        assert record["wait_seconds"] >= 3 and abs(shown - record["wait_seconds"]) < 1.0, (
            shown, record["wait_seconds"])  # fmt: skip
        # Callers hear the announcement: Asterisk streamed its own audio file.
        streamed = [c for c in call.commands if c.startswith("STREAM FILE")]
        assert any(f"announcements/ann-{ann_id}-zh-" in c for c in streamed), streamed
        steps = db.ivr_steps(tmp_path, call.uniqueid)
        assert ("announcement", str(ann_id)) in [(s["step"], s["result"]) for s in steps]

        # After hours: the lead closes the desk today (a holiday) on the hours page, and the
        # next caller's urgent fault goes to the engineer just put on call.
        await lead.goto(f"{base}/hours?lang=zh")
        today = datetime.now(TZ).date().isoformat()
        await lead.fill("[name=holidays]", f"{today} {today} 停机演练")
        await lead.click("#hours-form button[type=submit]")
        await expect(lead.locator("#hours-form .msg")).to_have_text("已保存", timeout=60000)
        await expect(lead.locator(f'#calendar [data-date="{today}"]')).to_have_class("day holiday")
        late = CallerSpec(90, 0, "", "13900139000", "李四", reactions={"after_hours_menu": "2"})
        sim = Simulator(sim_client, SimulationPlan(rate=1, agents=[AgentSpec(AGENT_EXT)], callers=[late]))  # fmt: skip
        (after,) = (await sim.run(timeout=120)).calls
        assert "after_hours_menu" in after.prompts and "oncall_transfer" in after.prompts
        # What the caller heard first states the hours just saved (the prompt made from them).
        (saved,) = db.query(tmp_path, "SELECT value FROM desk_settings WHERE name = 'hours'")
        value = saved["value"] if isinstance(saved["value"], dict) else json.loads(saved["value"])
        stated = value["prompts"]["zh"]
        assert any(c.startswith("STREAM FILE") and stated in c for c in after.commands), stated
        dialled = watch.ran(after.uniqueid, "Dial")
        assert dialled and dialled[0].startswith(f"Local/{ENGINEER_MOBILE}@sim-mobile"), dialled
        answered = [e.application for e in watch.in_context("sim-mobile", ENGINEER_MOBILE)]
        assert "Answer" in answered, answered  # the engineer's phone picked up
        assert not watch.in_context("sim-mobile", FALLBACK)  # not hours.yaml's number
        assert (await db.call(tmp_path, after.uniqueid))["outcome"] == "transferred"

        # The audit page shows each of those writes, by the lead.
        await lead.goto(f"{base}/audit?lang=zh&actor=lead")
        table = lead.locator("#audit")
        for action, target in (("staff.create", "zhaoliu"), ("oncall.add", "王工"),
                               ("announcement.create", "邮箱故障"), ("article.update", f"{article['id']} "),
                               ("hours.update", "hours")):  # fmt: skip
            entry = table.locator("tr", has_text=action)
            await expect(entry.first).to_be_visible()
            if target:
                await expect(entry.first).to_contain_text(target)
