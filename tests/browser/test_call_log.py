"""The call-log page in a real browser shows the calls a real Asterisk handled."""

import asyncio
import os
import shutil
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser

from cti.ami.client import AmiClient
from cti.sandbox.instance import InstanceState
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator
from desk.web.app import create_app
from tests.conftest import server_settings
from tests.support.staff import PASSWORD, add_staff

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]
DOCS = Path(__file__).resolve().parents[2] / "docs"


async def test_call_log_shows_simulated_calls(
    browser: Browser, sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    server = TestServer(create_app(server_settings(sandbox_state, tmp_path)))
    await server.start_server()
    try:
        to_agent = {"main_menu": "0", "identify_unknown": "#"}
        callers = [CallerSpec(90, 0, "", "13800138000", "张三", reactions=to_agent),
                   CallerSpec(90, 0, "", "01087654321", "李四", reactions=to_agent),
                   CallerSpec(2, 0, "", "+8613912345678", "王五")]  # fmt: skip
        plan = SimulationPlan(rate=2, agents=[AgentSpec("1001", (1, 1), (2, 3))], callers=callers)
        sim = Simulator(sim_client, plan)
        await sim.setup_agents()
        await sim.run()
        page = await browser.new_page(locale="zh-CN", viewport={"width": 1280, "height": 600})
        await add_staff(server.app, "wangfang", "agent", "1001")
        await page.goto(str(server.make_url("/calls")))  # the call log needs a login
        await page.wait_for_url("**/login?next=/calls")
        await page.fill("input[name=username]", "wangfang")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/calls")
        rows = page.locator(f'tr[data-uniqueid^="sim-{sim.run_id}-"]')
        for _ in range(30):
            await page.goto(str(server.make_url("/calls")))
            if await rows.count() == 3:
                break
            await asyncio.sleep(1)
        assert await rows.count() == 3
        text = await page.locator("#calls").inner_text()
        assert "张三" in text and "李四" in text and "已接听" in text
        assert await page.locator("#ami-status").inner_text() == "已连接 Asterisk"
        await page.locator("select[name=outcome]").select_option("answered")
        await page.locator("button[type=submit]").click()
        await page.wait_for_load_state()
        outcomes = await page.locator(
            f'tr[data-uniqueid^="sim-{sim.run_id}-"] td:nth-child(9)'
        ).all_inner_texts()
        assert outcomes and set(outcomes) == {"已接听"}
        shot = tmp_path / "calls-page.png"
        await page.goto(str(server.make_url("/calls")))
        await page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("CTI_UPDATE_SCREENSHOTS"):
            DOCS.mkdir(exist_ok=True)
            shutil.copy(shot, DOCS / "calls-page.png")
    finally:
        await server.close()
