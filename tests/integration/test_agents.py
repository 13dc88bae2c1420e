"""Agent states against the real Asterisk: what the page says is what app_queue says, through
ready, pause with a reason, a call, wrap-up on its own timer, logout, and an AMI reconnect."""

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from cti.ami.client import AmiClient
from cti.ami.events import QueueMemberStatus, parse_event
from cti.journal.models import AgentStateSpan
from cti.sandbox.instance import InstanceState
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator
from desk.web.app import create_app
from desk.web.keys import CORE, SESSIONS
from tests.conftest import server_settings
from tests.support.staff import add_staff, browser_like, logged_in, login
from tests.support.tcpproxy import TcpProxy

QUEUE = "helpdesk"


async def members(client: AmiClient) -> dict[str, dict[str, str]]:
    """Asterisk's own view: member name -> QueueMember row."""
    rows = await client.action("QueueStatus", as_list=True, Queue=QUEUE)
    return {m["Name"]: dict(m) for m in rows if m.get("Event") == "QueueMember"}


async def until(
    predicate: Callable[[], Any],
    timeout: float = 20.0,
    what: str = "",
    context: Callable[[], tuple[Any, Any]] | None = None,
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            if context is None:
                raise AssertionError(f"timed out waiting for {what}")
            seen, asterisk = context()
            raise AssertionError(
                f"timed out waiting for {what}: saw {seen}, Asterisk {await asterisk}"
            )
        await asyncio.sleep(0.2)


async def state_of(http: TestClient) -> dict[str, Any]:
    me = await (await http.get("/api/agent/me")).json()
    agent: dict[str, Any] = me["agent"]
    return agent


async def test_states_follow_asterisk_through_a_call_and_a_reconnect(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    proxy = await TcpProxy(sandbox_state.ami_port).start()
    settings = server_settings(sandbox_state, tmp_path, ami_port=proxy.port,
                               CTI_IVR_ENABLED="0", CTI_WRAPUP_SECONDS="4")  # fmt: skip
    try:
        async with TestClient(TestServer(create_app(settings))) as http:
            await add_staff(http.server.app, "chenjing", "agent", "1201")
            await login(http, "chenjing")
            assert (await state_of(http))["state"] == "logged_out"
            # Bad input: a clear message, nothing sent to Asterisk.
            r = await http.post("/api/agent/me/state", json={"state": "asleep"})
            assert r.status == 400
            r = await http.post("/api/agent/me/state", json={"state": "paused", "reason": ""})
            assert r.status == 400
            assert "1201" not in await members(sim_client)

            r = await http.post("/api/agent/me/state", json={"state": "ready"})
            assert r.status == 202
            await until(lambda: _is(http, "ready"), what="ready")
            m = (await members(sim_client))["1201"]
            assert m["Location"] == "Local/1201@sim-agent/n" and m["Paused"] == "0"

            r = await http.post(
                "/api/agent/me/state", json={"state": "paused", "reason": "会议 meeting"}
            )
            assert r.status == 202
            agent = await until(lambda: _is(http, "paused"), what="paused")
            assert agent["reason"] == "会议 meeting"
            m = (await members(sim_client))["1201"]
            assert m["Paused"] == "1" and m["PausedReason"] == "会议 meeting"

            await http.post("/api/agent/me/state", json={"state": "ready"})
            await until(lambda: _is(http, "ready"), what="ready again")

            # A call: ringing, on the call, then wrap-up (paused in Asterisk, so no call is offered),
            # then ready again by itself when the wrap-up timer ends.
            sim = Simulator(sim_client, SimulationPlan(rate=1, agents=[AgentSpec("1201", (2, 2), (3, 3))],
                                                       callers=[CallerSpec(60, 0, "", "13800138000", "张三")]))  # fmt: skip
            await sim.prime_agents()
            run = asyncio.create_task(sim.run(timeout=90))
            seen: set[str] = set()

            async def watch() -> bool:
                seen.add((await state_of(http))["state"])
                return "wrap_up" in seen

            await until(watch, 40, "wrap-up after the call", lambda: (seen, members(sim_client)))
            assert {"ringing", "on_call"} & seen, seen
            m = (await members(sim_client))["1201"]
            assert m["Paused"] == "1" and m["PausedReason"] == "wrap-up"
            await until(lambda: _is(http, "ready"), 15, "ready after wrap-up")
            assert (await members(sim_client))["1201"]["Paused"] == "0"
            await run
            # The after-call work is journaled on the call: the 4 s timer, plus the unpause.
            acw = await until(lambda: _acw(http), 15, "after-call work on the call")
            assert 4 <= acw < 8, acw

            # The link drops; meanwhile someone pauses the agent at Asterisk (the phone's button).
            proxy.accepting = False
            proxy.cut()
            await sim_client.action("QueuePause", Interface="Local/1201@sim-agent/n", Paused="true",
                                    Reason="午饭 lunch")  # fmt: skip
            await asyncio.sleep(1)
            proxy.accepting = True
            agent = await until(lambda: _is(http, "paused"), 30, "paused after the reconnect")
            assert agent["reason"] == "午饭 lunch"
            # The lead's wallboard says the same after the reconnect, and its day figures are the
            # journal's (the one answered call above).
            async with browser_like(http) as lead:
                await logged_in(lead, "lead", app=http.server.app)
                board = await (await lead.get("/api/wallboard")).json()
                row = next(a for a in board["agents"] if a["ext"] == "1201")
                assert (row["state"], row["reason"]) == ("paused", "午饭 lunch")
                helpdesk = next(q for q in board["queues"] if q["queue"] == "helpdesk")
                assert helpdesk["agents"]["paused"] == 1 and helpdesk["today"]["answered"] == 1

            await http.post("/api/agent/me/state", json={"state": "logged_out"})
            await until(lambda: _is(http, "logged_out"), what="logged out")
            assert "1201" not in await members(sim_client)

            # The state spans for occupancy: one after another, in order, only the last one open.
            await http.server.app[CORE].agent_log.flush()
            async with http.server.app[SESSIONS]() as s:
                spans = (await s.scalars(select(AgentStateSpan).where(AgentStateSpan.ext == "1201")
                                         .order_by(AgentStateSpan.id))).all()  # fmt: skip
            states = [x.state for x in spans]
            assert states[0] == "ready" and {"paused", "on_call", "wrap_up"} <= set(states), states
            assert spans[-1].state == "logged_out" and spans[-1].ended_at is None
            assert all(a.ended_at == b.started_at for a, b in itertools.pairwise(spans))
            assert [x.reason for x in spans if x.state == "paused"][-1] == "午饭 lunch"
    finally:
        await proxy.stop()


async def test_a_stale_member_event_is_corrected_from_asterisk(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    """Asterisk can publish a member snapshot taken before a pause after the pause's own event (a
    device state change racing with QueuePause as a call ends). A member event that contradicts a
    pause the service just made makes it read the agent back from Asterisk, so the page ends up
    right — with no read-back when nothing contradicts."""
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0")
    async with TestClient(TestServer(create_app(settings))) as http:
        await add_staff(http.server.app, "zhouyi", "agent", "1203")
        await login(http, "zhouyi")
        await http.post("/api/agent/me/state", json={"state": "ready"})
        await until(lambda: _is(http, "ready"), what="ready")
        await http.post("/api/agent/me/state", json={"state": "paused", "reason": "培训"})
        await until(lambda: _is(http, "paused"), what="paused")

        agents = http.server.app[CORE].agents
        stale = parse_event({"Event": "QueueMemberStatus", "Queue": QUEUE, "MemberName": "1203",
                             "Interface": "Local/1203@sim-agent/n", "Status": "1", "Paused": "0",
                             "PausedReason": "", "InCall": "0"})  # fmt: skip
        assert isinstance(stale, QueueMemberStatus)
        readbacks = agents.readbacks
        agents.on_member(stale)
        # What the stale event said, before anything can run (the read-back starts 0.3 s later,
        # and a page's GET on a loaded machine may take longer than that).
        assert agents.agent("1203").state == "ready"
        agent = await until(lambda: _is(http, "paused"), what="corrected from Asterisk")
        assert (agent["state"], agent["reason"]) == ("paused", "培训")
        assert agents.readbacks > readbacks  # it was read back, not merely waited out
        assert (await members(sim_client))["1203"]["Paused"] == "1"


async def _acw(http: TestClient) -> float | None:
    calls = (await (await http.get("/api/calls")).json())["calls"]
    return calls[0]["acw_seconds"] if calls else None


async def _is(http: TestClient, state: str) -> dict[str, Any] | None:
    agent = await state_of(http)
    return agent if agent["state"] == state else None


async def channels(client: AmiClient) -> list[dict[str, str]]:
    rows = await client.action("CoreShowChannels", as_list=True)
    return [dict(m) for m in rows if m.get("Event") == "CoreShowChannel"]


async def test_click_to_call_rings_the_agent_then_the_user(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0")
    async with TestClient(TestServer(create_app(settings))) as http:
        await add_staff(http.server.app, "sunli", "agent", "1202", name='孙丽 "<x>"')
        await login(http, "sunli")
        sim = Simulator(
            sim_client,
            SimulationPlan(rate=1, agents=[AgentSpec("1202", (1, 1), (8, 8))], callers=[]),
        )
        await sim.prime_agents()
        for bad in (
            {"number": "abc"},
            {"number": ""},
            {"number": "13900000002", "incident": "12a"},
            {},
        ):
            r = await http.post("/api/click-to-call", json=bad)
            assert r.status == 400, bad
        r = await http.post(
            "/api/click-to-call", json={"number": "+86 139 0000 0002", "incident": "261126001"}
        )
        assert r.status == 202 and (await r.json())["calling"] == "13900000002"

        async def bridged() -> list[dict[str, str]] | None:
            chans = await channels(sim_client)
            agent = [
                c
                for c in chans
                if c["Channel"].startswith("Local/1202@sim-agent") and c["ChannelStateDesc"] == "Up"
            ]
            mobile = [
                c
                for c in chans
                if c["Channel"].startswith("Local/13900000002@sim-mobile")
                and c["ChannelStateDesc"] == "Up"
            ]
            return agent + mobile if agent and mobile else None

        # The agent's phone answers after 1 s, then the "mobile" (answers after 2 s) is dialled.
        found = await until(bridged, 20, "the agent and the user connected")
        agent_leg = next(
            c for c in found if c["Channel"].endswith(";1") and "sim-agent" in c["Channel"]
        )
        assert agent_leg["Context"] == "cti-click2call" and agent_leg["Exten"] == "13900000002"
        assert agent_leg["CallerIDNum"] in ("1202", "13900000002")
        # Nothing of this is an inbound call in the journal.
        await asyncio.sleep(1)
        calls = await (await http.get("/api/calls")).json()
        assert calls["total"] == 0


async def test_an_agent_the_lead_disables_or_moves_stops_ringing_at_once(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    """Disabling a login ended its sessions, but its phone stayed a queue member in Asterisk
    and went on ringing with callers; so did an extension the lead gave someone else."""
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0")
    async with TestClient(TestServer(create_app(settings))) as lead:
        app = lead.server.app
        await logged_in(lead, "lead", "lead1")
        for username, ext in (("wangfang", "1211"), ("liuyang", "1212")):
            await add_staff(app, username, "agent", ext)
            agent = browser_like(lead)
            try:
                await login(agent, username)
                r = await agent.post("/api/agent/me/state", json={"state": "ready"})
                assert r.status == 202
            finally:
                await agent.close()
        await until(
            lambda: _members_are(sim_client, {"1211", "1212"}), what="both agents in the queue"
        )
        assert (await lead.patch("/api/staff/wangfang", json={"active": False})).status == 200
        await until(lambda: _members_are(sim_client, {"1212"}), what="1211 out of the queue")
        moved = await lead.patch("/api/staff/liuyang", json={"extension": "1213"})
        assert moved.status == 200
        await until(lambda: _members_are(sim_client, set()), what="1212 out of the queue")
        # At the new desk phone, a change that leaves the phone alone leaves the queue alone
        # (a queue change is done when the PATCH answers: QueueRemove is awaited).
        agent = browser_like(lead)
        try:
            await login(agent, "liuyang")
            assert (await agent.post("/api/agent/me/state", json={"state": "ready"})).status == 202
            await until(lambda: _members_are(sim_client, {"1213"}), what="1213 in the queue")
            assert (await lead.patch("/api/staff/liuyang", json={"position": "二线"})).status == 200
            assert set(await members(sim_client)) == {"1213"}
            assert (
                await agent.post("/api/agent/me/state", json={"state": "logged_out"})
            ).status == 202
        finally:
            await agent.close()


async def _members_are(client: AmiClient, names: set[str]) -> bool:
    return set(await members(client)) == names
