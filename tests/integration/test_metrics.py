"""GET /metrics: Prometheus' text format, read from a real server carrying real calls through
the sandbox's Asterisk; only a lead (or above) or the scraper's token may read it."""

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from cti.ami.client import AmiClient
from cti.sandbox.instance import InstanceState
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator
from desk.web.app import create_app
from tests.conftest import server_settings
from tests.support.staff import add_staff, logged_in, login
from tests.support.web import desk_server, from_address

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
TOKEN = "scrape-token-0123456789-abcdefghijklmnop"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed by prometheus_client's own parser."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """One sample's value (KeyError names the missing sample)."""
    return found[(name, tuple(sorted(labels.items())))]


async def test_only_a_lead_or_the_token_reads_metrics(tmp_path: Path) -> None:
    async with desk_server(tmp_path, CTI_METRICS_SECRET=TOKEN) as server:
        async with aiohttp.ClientSession(base_url=str(server.make_url("/"))) as anon:
            resp = await anon.get("/metrics")
            assert resp.status == 401 and "Bearer" in resp.headers["WWW-Authenticate"]
            for header in ("Bearer wrong", f"Bearer {TOKEN}x", f"Basic {TOKEN}", "Bearer ",
                           "Bearer " + "\u5f20" * 5000, f"bearer {TOKEN}"):  # fmt: skip
                resp = await anon.get("/metrics", headers={"Authorization": header})
                assert resp.status in (400, 401), (header[:20], resp.status)
            ok = await asyncio.gather(*(anon.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}) for _ in range(20)))  # fmt: skip
            assert {r.status for r in ok} == {200}
            body = await ok[0].text()
            assert ok[0].headers["Content-Type"].startswith("text/plain; version=")
            found = samples(body)
            # No core in this server: only the web part, and it says no page is connected.
            assert ("cti_ami_up", ()) not in found
            assert value(found, "cti_hub_messages_total") == 0
        async with from_address(server, "127.0.0.2") as agent:
            await add_staff(server.app, "agent1", "agent")
            await login(agent, "agent1")
            assert (await agent.get("/metrics")).status == 403
        async with from_address(server, "127.0.0.3") as lead:
            await logged_in(lead, "lead", app=server.app)
            assert (await lead.get("/metrics")).status == 200
            # Nobody can post to it.
            assert (await lead.post("/metrics")).status == 405


async def test_without_a_token_setting_no_bearer_is_accepted(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.4") as anon:
        for header in ("Bearer ", "Bearer x", "Bearer  "):
            resp = await anon.get("/metrics", headers={"Authorization": header})
            assert resp.status == 401


@pytest.mark.asterisk
async def test_metrics_follow_real_calls(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    """Three callers go through the IVR (pressing 0) to the queue and are answered: the link,
    the IVR sessions, the pops, the journal rows and the live calls by state show it."""
    settings = server_settings(sandbox_state, tmp_path, CTI_METRICS_SECRET=TOKEN)
    async with TestClient(TestServer(create_app(settings))) as http:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        await logged_in(http, "lead")
        board = await http.ws_connect("/ws/wallboard")
        await board.receive_json(timeout=10)  # the first snapshot: the client is registered
        before = samples(await (await http.get("/metrics", headers=auth)).text())
        assert value(before, "cti_ami_up") == 1
        assert value(before, "cti_websocket_clients", kind="wallboard") == 1
        assert value(before, "cti_pops_sent_total") == 0
        assert value(before, "cti_agi_sessions_active") == 0
        callers = [
            CallerSpec(60, 0, "", f"1380013800{i}", "张三", reactions={"main_menu": "0"})
            for i in range(3)
        ]
        agents = [AgentSpec("1001", (1, 1), (3, 3)), AgentSpec("1002", (1, 1), (3, 3))]
        sim = Simulator(sim_client, SimulationPlan(rate=2, agents=agents, callers=callers))
        await sim.setup_agents()
        run = asyncio.create_task(sim.run(timeout=120))
        busiest: dict[str, float] = {}
        while not run.done():
            now = samples(await (await http.get("/metrics", headers=auth)).text())
            for state in ("ivr", "waiting", "ringing", "talking"):
                busiest[state] = max(busiest.get(state, 0), value(now, "cti_calls", state=state))
            busiest["agi"] = max(busiest.get("agi", 0), value(now, "cti_agi_sessions_active"))
            await asyncio.sleep(0.2)
        result = await run
        assert all(c.result == "answered" for c in result.calls), result.calls
        after: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for _ in range(50):  # the journal flushes every 0.2 s
            after = samples(await (await http.get("/metrics", headers=auth)).text())
            if value(after, "cti_journal_rows_total") >= 3:
                break
            await asyncio.sleep(0.2)
        assert busiest["ivr"] >= 1 and busiest["talking"] >= 1 and busiest["agi"] >= 1, busiest
        assert value(after, "cti_agi_sessions_total", route="ivr") >= 3
        assert value(after, "cti_agi_sessions_active") == 0
        assert value(after, "cti_pops_sent_total") >= 3
        assert value(after, "cti_journal_rows_total") >= 3
        assert value(after, "cti_journal_last_flush_timestamp_seconds") > 0
        assert value(after, "cti_ami_events_total") > value(before, "cti_ami_events_total")
        assert value(after, "cti_event_lag_seconds") >= 0
        assert value(after, "cti_overflow_actions_total", kind="mobile") == 0
        # Every series the sample Grafana dashboard plots exists (retention's: test_retention).
        plotted = set(re.findall(r"cti_[a-z_]+", DASHBOARD.read_text()))
        names = {name for name, _ in after}
        missing = {n for n in plotted if n not in names and not n.startswith("cti_retention_")}
        assert not missing, missing
        await board.close()
        for _ in range(50):
            gone = samples(await (await http.get("/metrics", headers=auth)).text())
            if value(gone, "cti_websocket_clients", kind="wallboard") == 0:
                break
            await asyncio.sleep(0.1)
        assert value(gone, "cti_websocket_clients", kind="wallboard") == 0
