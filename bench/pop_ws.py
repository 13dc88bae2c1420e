"""Benchmark: the server's part of the screen pop, with many agents and no browser in the way.

    python -m bench.pop_ws [--agents 200] [--rates 10,30] [--seconds 20]

The same set-up as bench.pop (a private sandbox; `cti serve` in its own process, IVR off; callers
are directory users with an earlier incident each, so every pop runs the directory, history and
knowledge queries), but the agents are lightweight aiohttp WebSocket clients, logged in and ready,
one per simulated phone. 40 Chromium pages load two cores so much that bench.pop measures the
machine more than the server; this one measures the server: from the AMI event that rings an
agent (AgentCalled, Asterisk's timestamp) to the pop leaving the server (`sent_at`) and to its
arrival at the client, p50 / p99 / max; the server process's CPU (from /proc) per pop, per
call, and per call net of what it spends idle with the agents logged in (measured for 10 s
before the phases); and per call the AMI events the server received, left unparsed and applied,
the domain events it published, the memberships it read back and the events it dropped (its
/healthz counters). Each phase ends when the server has caught up. A baseline phase at
1 call/s runs first, in the same run.
"""

import argparse
import asyncio
import time
from typing import Any

import aiohttp

from bench.server import PASSWORD, BenchServer, bench_server, cpu_seconds
from bench.stats import loadavg, pct
from cti import eventloop
from cti.ami.client import AmiClient
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator

# Seconds the server is watched idle, the agents logged in, before the phases.
IDLE_SECONDS = 10


class WsAgent:
    """One agent's WebSocket, recording the pops it receives."""

    def __init__(self, http: aiohttp.ClientSession, ext: int) -> None:
        self.http = http
        self.ext = ext
        self.pops: list[dict[str, float]] = []
        self.url = ""
        self.task: asyncio.Task[None] | None = None

    async def start(self, url: str) -> None:
        self.url = url
        r = await self.http.post(
            f"{url}api/login", json={"username": f"a{self.ext}", "password": PASSWORD}
        )
        r.raise_for_status()
        csrf = (await r.json())["csrf"]
        ws = await self.http.ws_connect(f"{url}ws/agent", heartbeat=20)
        self.task = asyncio.create_task(self._read(ws))
        r = await self.http.post(
            f"{url}api/agent/me/state", json={"state": "ready"}, headers={"X-CSRF-Token": csrf}
        )
        r.raise_for_status()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data: dict[str, Any] = msg.json()
            if data.get("type") == "pop" and data.get("event_at"):
                self.pops.append(
                    {"event": data["event_at"], "sent": data["sent_at"], "got": time.time()}
                )


async def counters(agent: WsAgent) -> dict[str, float]:
    """The server's AMI and bus counters now (/healthz, as a logged-in agent sees it)."""
    r = await agent.http.get(f"{agent.url}healthz")
    body = await r.json()
    ami, tracker = body["ami"], body["tracker"]
    return {
        "AMI events": ami["events"],
        "not parsed": ami["skipped_unparsed"],
        "applied": tracker["events_handled"],
        "bus events": tracker["bus_published"],
        "read-backs": tracker.get("agent_readbacks", 0),
        "dropped": ami["dropped"],
        "queued": ami["queue_depth"],
    }


async def settled(ws_agents: list[WsAgent], limit: float = 120) -> None:
    """Wait until the server has caught up: its AMI queue empty and nothing applied or popped for
    a second (an overloaded server is still working on the phase's events when the calls end,
    and its CPU per pop would count work whose pops have not arrived yet)."""
    end = time.monotonic() + limit
    last: tuple[float, int] | None = None
    while time.monotonic() < end:
        await asyncio.sleep(1)
        health = await counters(ws_agents[0])
        now = (health["applied"], sum(len(a.pops) for a in ws_agents))
        if health["queued"] == 0 and now == last:
            return
        last = now


