"""`cti demo`: a real Asterisk sandbox, the CTI server and simulated callers and agents."""

import argparse
import asyncio
import contextlib
import logging
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from cti.ami.client import AmiClient
from cti.db import create_engine, migrate, session_maker
from cti.phone import NumberPlan
from cti.sandbox import Instance
from cti.settings import Settings, load_settings
from cti.simulate import (
    AgentSpec,
    CallerSpec,
    SimulationPlan,
    Simulator,
    random_caller_id,
    sim_client_options,
)
from desk.directory import import_users
from desk.migrations import MIGRATIONS
from desk.models import ConfigItem, KnowledgeArticle, OncallShift
from desk.staff import upsert_staff
from desk.web.app import serving, stop_on_signals

logger = logging.getLogger(__name__)

CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo"
KNOWN = [
    ("13800138000", "张三"),
    ("13900139000", "李四"),
    ("13700137000", "王芳"),
    ("13600136000", "赵磊"),
    ("01062345801", "陈静"),
    ("2002", "Alice Chen"),
]


def demo_caller(rng: random.Random) -> CallerSpec:
    """A caller who uses the IVR the way people do: mostly faults, some requests, a few who
    want a person straight away, the odd one who presses nothing; most answer the survey."""
    if rng.random() < 0.7:
        number, name = rng.choice(KNOWN)
    else:
        number, name = random_caller_id(rng)
    choice = rng.choices(["1", "2", "0", ""], weights=[55, 20, 15, 10])[0]
    reactions = {"main_menu": choice} if choice else {}
    if choice == "2":
        reactions["service_menu"] = rng.choice("123")
        # 6.2: a password or account request names the account, mostly the caller's own.
        reactions["account_enter"] = rng.choice(["#", "#", "#", "10087#"])
    reactions["identify_unknown"] = rng.choice(["10088#", "10090#", "#"])
    if rng.random() < 0.8:
        reactions["survey_intro"] = rng.choices("54321", weights=[45, 30, 12, 8, 5])[0]
    return CallerSpec(rng.randint(60, 240), 0, "", number, name, reactions=reactions)


DEMO_AGENTS = [
    AgentSpec("1001", (2, 5), (20, 60)),
    AgentSpec("1002", (2, 5), (20, 60)),
    AgentSpec("1003", (3, 8), (30, 90)),
]


async def run_demo(args: argparse.Namespace) -> int:
    """Bring everything up, print the URL, run traffic until Ctrl-C (or --calls are done)."""
    print("demo: starting the Asterisk sandbox (the first run builds it: about a minute)...")
    inst = Instance(args.name)
    await asyncio.to_thread(inst.up, globals_={"CTI_QUEUE_TIMEOUT": "120"})
    os.environ.setdefault("CTI_CONFIG_DIR", str(CONFIG))
    settings = load_settings(args.config)
    await seed_directory(settings)
    stop = stop_on_signals()
    try:
        async with serving(settings) as url:
            print(f"demo: CTI server at {url}  (call log: {url}calls, health: {url}healthz)")
            print(
                f"demo: log in at {url}login as agent1001, agent1002, agent1003 (agents) or "
                f"lead, password {DEMO_PASSWORD}; wallboard: {url}wallboard; portal: {url}portal"
            )
            print(f"demo: simulated calls at {args.rate}/s; Ctrl-C to stop", flush=True)
            sim_client = AmiClient(sim_client_options(args.name))
            await sim_client.start()
            try:
                await sim_client.wait_connected(30)
                plan = SimulationPlan(rate=args.rate, agents=DEMO_AGENTS, patience=(15, 150))
                sim = Simulator(sim_client, plan)
                await sim.setup_agents()
                traffic = asyncio.create_task(
                    sim.trickle(stop, limit=args.calls, make_caller=demo_caller)
                )
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


DEMO_PASSWORD = "demo-desk-2026"
DEMO_STAFF: list[dict[str, Any]] = [
    {"username": "agent1001", "name": "王芳", "role": "agent", "extension": "1001"},
    {"username": "agent1002", "name": "刘洋", "role": "agent", "extension": "1002"},
    {"username": "agent1003", "name": "陈静", "role": "agent", "extension": "1003"},
    {"username": "lead", "name": "赵磊", "role": "lead", "extension": None},
]


async def seed_directory(settings: Settings) -> None:
    """The demo's user directory (so most callers are recognised by their number), its staff
    (password DEMO_PASSWORD), and a small knowledge base and CMDB."""
    data = await asyncio.to_thread((CONFIG / "users.csv").read_bytes)
    kb = yaml.safe_load(await asyncio.to_thread((CONFIG / "knowledge.yaml").read_text))
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine, MIGRATIONS)
        async with session_maker(engine).begin() as session:
            now = datetime.now(UTC)
            plan = NumberPlan(area_code=settings.area_code)
            await import_users(session, data, by="demo", now=now, plan=plan)
            for fields in DEMO_STAFF:
                await upsert_staff(session, fields, DEMO_PASSWORD)
            if not await session.scalar(select(KnowledgeArticle.id).limit(1)):
                for a in kb["articles"]:
                    session.add(KnowledgeArticle(created_at=now, updated_at=now, **a))
            if not await session.scalar(select(ConfigItem.id).limit(1)):
                for c in kb["items"]:
                    session.add(ConfigItem(updated_at=now, ci_type=c.pop("type"), **c))
            # On call around the clock (the sandbox's simulated mobiles answer after 4 and 6 s).
            if not await session.scalar(select(OncallShift.id).where(OncallShift.ends_at > now)):
                for name, mobile in (("王工", "13900000004"), ("李工", "13900000006")):
                    session.add(
                        OncallShift(
                            name=name,
                            mobile=mobile,
                            im_channel="",
                            im_handle="",
                            queue=None,
                            starts_at=now - timedelta(hours=1),
                            ends_at=now + timedelta(days=30),
                            created_at=now,
                        )
                    )
    finally:
        await engine.dispose()
