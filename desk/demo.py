"""`cti demo`: a real Asterisk sandbox, the CTI server and simulated callers and agents."""

import argparse
import asyncio
import contextlib
import logging

from cti.ami.client import AmiClient
from cti.sandbox import Instance
from cti.settings import load_settings
from cti.simulate import AgentSpec, SimulationPlan, Simulator, sim_client_options
from desk.app import serving, stop_on_signals

logger = logging.getLogger(__name__)

DEMO_AGENTS = [AgentSpec("1001", (2, 5), (20, 60)), AgentSpec("1002", (2, 5), (20, 60)),
               AgentSpec("1003", (3, 8), (30, 90))]  # fmt: skip


async def run_demo(args: argparse.Namespace) -> int:
    """Bring everything up, print the URL, run traffic until Ctrl-C (or --calls are done)."""
    print("demo: starting the Asterisk sandbox (the first run builds it: about a minute)...")
    inst = Instance(args.name)
    await asyncio.to_thread(inst.up, globals_={"CTI_QUEUE_TIMEOUT": "120"})
    settings = load_settings(args.config)
    stop = stop_on_signals()
    try:
        async with serving(settings) as url:
            print(f"demo: CTI server at {url}  (call log: {url}calls, health: {url}healthz)")
            print(f"demo: simulated calls at {args.rate}/s; Ctrl-C to stop", flush=True)
            sim_client = AmiClient(sim_client_options(args.name))
            await sim_client.start()
            try:
                await sim_client.wait_connected(30)
                plan = SimulationPlan(rate=args.rate, agents=DEMO_AGENTS, patience=(15, 150))
                sim = Simulator(sim_client, plan)
                await sim.setup_agents()
                traffic = asyncio.create_task(sim.trickle(stop, limit=args.calls))
                await asyncio.wait(
                    [traffic, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
                )
                stop.set()
                result = await traffic
                print(f"demo: {len(result.calls)} calls: {result.counts()}")
                if args.calls:
                    await asyncio.sleep(2 * settings.journal_flush_interval + 0.5)
            finally:
                await sim_client.close()
    finally:
        if not args.keep_sandbox:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(inst.down)
    return 0