async def phase(
    sim_client: AmiClient,
    agents: list[AgentSpec],
    ws_agents: list[WsAgent],
    numbers: list[str],
    rate: float,
    count: int,
    server_pid: int,
) -> dict[str, Any]:
    for a in ws_agents:
        a.pops.clear()
    health0 = await counters(ws_agents[0])
    cpu0, t0 = cpu_seconds(server_pid), time.monotonic()
    callers = [CallerSpec(90, 0, "", numbers[i % len(numbers)], "") for i in range(count)]
    sim = Simulator(sim_client, SimulationPlan(rate=rate, agents=agents, callers=callers))
    await sim.run(timeout=300)
    await settled(ws_agents)
    cpu, seconds = cpu_seconds(server_pid) - cpu0, time.monotonic() - t0
    health = await counters(ws_agents[0])
    pops = [p for a in ws_agents for p in a.pops]
    calls = max(len(sim.calls), 1)
    return {
        "calls": len(sim.calls),
        "per_call": {k: (health[k] - health0[k]) / calls for k in health if k != "queued"},
        "cpu_per_call_ms": cpu / calls * 1000,
        "seconds": seconds,
        "pops": len(pops),
        "server": [p["sent"] - p["event"] for p in pops],
        "total": [p["got"] - p["event"] for p in pops],
        "cpu_per_pop_ms": cpu / len(pops) * 1000 if pops else float("nan"),
    }


async def run(n_agents: int, rates: list[float], seconds: int) -> None:
    env = {"CTI_IVR_ENABLED": "0"}
    async with bench_server("benchws", agents=n_agents, env=env) as srv:
        sim_client = srv.sim_client()
        sessions: list[aiohttp.ClientSession] = []
        try:
            await measure(srv, sim_client, sessions, n_agents, rates, seconds)
        finally:
            for http in sessions:
                await http.close()
            await sim_client.close()


async def measure(
    srv: BenchServer,
    sim_client: AmiClient,
    sessions: list[aiohttp.ClientSession],
    n_agents: int,
    rates: list[float],
    seconds: int,
) -> None:
    url, numbers = srv.url, srv.numbers
    await sim_client.start()
    await sim_client.wait_connected(30)
    agents = [AgentSpec(str(2001 + i), (1, 1), (1, 1)) for i in range(n_agents)]
    await Simulator(sim_client, SimulationPlan(rate=1, agents=agents, callers=[])).prime_agents()
    ws_agents = []
    for i in range(n_agents):
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        agent = WsAgent(http, 2001 + i)
        await agent.start(url)
        ws_agents.append(agent)
    await asyncio.sleep(3)  # every agent ready in Asterisk
    cpu0 = cpu_seconds(srv.pid)
    await asyncio.sleep(IDLE_SECONDS)
    idle = (cpu_seconds(srv.pid) - cpu0) / IDLE_SECONDS  # share of a core, no call
    print(f"{n_agents} WebSocket agents ready; sandbox {srv.inst.name}; server's event loop "
          f"{eventloop.loop_name()}; loadavg {loadavg()}; server idle "
          f"{idle * 100:.1f} % of a core")  # fmt: skip
    results = {"baseline 1 call/s": await phase(
        sim_client, agents, ws_agents, numbers, 1, 15, srv.pid
    )}  # fmt: skip
    for rate in rates:
        results[f"{rate:g} calls/s x {seconds}s"] = await phase(
            sim_client, agents, ws_agents, numbers, rate, int(rate * seconds), srv.pid
        )
    head = f"{'':24}{'pops':>6}{'server p50':>11}{'p99':>8}{'max':>8}"
    print(f"{head}{'total p50':>11}{'p99':>8}{'CPU/pop':>9}{'CPU/call':>10}{'net':>9}")
    for name, r in results.items():
        sv, tot = r["server"], r["total"]
        print(
            f"{name:24}{r['pops']:6}{pct(sv, 0.5):11.1f}{pct(sv, 0.99):8.1f}"
            f"{max(sv, default=0) * 1000:8.1f}{pct(tot, 0.5):11.1f}{pct(tot, 0.99):8.1f}"
            f"{r['cpu_per_pop_ms']:7.1f}ms{r['cpu_per_call_ms']:8.1f}ms"
            f"{r['cpu_per_call_ms'] - idle * r['seconds'] * 1000 / max(r['calls'], 1):7.1f}ms"
            f"   ({r['calls']} calls)"
        )
    print("per call, from the server's /healthz counters:")
    for name, r in results.items():
        print(f"  {name:22}" + ", ".join(f"{k} {v:.1f}" for k, v in r["per_call"].items()))
    print(f"loadavg {loadavg()}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=200)
    p.add_argument("--rates", default="10,30")
    p.add_argument("--seconds", type=int, default=20)
    a = p.parse_args()
    asyncio.run(run(a.agents, [float(x) for x in a.rates.split(",")], a.seconds))


if __name__ == "__main__":
    main()
