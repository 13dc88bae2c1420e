"""Two Asterisk servers (two sandboxes, sites 北京 and 上海) and one CTI server: simulated traffic
on both with the very same Uniqueids; every call is journaled once under its Asterisk's name and
agrees with that Asterisk's own queue_log; the wallboard shows both sites' queues; reports give
the totals and each site's figures. Then both carry calls while the CTI server is down, and the
restarted server reconciles each Asterisk's calls from its own queue_log."""

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cti.ami.client import AmiClient
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState
from cti.settings import Settings
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator
from desk.web.app import create_app
from desk.web.keys import SESSIONS, SETTINGS
from reports.build import build_report, period_for
from reports.service import options_from
from tests.conftest import idle_sim_client, own_sandbox, server_settings
from tests.integration.test_journal import mixed_callers, plan
from tests.support import journal
from tests.support.db import query
from tests.support.staff import add_staff, browser_like, logged_in, login

pytestmark = pytest.mark.slow

MAIN_SITE, EAST_SITE = "北京", "上海"
IVR_AGENTS = [AgentSpec("1001", (1, 1), (2, 3))]


@pytest.fixture(scope="module")
def east() -> Iterator[Instance]:
    """The second Asterisk: a sandbox of its own."""
    yield from own_sandbox("east")


@pytest.fixture
async def east_client(east: Instance) -> AsyncIterator[AmiClient]:
    """The simulator's AMI client on the second Asterisk, with an idle help-desk queue."""
    if not east.is_running():
        east.restart()
    st = east.load()
    assert st is not None
    async with idle_sim_client(st) as client:
        yield client


def two_asterisks(main: InstanceState, east: InstanceState, tmp_path: Path) -> Settings:
    """The first sandbox as the default Asterisk ("main", site 北京), the second declared in
    CTI_ASTERISKS as "east" (site 上海)."""
    declared = {
        "east": {
            "site": EAST_SITE,
            "ami_host": east.ami_host,
            "ami_port": east.ami_port,
            "ami_user": east.ami_user,
            "ami_secret": east.ami_secret,
            "queue_log_path": east.queue_log,
        }
    }
    return server_settings(
        main,
        tmp_path,
        CTI_IVR_ENABLED="0",
        CTI_DATA_DIR=str(tmp_path / "data"),
        CTI_SITE=MAIN_SITE,
        CTI_ASTERISKS=json.dumps(declared, ensure_ascii=False),
    )


async def both_simulate(main: AmiClient, east: AmiClient, n: int, seed: int) -> str:
    """n calls on each Asterisk at once, with the same Uniqueids on both; the run id."""
    sims = [Simulator(main, plan(mixed_callers(n, seed))),
            Simulator(east, plan(mixed_callers(n, seed + 1)))]  # fmt: skip
    sims[1].run_id = sims[0].run_id  # Uniqueids sim-<run>-0000 ... on both Asterisks
    for sim in sims:
        await sim.setup_agents()
    results = await asyncio.gather(*(sim.run(timeout=120) for sim in sims))
    assert all(c.ended_at for r in results for c in r.calls)
    return sims[0].run_id


def by_asterisk(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["asterisk"], []).append(r)
    return out


def agree_with_queue_logs(
    records: list[dict[str, Any]], logs: dict[str, str], prefix: str, n: int
) -> None:
    """Each Asterisk's n calls are journaled once, under its name, as its queue_log has them."""
    keys = Counter((r["asterisk"], r["uniqueid"]) for r in records)
    assert max(keys.values()) == 1, "a call journaled twice"
    split = by_asterisk(records)
    assert sorted(split) == sorted(logs)
    for name, path in logs.items():
        mine = split[name]
        ql = journal.queue_log_calls(path, prefix)
        assert len(mine) == len(ql) == n, (name, len(mine), len(ql))
        assert all(r["ended_at"] for r in mine)
        mismatches = journal.compare(mine, ql)
        assert not mismatches, f"{name}: " + "\n".join(map(str, mismatches))
    # The same Uniqueids on both Asterisks: one call each, never merged.
    assert {r["uniqueid"] for r in split["main"]} == {r["uniqueid"] for r in split["east"]}


