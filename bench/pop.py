"""Benchmark: the browser's part of the screen pop, from the AMI event that rings an agent
(AgentCalled, stamped by Asterisk) to the agent page's DOM update in a real headless Chromium.

    python -m bench.pop [--agents 5] [--rate 1.5] [--seconds 30]

bench.pop_ws measures the server's part with 200 lightweight WebSocket agents; this one keeps a
few real agent pages, since 40 Chromium pages load two cores so much that they measure the
machine more than the server. The same set-up as bench.pop_ws (bench/server.py: a private
sandbox, `cti serve` in its own process, IVR off so calls go straight to the queue); `--agents`
agent pages are logged in and ready, each with its own simulated phone (answers after 1 s, talks
1 s, 1 s of wrap-up). Callers are directory users with earlier incidents, so every pop runs the
directory and history queries.

Two phases in the same run: a baseline at 1 new call per second, then `--rate` new calls per
second held for `--seconds`. For each: p50 / p99 / max of the whole (event -> DOM), of the
server's part (event -> pop sent on the WebSocket) and of the browser's part (sent -> DOM), and
the CPU per pop of the server process and of the Chromium processes.
"""

import argparse
import asyncio
import os
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

from bench.server import PASSWORD, BenchServer, bench_server, cpu_seconds
from bench.stats import loadavg, pct
from cti.ami.client import AmiClient
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
]


def descendants(root: int) -> list[int]:
    """The processes below `root` now (children, their children...)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def browser_cpu(server_pid: int) -> float:
    """CPU seconds of this process's descendants but the server: Playwright's driver and
    Chromium's processes (a process that ended since is not counted: Chromium keeps its own)."""
    total = 0.0
    for pid in descendants(os.getpid()):
        if pid == server_pid:
            continue
        try:
            total += cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            continue
    return total


async def open_page(browser: Browser, url: str, ext: int) -> Page:
    context = await browser.new_context()
    page: Page = await context.new_page()
    await page.goto(f"{url}login")
    await page.fill("input[name=username]", f"a{ext}")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/agent")
    await page.wait_for_selector("body[data-ws=open]")
    await page.click("#btn-ready")
    await page.wait_for_selector("#agent-state[data-state=ready]", timeout=30000)
    return page


async def phase(
    srv: BenchServer,
    sim_client: AmiClient,
    agents: list[AgentSpec],
    rate: float,
    count: int,
    pages: list[Page],
) -> dict[str, Any]:
    for page in pages:
        await page.evaluate("window.__pops = []")
    server0, browser0 = cpu_seconds(srv.pid), browser_cpu(srv.pid)
    numbers = srv.numbers
    callers = [CallerSpec(90, 0, "", numbers[i % len(numbers)], "") for i in range(count)]
    sim = Simulator(sim_client, SimulationPlan(rate=rate, agents=agents, callers=callers))
    await sim.run(timeout=240)
    await asyncio.sleep(1)
    server_cpu = cpu_seconds(srv.pid) - server0
    chromium_cpu = browser_cpu(srv.pid) - browser0
    total, server, browser = [], [], []
    for page in pages:
        for p in await page.evaluate("window.__pops"):
            total.append(p["shown_at"] - p["event_at"])
            server.append(p["sent_at"] - p["event_at"])
            browser.append(p["shown_at"] - p["sent_at"])
    n = max(len(total), 1)
    return {
        "calls": len(sim.calls),
        "total": total,
        "server": server,
        "browser": browser,
        "server_cpu_ms": server_cpu / n * 1000,
        "browser_cpu_ms": chromium_cpu / n * 1000,
    }


async def run(n_agents: int, rate: float, seconds: int) -> None:
    async with bench_server("benchpop", agents=n_agents, env={"CTI_IVR_ENABLED": "0"}) as srv:
        sim_client = srv.sim_client()
        try:
            await sim_client.start()
            await sim_client.wait_connected(30)
            agents = [AgentSpec(str(2001 + i), (1, 1), (1, 1)) for i in range(n_agents)]
            await Simulator(
                sim_client, SimulationPlan(rate=1, agents=agents, callers=[])
            ).prime_agents()
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=FLAGS
                )
                pages = [await open_page(browser, srv.url, 2001 + i) for i in range(n_agents)]
                print(f"{n_agents} agent pages ready; sandbox {srv.inst.name}; loadavg {loadavg()}")
                results = {
                    "baseline 1 call/s": await phase(srv, sim_client, agents, 1, 15, pages),
                    f"{rate:g} calls/s x {seconds}s": await phase(
                        srv, sim_client, agents, rate, int(rate * seconds), pages
                    ),
                }
                await browser.close()
        finally:
            await sim_client.close()
    print("p50 / p99 / max in ms; CPU seconds of the server and of Chromium per pop in ms")
    print(f"{'':22}{'pops':>5}  {'whole':^21}{'server':^21}{'browser':^21}  CPU server / Chromium")
    for name, r in results.items():
        cells = "".join(
            f"{pct(r[k], 0.5):6.1f}/{pct(r[k], 0.99):6.1f}/{max(r[k], default=0) * 1000:6.1f} "
            for k in ("total", "server", "browser")
        )
        print(f"{name:22}{len(r['total']):5}  {cells}"
              f"  {r['server_cpu_ms']:6.1f} / {r['browser_cpu_ms']:6.1f} ms   ({r['calls']} calls)")  # fmt: skip
    print(f"loadavg {loadavg()}")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--agents", type=int, default=5)
    p.add_argument("--rate", type=float, default=1.5)
    p.add_argument("--seconds", type=int, default=30)
    a = p.parse_args()
    asyncio.run(run(a.agents, a.rate, a.seconds))


if __name__ == "__main__":
    main()
