"""The wallboard in headless Chromium with two Asterisks (sites 北京 and 上海): after calls on
both, each site's help-desk queue is its own row naming its site, and the site select shows one
site's rows with that site's total."""

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, expect

from cti.ami.client import AmiClient
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState
from desk.web.app import create_app
from tests.conftest import idle_sim_client, own_sandbox, server_settings
from tests.integration.test_multi_asterisk import EAST_SITE, MAIN_SITE, both_simulate
from tests.support import journal
from tests.support.staff import PASSWORD, add_staff, login

pytestmark = [pytest.mark.asterisk, pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def east() -> Iterator[Instance]:
    """The second Asterisk: a sandbox of its own."""
    yield from own_sandbox("eastb")


@pytest.fixture
async def east_client(east: Instance) -> AsyncIterator[AmiClient]:
    st = east.load()
    assert st is not None
    async with idle_sim_client(st) as client:
        yield client


async def test_the_board_shows_each_sites_queues_and_filters_by_site(
    browser: Browser,
    sim_client: AmiClient,
    east_client: AmiClient,
    sandbox_state: InstanceState,
    east: Instance,
    tmp_path: Path,
) -> None:
    st = east.load()
    assert st is not None
    declared = {"east": {"site": EAST_SITE, "ami_host": st.ami_host, "ami_port": st.ami_port,
                         "ami_user": st.ami_user, "ami_secret": st.ami_secret,
                         "queue_log_path": st.queue_log}}  # fmt: skip
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0", CTI_SITE=MAIN_SITE,
                               CTI_DATA_DIR=str(tmp_path / "data"),
                               CTI_ASTERISKS=json.dumps(declared))  # fmt: skip
    http = TestClient(TestServer(create_app(settings)))
    await http.start_server()
    try:
        await add_staff(http.server.app, "desklead", "lead", name="赵磊")
        run_id = await both_simulate(sim_client, east_client, 3, seed=41)
        records = await journal.wait_finished(tmp_path, f"sim-{run_id}-", 6)
        assert len(records) == 6
        page = await (
            await browser.new_context(locale="zh-CN", viewport={"width": 1600, "height": 1000})
        ).new_page()
        await page.goto(str(http.make_url("/login?next=/wallboard")))
        await page.fill("input[name=username]", "desklead")
        await page.fill("input[name=password]", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url("**/wallboard")
        await expect(page.locator("body")).to_have_attribute("data-ws", "open")
        rows = page.locator('#queues tbody tr[data-queue="helpdesk"]')
        await expect(rows).to_have_count(2)
        labels = sorted(await rows.locator("td:first-child").all_inner_texts())
        assert labels == sorted([f"helpdesk · {MAIN_SITE}", f"helpdesk · {EAST_SITE}"])
        await expect(page.locator("#site option")).to_have_count(3)  # 全部站点, 北京, 上海
        await expect(page.locator("#site option").first).to_have_text("全部站点")
        await page.select_option("#site", EAST_SITE)
        await expect(rows).to_have_count(1)
        await expect(rows.locator("td:first-child")).to_have_text(f"helpdesk · {EAST_SITE}")
        await login(http, "desklead")
        board = await (await http.get("/api/wallboard", params={"site": EAST_SITE})).json()
        offered = str(board["total"]["today"]["offered"])
        assert board["total"]["today"]["offered"] >= 3
        total = page.locator("#queues tbody tr.total")
        await expect(total.locator('td[data-metric="offered"]')).to_have_text(offered)
        await page.screenshot(path=str(tmp_path / "wallboard-sites.png"), full_page=True)
    finally:
        await http.close()