async def test_two_asterisks_one_server(
    sim_client: AmiClient,
    east_client: AmiClient,
    sandbox_state: InstanceState,
    east: Instance,
    tmp_path: Path,
) -> None:
    east_state = east.load()
    assert east_state is not None
    logs = {"main": sandbox_state.queue_log, "east": east_state.queue_log}
    settings = two_asterisks(sandbox_state, east_state, tmp_path)
    assert [(a.name, a.site) for a in settings.asterisk_servers] == [
        ("main", MAIN_SITE),
        ("east", EAST_SITE),
    ]
    n = 10
    async with TestClient(TestServer(create_app(settings))) as http:
        app = http.server.app
        run_id = await both_simulate(sim_client, east_client, n, seed=21)
        prefix = f"sim-{run_id}-"
        records = await journal.wait_finished(tmp_path, prefix, 2 * n)
        agree_with_queue_logs(records, logs, prefix, n)

        # The wallboard: both sites' help-desk queues as two rows, each site's total, and one
        # site alone on request.
        await logged_in(http, "lead")
        health = await (await http.get("/healthz")).json()
        assert {n: (a["site"], a["ami"]["connected"]) for n, a in health["asterisks"].items()} == {
            "main": (MAIN_SITE, True),
            "east": (EAST_SITE, True),
        }
        assert health["asterisks"]["east"]["journal"]["resyncs"] >= 1
        resp = await http.get("/api/wallboard")
        assert resp.status == 200, await resp.text()
        board = await resp.json()
        rows = {(q["site"], q["queue"]): q for q in board["queues"]}
        assert {(MAIN_SITE, "helpdesk"), (EAST_SITE, "helpdesk")} <= set(rows)
        sites = {s["site"]: s for s in board["sites"]}
        assert set(sites) == {MAIN_SITE, EAST_SITE}
        for name, site in (("main", MAIN_SITE), ("east", EAST_SITE)):
            theirs = by_asterisk(records)[name]
            assert sites[site]["today"]["offered"] >= n
            assert rows[(site, "helpdesk")]["today"]["answered"] >= sum(
                r["outcome"] == "answered" for r in theirs
            )
        assert board["total"]["today"]["offered"] == sum(
            s["today"]["offered"] for s in board["sites"]
        )
        resp = await http.get("/api/wallboard", params={"site": EAST_SITE})
        east_board = await resp.json()
        assert {q["site"] for q in east_board["queues"]} == {EAST_SITE}
        assert east_board["total"]["today"] == pytest.approx(sites[EAST_SITE]["today"])
        assert {a["site"] for a in east_board["agents"]} <= {EAST_SITE}

        # The call log: one Asterisk's calls, and one Uniqueid on each Asterisk.
        resp = await http.get("/api/calls", params={"asterisk": "east", "limit": "200"})
        east_calls = [c for c in (await resp.json())["calls"] if c["uniqueid"].startswith(prefix)]
        assert len(east_calls) == n and {c["asterisk"] for c in east_calls} == {"east"}
        uid = f"{prefix}0000"
        for name in ("main", "east"):
            resp = await http.get(f"/api/calls/{uid}", params={"asterisk": name})
            call = await resp.json()
            assert (call["asterisk"], call["uniqueid"]) == (name, uid)
            mine = next(r for r in records if (r["asterisk"], r["uniqueid"]) == (name, uid))
            assert call["caller_number"] == mine["caller_number"]
        resp = await http.get(f"/api/calls/{uid}", params={"asterisk": "../main"})
        assert resp.status == 400

        # Reports: the total, each site's figures, and one site's own report.
        tz = app[SETTINGS].tz
        period = period_for("daily", datetime.now(tz).date(), tz)
        report = await build_report(
            app[SESSIONS], period, options_from(settings, "zh", None, False)
        )
        assert report["calls"]["offered"] == 2 * n
        per_site = report["by_site"]
        assert set(per_site) == {MAIN_SITE, EAST_SITE}
        for name, site in (("main", MAIN_SITE), ("east", EAST_SITE)):
            ql = journal.queue_log_calls(logs[name], prefix)
            figures = per_site[site]["calls"]
            assert figures["offered"] == len(ql) == n
            assert figures["answered"] == sum(c.outcome == "answered" for c in ql.values())
            assert figures["abandoned"] == sum(c.outcome == "abandoned" for c in ql.values())
        assert sum(s["calls"]["answered"] for s in per_site.values()) == report["calls"]["answered"]
        one = await build_report(
            app[SESSIONS], period, options_from(settings, "zh", None, False, EAST_SITE)
        )
        # (Sums of the same calls in another order: equal up to the last bits of a float.)
        assert one["calls"] == pytest.approx(per_site[EAST_SITE]["calls"])
        assert list(one["by_site"]) == [EAST_SITE]

        # The HTML report names each site, in Mandarin first.
        resp = await http.get(
            "/reports/view",
            params={"kind": "daily", "date": period.start.date().isoformat(), "format": "html"},
        )
        assert resp.status == 200
        page = await resp.text()
        assert MAIN_SITE in page and EAST_SITE in page and "站点" in page

    # Both Asterisks carry calls while the CTI server is down; the next start reconciles each
    # one's calls from its own queue_log, under its own name.
    run_id = await both_simulate(sim_client, east_client, 4, seed=33)
    prefix = f"sim-{run_id}-"
    async with TestClient(TestServer(create_app(settings))):
        records = await journal.wait_finished(tmp_path, prefix, 8)
    agree_with_queue_logs(records, logs, prefix, 4)
    assert all(r["source"] == "reconciled" for r in records)
    outages = query(tmp_path, "SELECT asterisk, reconciled_calls FROM link_outages")
    assert {o["asterisk"] for o in outages} == {"main", "east"}


