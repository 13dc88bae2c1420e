"""Benchmark: screen-pop latency, from the AMI event that rings an agent (AgentCalled, stamped by
Asterisk) to the agent page's DOM update in a real headless Chromium, p50 / p99.

    python -m bench.pop [--agents 40] [--rate 10] [--seconds 30]

A private Asterisk sandbox and the CTI server (`cti serve`, its own process, IVR off so calls go
straight to the queue) run on this machine; `--agents` agent pages are logged in and ready, each
with its own simulated phone (answers after 1 s, talks 1 s, 1 s of wrap-up). Callers are directory
users with earlier incidents, so every pop does the directory and history queries.

Two phases in the same run: a baseline at 1 new call per second, then `--rate` new calls per
second held for `--seconds`. For each, the latency is split into the server's part (AMI event ->
pop sent on the WebSocket) and the browser's part (sent -> DOM updated).
"""

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from playwright.async_api import Page, async_playwright

from bench.stats import pct
from cti.ami.client import AmiClient, AmiOptions
from cti.db import create_engine, migrate, session_maker
from cti.ivr.ports import NewIncident
from cti.phone import NumberPlan, normalize
from cti.sandbox import Instance
from cti.sandbox.instance import free_port
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator
from desk import directory, incidents
from desk.migrations import MIGRATIONS
from desk.staff import upsert_staff

PASSWORD = "bench password"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
]
USERS = 200


async def seed(db_url: str, agents: int) -> list[str]:
    """Staff 2001.., directory users with one earlier incident each; returns caller numbers."""
    engine = create_engine(db_url)
    numbers = []
    try:
        await migrate(engine, MIGRATIONS)
        async with session_maker(engine).begin() as s:
            now = datetime.now(UTC)
            for i in range(agents):
                fields = {
                    "username": f"a{2001 + i}",
                    "name": f"坐席{i}",
                    "role": "agent",
                    "extension": str(2001 + i),
                    "queues": "helpdesk",
                }
                await upsert_staff(s, fields, PASSWORD)
            for i in range(USERS):
                mobile = f"137{i:08d}"
                numbers.append(mobile)
                user, _ = await directory.upsert_user(
                    s,
                    {
                        "employee_no": f"B{i:05d}",
                        "name": f"用户{i}",
                        "department": "测试部",
                        "location": "北京",
                        "office_phone": "",
                        "mobile": mobile,
                        "email": f"u{i}@example.com",
                    },
                    by="bench",
                    now=now,
                    plan=NumberPlan(area_code="10"),
                )
                new = NewIncident(
                    "fault",
                    "打印机",
                    "打印机卡纸",
                    "phone",
                    mobile,
                    normalize(mobile, NumberPlan(area_code="10")).key,
                    directory.requester_of(user),
                    "",
                    "zh",
                    "",
                )
                await incidents.create(s, new, recorded_by="bench", now=now, local_day=now.date())
    finally:
        await engine.dispose()
    return numbers


async def open_page(browser: Any, url: str, ext: int) -> Page:
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
    sim_client: AmiClient,
    agents: list[AgentSpec],
    numbers: list[str],
    rate: float,
    count: int,
    pages: list[Page],
) -> tuple[list[float], list[float], list[float], int]:
    for page in pages:
        await page.evaluate("window.__pops = []")
    callers = [CallerSpec(90, 0, "", numbers[i % len(numbers)], "") for i in range(count)]
    sim = Simulator(sim_client, SimulationPlan(rate=rate, agents=agents, callers=callers))
    await sim.run(timeout=240)
    await asyncio.sleep(1)
    total, server, browser = [], [], []
    for page in pages:
        for p in await page.evaluate("window.__pops"):
            total.append(p["shown_at"] - p["event_at"])
            server.append(p["sent_at"] - p["event_at"])
            browser.append(p["shown_at"] - p["sent_at"])
    return total, server, browser, len(sim.calls)


async def run(n_agents: int, rate: float, seconds: int) -> None:
    inst = Instance(f"benchpop{os.getpid()}")
    st = await asyncio.to_thread(
        inst.up,
        ami_port=free_port(),
        sip_port=free_port(),
        agi_port=free_port(),
        globals_={"CTI_QUEUE_TIMEOUT": "120"},
    )
    work = Path(tempfile.mkdtemp(prefix="bench-pop-"))
    db_url = f"sqlite+aiosqlite:///{work / 'cti.sqlite3'}"
    numbers = await seed(db_url, n_agents)
    port = free_port()
    env = {
        **os.environ,
        "CTI_DATABASE_URL": db_url,
        "CTI_DATA_DIR": str(work),
        "CTI_HTTP_PORT": str(port),
        "CTI_AMI_HOST": st.ami_host,
        "CTI_AMI_PORT": str(st.ami_port),
        "CTI_AMI_USER": st.ami_user,
        "CTI_AMI_SECRET": st.ami_secret,
        "CTI_QUEUE_LOG_PATH": st.queue_log,
        "CTI_IVR_ENABLED": "0",
        "CTI_AGI_PORT": str(st.agi_port),
        "CTI_AGI_SECRET": st.agi_secret,
        "CTI_AGENT_INTERFACE": "Local/{ext}@sim-agent/n",
        "CTI_WRAPUP_SECONDS": "1",
        # The report scheduler's first run (a minute after start) would land in the measurement.
        "CTI_REPORT_SCHEDULE": "0",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti", "serve", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/"
    sim_client = AmiClient(
        AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret, queue_size=200000)
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            await asyncio.sleep(0.2)
        await sim_client.start()
        await sim_client.wait_connected(30)
        agents = [AgentSpec(str(2001 + i), (1, 1), (1, 1)) for i in range(n_agents)]
        await Simulator(
            sim_client, SimulationPlan(rate=1, agents=agents, callers=[])
        ).prime_agents()
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            pages = [await open_page(browser, url, 2001 + i) for i in range(n_agents)]
            print(f"{n_agents} agent pages ready; sandbox {inst.name}")
            results = {}
            t0 = time.monotonic()
            results["baseline 1 call/s"] = await phase(sim_client, agents, numbers, 1, 15, pages)
            results[f"{rate:g} calls/s x {seconds}s"] = await phase(
                sim_client, agents, numbers, rate, int(rate * seconds), pages
            )
            await browser.close()
        print(f"ran {time.monotonic() - t0:.0f}s")
        head = f"{'':24}{'pops':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        print(f"{head}   server p50/p99   browser p50/p99")
        for name, (total, srv, brw, calls) in results.items():
            print(
                f"{name:24}{len(total):6}{pct(total, 0.5):9.1f}{pct(total, 0.99):9.1f}"
                f"{max(total, default=0) * 1000:9.1f}   {pct(srv, 0.5):6.1f}/{pct(srv, 0.99):6.1f}"
                f"    {pct(brw, 0.5):6.1f}/{pct(brw, 0.99):6.1f}   ({calls} calls)"
            )
    finally:
        await sim_client.close()
        server.terminate()
        await server.wait()
        await asyncio.to_thread(inst.purge)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", type=int, default=40)
    p.add_argument("--rate", type=float, default=10)
    p.add_argument("--seconds", type=int, default=30)
    a = p.parse_args()
    asyncio.run(run(a.agents, a.rate, a.seconds))


if __name__ == "__main__":
    main()