async def test_site_filters_refuse_strangers_and_unknown_sites(
    sandbox_state: InstanceState, east: Instance, tmp_path: Path
) -> None:
    """The site filters of the wallboard and the reports: no session, the agent role and a site
    this desk does not have are refused, and nothing is made; parallel requests all answer."""
    east_state = east.load()
    assert east_state is not None
    settings = two_asterisks(sandbox_state, east_state, tmp_path)
    async with TestClient(TestServer(create_app(settings))) as http:
        resp = await http.get("/api/wallboard", params={"site": EAST_SITE})
        assert resp.status == 401
        agent = browser_like(http)
        try:
            await logged_in(agent, "agent", "agent1", app=http.server.app)
            resp = await agent.get("/api/wallboard", params={"site": EAST_SITE})
            assert resp.status == 403
        finally:
            await agent.close()
        await logged_in(http, "lead")
        for hostile in ("nowhere", "上海'; DROP TABLE calls; --", "x" * 5000, "main\x00"):
            resp = await http.get("/api/wallboard", params={"site": hostile})
            assert resp.status == 400, hostile
            assert "site" in (await resp.json())["message"]
            resp = await http.get(
                "/reports/view",
                params={"kind": "daily", "date": "2026-11-30", "format": "csv", "site": hostile},
            )
            assert resp.status == 400, hostile
        resp = await http.post(
            "/api/reports",
            json={"kind": "daily", "date": "2026-11-30", "formats": ["csv"], "site": "nowhere"},
        )
        assert resp.status == 400
        assert not list((settings.data_dir / "reports").glob("*/*"))
        answers = await asyncio.gather(
            *(http.get("/api/wallboard", params={"site": s}) for s in [MAIN_SITE, EAST_SITE] * 5)
        )
        assert [a.status for a in answers] == [200] * 10
        resp = await http.post(
            "/api/reports",
            json={"kind": "daily", "date": "2026-11-30", "formats": ["csv"], "site": EAST_SITE},
        )
        assert resp.status == 201, await resp.text()
        assert [p.name for p in (settings.data_dir / "reports").glob("*/*")] == [
            "2026-11-30_site-east_zh.csv"
        ]


async def test_each_asterisks_ivr_journals_its_own_calls(
    sim_client: AmiClient,
    east_client: AmiClient,
    sandbox_state: InstanceState,
    east: Instance,
    tmp_path: Path,
) -> None:
    """Both Asterisks run the IVR on the CTI server (a FastAGI port each): a caller on each,
    with the same Uniqueid, opens an incident by pressing 1; each call's IVR steps and incident
    are journaled under its own Asterisk."""
    east_state = east.load()
    assert east_state is not None
    declared = {"east": {"site": EAST_SITE, "ami_host": east_state.ami_host,
                         "ami_port": east_state.ami_port, "ami_user": east_state.ami_user,
                         "ami_secret": east_state.ami_secret,
                         "queue_log_path": east_state.queue_log,
                         "agi_port": east_state.agi_port,
                         "agi_secret": east_state.agi_secret}}  # fmt: skip
    settings = server_settings(
        sandbox_state,
        tmp_path,
        CTI_DATA_DIR=str(tmp_path / "data"),
        CTI_ASTERISKS=json.dumps(declared),
    )
    assert [a.agi_port for a in settings.asterisk_servers] == [
        sandbox_state.agi_port,
        east_state.agi_port,
    ]
    async with TestClient(TestServer(create_app(settings))):
        sims = []
        for client in (sim_client, east_client):
            caller = CallerSpec(90, 0, "", "13800138000", "张三", reactions={"main_menu": "1"})
            sims.append(Simulator(client, SimulationPlan(rate=2, agents=IVR_AGENTS,
                                                         callers=[caller])))  # fmt: skip
        sims[1].run_id = sims[0].run_id
        for sim in sims:
            await sim.setup_agents()
        results = await asyncio.gather(*(sim.run(timeout=240) for sim in sims))
        uid = results[0].calls[0].uniqueid
        assert results[1].calls[0].uniqueid == uid
        records = await journal.wait_finished(tmp_path, uid, 2)
    split = by_asterisk(records)
    assert sorted(split) == ["east", "main"]
    incidents = {name: rows[0]["incident_number"] for name, rows in split.items()}
    assert all(incidents.values()) and incidents["main"] != incidents["east"]
    steps = query(
        tmp_path,
        "SELECT asterisk, step, result FROM ivr_steps WHERE call_uniqueid = ? ORDER BY id",
        uid,
    )
    for name in ("main", "east"):
        mine = [s for s in steps if s["asterisk"] == name]
        names = [s["step"] for s in mine]
        assert names[:2] == ["lookup", "main_menu"] and "incident" in names, mine
        assert next(s["result"] for s in mine if s["step"] == "incident") == incidents[name]


async def _members(client: AmiClient) -> set[str]:
    rows = await client.action("QueueStatus", as_list=True, Queue="helpdesk")
    return {m["Name"] for m in rows if m.get("Event") == "QueueMember"}


async def test_an_agent_logs_in_at_one_sites_phone(
    sim_client: AmiClient,
    east_client: AmiClient,
    sandbox_state: InstanceState,
    east: Instance,
    tmp_path: Path,
) -> None:
    """An agent of site 上海 logs in at the east Asterisk's phone: a member of east's queue only;
    the agent page then follows that Asterisk; an Asterisk this desk lacks is refused."""
    east_state = east.load()
    assert east_state is not None
    settings = two_asterisks(sandbox_state, east_state, tmp_path)
    async with TestClient(TestServer(create_app(settings))) as http:
        await add_staff(http.server.app, "wang", "agent", "1007", queues="helpdesk")
        await login(http, "wang")
        for hostile in ("nowhere", "../main", "East", 7):
            resp = await http.post(
                "/api/agent/me/state", json={"state": "ready", "asterisk": hostile}
            )
            assert resp.status == 400, hostile
        assert "1007" not in await _members(east_client) | await _members(sim_client)
        resp = await http.post("/api/agent/me/state", json={"state": "ready", "asterisk": "east"})
        assert resp.status == 202, await resp.text()
        assert (await resp.json())["asterisk"] == "east"
        for _ in range(50):
            if "1007" in await _members(east_client):
                break
            await asyncio.sleep(0.1)
        assert "1007" in await _members(east_client)
        assert "1007" not in await _members(sim_client)
        me = await (await http.get("/api/agent/me")).json()
        assert me["asterisk"] == "east" and me["agent"]["queues"] == ["helpdesk"]
        # Pausing and logging out act where the agent is logged in, without naming it again.
        resp = await http.post("/api/agent/me/state", json={"state": "logged_out"})
        assert (await resp.json())["asterisk"] == "east"
        for _ in range(50):
            if "1007" not in await _members(east_client):
                break
            await asyncio.sleep(0.1)
        assert "1007" not in await _members(east_client)
