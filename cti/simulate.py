"""Simulated callers and agents for the sandbox: `cti simulate --calls N --rate R`.

Agents are queue members `Local/<ext>@sim-agent/n` whose answer delay and talk time ranges live
in AstDB; callers are `Local/<patience>*<key delay>*<keys>@sim-caller` channels originated into
[from-pstn]. The simulator speaks to Asterisk as the sandbox-only AMI user `sim`, watches its
own calls' events and returns when every call has hung up. Its summary is what it saw happen;
the CTI server's journal is checked against Asterisk's queue_log, not against this.
"""

import argparse
import asyncio
import contextlib
import json
import logging
import random
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from cti.ami import actions
from cti.ami import events as ev
from cti.ami.client import AmiClient, AmiOptions
from cti.errors import AmiActionFailed, SandboxError

logger = logging.getLogger(__name__)

FIRST_PROMPT = "welcome"  # the IVR's first prompt (cti/ivr/flow.py)

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明"]
ENGLISH = ["Alice Chen", "Bob Li", "Carol Wang", "David Zhang", "Emma Liu"]


@dataclass(frozen=True)
class AgentSpec:
    """A simulated agent: extension, answer delay and talk time ranges in seconds."""

    ext: str
    delay: tuple[int, int] = (1, 3)
    talk: tuple[int, int] = (5, 15)


@dataclass(frozen=True)
class CallerSpec:
    """A simulated caller: waits `patience` seconds after connecting, unless the desk ends first.

    `keys` are keyed `key_delay` seconds after connecting, blind. `reactions` answer prompts:
    when the IVR starts playing prompt P (seen in AMI's AGIExecStart), the keys in reactions[P]
    are sent from the caller's side; "1|2" sends 1 the first time P plays and 2 the second.
    """

    patience: int
    key_delay: int = 0
    keys: str = ""
    number: str = ""
    name: str = ""
    reactions: dict[str, str] = field(default_factory=dict)

    def exten(self) -> str:
        """The sim-caller extension that plays this caller."""
        keys = "".join(ch for ch in self.keys if ch in "0123456789*#w") or "n"
        keys = keys.replace("*", "s").replace("#", "h")
        return f"{self.patience}*{self.key_delay}*{keys}"

    def callerid(self) -> str:
        """The CallerID header of the Originate."""
        if not self.number:
            return ""
        name = self.name.replace('"', "")
        return f'"{name}" <{self.number}>' if name else f"<{self.number}>"


def random_caller_id(rng: random.Random) -> tuple[str, str]:
    """A realistic mix: Chinese mobiles, landlines with area codes, +86, extensions, anonymous."""
    pick = rng.random()
    if pick < 0.05:
        return "", ""  # anonymous
    name = (
        rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if rng.random() < 0.5 else "")
    )
    if pick < 0.1:
        name = rng.choice(ENGLISH)
    if pick < 0.55:
        number = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
    elif pick < 0.7:
        number = f"0{rng.choice(['10', '21', '755', '28'])}{rng.randrange(10**7, 10**8)}"
    elif pick < 0.8:
        number = f"+8613{rng.randrange(10**9):09d}"
    else:
        number = f"{rng.randrange(2000, 8000)}"
    return number, name


@dataclass
class SimulationPlan:
    """What to simulate."""

    calls: int = 10
    rate: float = 1.0
    agents: list[AgentSpec] = field(default_factory=lambda: [AgentSpec("1001"), AgentSpec("1002")])
    patience: tuple[int, int] = (20, 90)
    keys: str = ""
    key_delay: int | None = None  # None: key when the IVR's first prompt starts (barge-in)
    did: str = "8000"
    queue: str = "helpdesk"
    queue_timeout: int | None = None
    seed: int | None = None
    callers: list[CallerSpec] | None = None

    def caller_list(self) -> list[CallerSpec]:
        """The callers, explicit or drawn from the seed."""
        if self.callers is not None:
            return self.callers
        rng = random.Random(self.seed)
        out = []
        for _ in range(self.calls):
            number, name = random_caller_id(rng)
            out.append(self.caller(rng.randint(*self.patience), number, name))
        return out

    def caller(self, patience: int, number: str, name: str) -> CallerSpec:
        """A caller keying the plan's keys: blind after `key_delay` seconds, or (no delay given)
        as the IVR's first prompt starts, which acts on a key pressed during any prompt."""
        if self.key_delay is None and self.keys:
            reactions = {FIRST_PROMPT: self.keys}
            return CallerSpec(patience, 0, "", number, name, reactions=reactions)
        return CallerSpec(patience, self.key_delay or 0, self.keys, number, name)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "SimulationPlan":
        """From `cti simulate` arguments."""
        exts = [str(1001 + i) for i in range(args.agents)]
        return cls(
            calls=args.calls,
            rate=args.rate,
            agents=[AgentSpec(e, _range(args.answer_delay), _range(args.talk)) for e in exts],
            patience=_range(args.patience),
            keys=args.keys,
            key_delay=args.key_delay,
            did=args.did,
            queue=args.queue,
            queue_timeout=args.queue_timeout,
            seed=args.seed,
        )


def _range(raw: str) -> tuple[int, int]:
    low, _, high = raw.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r}: expected N or N-M seconds") from None
    return (min(lo, hi), max(lo, hi))


@dataclass
class SimCall:
    """One simulated call, as the simulator saw it."""

    uniqueid: str
    caller: CallerSpec
    placed_at: float
    queued_at: float | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    agent: str | None = None
    queue_result: str | None = None
    abandoned: bool = False
    failed: bool = False
    caller_channel: str = ""
    incident: str | None = None
    prompts: list[str] = field(default_factory=list)
    results: list[str] = field(default_factory=list)  # AGIExecEnd: command -> code result
    prompts_at: list[float] = field(default_factory=list)  # when each prompt started (Asterisk)
    commands: list[str] = field(default_factory=list)
    reactions: dict[str, list[str]] = field(default_factory=dict)

    @property
    def result(self) -> str:
        """answered, abandoned, queue timeout ... as Asterisk's events said."""
        if self.failed:
            return "failed"
        if self.answered_at is not None:
            return "answered"
        if self.queue_result:
            return self.queue_result.lower()
        if self.queued_at is not None:
            return "abandoned"
        return "ended_before_queue"


@dataclass
class SimulationResult:
    """Summary of a run."""

    run_id: str
    calls: list[SimCall]
    seconds: float

    def counts(self) -> dict[str, int]:
        """Calls per result."""
        return dict(Counter(c.result for c in self.calls))

    def summary(self) -> dict[str, Any]:
        """JSON-able summary."""
        answered = [c for c in self.calls if c.answered_at and c.queued_at]
        waits = [c.answered_at - c.queued_at for c in answered]  # type: ignore[operator]
        return {
            "run_id": self.run_id,
            "calls": len(self.calls),
            "finished": sum(1 for c in self.calls if c.ended_at is not None),
            "seconds": round(self.seconds, 1),
            "results": self.counts(),
            "average_wait_answered": round(sum(waits) / len(waits), 2) if waits else None,
            "uniqueids": [c.uniqueid for c in self.calls],
        }


class Simulator:
    """Drives the sandbox over AMI (as the `sim` user)."""

    def __init__(self, client: AmiClient, plan: SimulationPlan) -> None:
        self.client = client
        self.plan = plan
        self.run_id = secrets.token_hex(3)
        self.calls: dict[str, SimCall] = {}
        self._by_caller_leg: dict[str, SimCall] = {}
        self._ended = asyncio.Event()  # set whenever a call ends
        self._keying: set[asyncio.Task[None]] = set()

    async def prime_agents(self) -> None:
        """Give the plan's agents' simulated phones their answer delays and talk times (agents who
        log in through the CTI server's agent page need only this)."""
        for agent in self.plan.agents:
            for key, value in (
                ("delay_min", agent.delay[0]),
                ("delay_max", agent.delay[1]),
                ("talk_min", agent.talk[0]),
                ("talk_max", agent.talk[1]),
            ):
                await actions.db_put(self.client, f"simagent/{agent.ext}", key, str(value))

    async def setup_agents(self) -> None:
        """Put the plan's agents in the queue with their delays and talk times."""
        await self.prime_agents()
        for agent in self.plan.agents:
            await actions.queue_add(
                self.client, self.plan.queue, f"Local/{agent.ext}@sim-agent/n", agent.ext
            )
        if self.plan.queue_timeout is not None:
            await actions.set_global(self.client, "CTI_QUEUE_TIMEOUT", str(self.plan.queue_timeout))

    async def remove_agents(self, exts: list[str]) -> None:
        """Log agents out of the queue (e.g. to empty it)."""
        for ext in exts:
            try:
                await actions.queue_remove(self.client, self.plan.queue, f"Local/{ext}@sim-agent/n")
            except AmiActionFailed as exc:
                logger.info("agent %s not removed: %s", ext, exc)

    async def place(self, n: int, caller: CallerSpec) -> SimCall:
        """Originate one caller into the desk number."""
        uid = f"sim-{self.run_id}-{n:04d}"
        call = SimCall(uid, caller, time.time())
        call.reactions = {p: keys.split("|") for p, keys in caller.reactions.items()}
        self.calls[uid] = call
        self._by_caller_leg[f"{uid}-c"] = call
        spec = actions.Originate(
            channel=f"Local/{caller.exten()}@sim-caller",
            context="from-pstn",
            exten=self.plan.did,
            caller_id=caller.callerid(),
            timeout_ms=0,
            channel_id=uid,
            other_channel_id=f"{uid}-c",
        )
        try:
            await actions.originate(self.client, spec)
        except Exception as exc:
            logger.error("originate %s failed: %s", uid, exc)
            call.failed, call.ended_at = True, time.time()
        return call

    def _observe(self, e: ev.AmiEvent) -> None:
        uid = getattr(e, "uniqueid", "")
        call = self.calls.get(uid)
        if call is None:
            leg = self._by_caller_leg.get(uid)
            if leg is not None and isinstance(e, ev.Newchannel):
                leg.caller_channel = e.channel
            return
        if isinstance(e, ev.AGIExecStart):
            self._react(call, e.command, e.timestamp)
        elif isinstance(e, ev.AGIExecEnd):
            # What Asterisk answered (STREAM FILE: endpos > 0 when it opened and played the file).
            call.results.append(f"{e.command} -> {e.result_code} {e.result}")
        elif isinstance(e, ev.UserEvent) and e.name == "CtiIncident":
            call.incident = e.fields.get("Number")
        elif isinstance(e, ev.QueueCallerJoin) and call.queued_at is None:
            call.queued_at = e.timestamp
        elif isinstance(e, ev.AgentConnect):
            call.answered_at, call.agent = e.timestamp, e.member_name
        elif isinstance(e, ev.QueueCallerAbandon):
            call.abandoned = True
        elif isinstance(e, ev.UserEvent) and e.name == "CtiQueueResult":
            call.queue_result = e.fields.get("Status") or None
        elif isinstance(e, ev.OriginateResponse) and e.response != "Success":
            call.failed, call.ended_at = True, e.timestamp
        elif isinstance(e, ev.Hangup):
            call.ended_at = e.timestamp
        if call.ended_at is not None:
            self._ended.set()

    def _react(self, call: SimCall, command: str, at: float) -> None:
        call.commands.append(command)
        m = re.search(r"cti/(\w+)", command)
        if m is None:
            return
        prompt = m.group(1)
        call.prompts.append(prompt)
        call.prompts_at.append(at)
        pending = call.reactions.get(prompt)
        if pending:
            keys = pending.pop(0)
            task = asyncio.create_task(self._key(call, keys))
            self._keying.add(task)
            task.add_done_callback(self._keying.discard)

    async def _key(self, call: SimCall, keys: str) -> None:
        """Key DTMF from the caller's phone (the caller half of the Local channel)."""
        await asyncio.sleep(0.3)
        for digit in keys:
            if digit == "w":
                await asyncio.sleep(0.5)
                continue
            try:
                await actions.play_dtmf(self.client, call.caller_channel, digit)
            except Exception as exc:
                logger.info("simulated keying on %s failed: %s", call.uniqueid, exc)
                return
            await asyncio.sleep(0.25)

    async def _watch(self) -> None:
        while True:
            e = await self.client.events.get()
            if isinstance(e, ev.LinkUp) and e.reconnect:
                await self._settle_after_gap()
            else:
                self._observe(e)

    async def _settle_after_gap(self) -> None:
        """After a reconnect (Asterisk restarted), calls no longer up have ended."""
        try:
            chans = await actions.core_show_channels(self.client)
        except Exception as exc:
            logger.warning("simulation: cannot list channels after reconnect: %s", exc)
            return
        up = {c.uniqueid for c in chans}
        now = time.time()
        for call in self.calls.values():
            if call.ended_at is None and call.uniqueid not in up:
                call.ended_at = now
                self._ended.set()

    async def wait_all_ended(self, timeout: float | None) -> None:
        """Wait until every placed call has ended (TimeoutError after `timeout` seconds)."""
        async with asyncio.timeout(timeout):
            while any(c.ended_at is None for c in self.calls.values()):
                self._ended.clear()
                await self._ended.wait()

    async def trickle(
        self,
        stop: asyncio.Event,
        limit: int = 0,
        make_caller: "Callable[[random.Random], CallerSpec] | None" = None,
    ) -> SimulationResult:
        """Place calls at the planned rate until `stop` is set (or `limit` calls), then wait for
        the calls still up to end. `make_caller` draws each caller (default: random caller IDs
        keying the plan's keys)."""
        rng = random.Random(self.plan.seed)
        started = time.monotonic()
        watcher = asyncio.create_task(self._watch(), name="sim-watch")
        n = 0
        try:
            while not stop.is_set() and (not limit or n < limit):
                if make_caller is not None:
                    caller = make_caller(rng)
                else:
                    number, name = random_caller_id(rng)
                    caller = self.plan.caller(rng.randint(*self.plan.patience), number, name)
                await self.place(n, caller)
                n += 1
                # Poisson arrivals: exponential gaps with the planned mean rate.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(rng.expovariate(self.plan.rate)):
                        await stop.wait()
            await self.wait_all_ended(None)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return SimulationResult(self.run_id, list(self.calls.values()), time.monotonic() - started)

    async def run(self, *, timeout: float | None = None) -> SimulationResult:
        """Place every call at the planned rate and wait until all have hung up."""
        callers = self.plan.caller_list()
        started = time.monotonic()
        watcher = asyncio.create_task(self._watch(), name="sim-watch")
        try:
            interval = 1.0 / self.plan.rate if self.plan.rate > 0 else 0.0
            for n, caller in enumerate(callers):
                due = started + n * interval
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                await self.place(n, caller)
            longest = max((c.patience for c in callers), default=0) + 10
            budget = timeout or (longest + max(a.talk[1] for a in self.plan.agents) + 120)
            try:
                await self.wait_all_ended(budget)
            except TimeoutError:
                logger.error("simulation: calls still up after %.0fs", budget)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        return SimulationResult(self.run_id, list(self.calls.values()), time.monotonic() - started)


def sim_client_options(sandbox: str) -> AmiOptions:
    """AMI options of the sandbox's simulator user."""
    from cti.sandbox import Instance

    st = Instance(sandbox).load()
    if st is None:
        raise SandboxError(f"sandbox {sandbox!r} is not set up: run `cti sandbox up` first")
    return AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret)


async def simulate(sandbox: str, plan: SimulationPlan) -> SimulationResult:
    """Connect as the simulator, set up agents, run the plan."""
    client = AmiClient(sim_client_options(sandbox))
    await client.start()
    try:
        await client.wait_connected(30)
        sim = Simulator(client, plan)
        await sim.setup_agents()
        return await sim.run()
    finally:
        await client.close()


async def run_simulation_cli(plan: SimulationPlan, args: argparse.Namespace) -> int:
    """`cti simulate`: run and print the summary."""
    result = await simulate(args.name, plan)
    summary = result.summary()
    if args.json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        print(f"simulation {summary['run_id']}: {summary['finished']}/{summary['calls']} calls "
              f"finished in {summary['seconds']}s")  # fmt: skip
        for result_name, n in sorted(summary["results"].items()):
            print(f"  {result_name:20} {n}")
        if summary["average_wait_answered"] is not None:
            print(f"  average wait (answered) {summary['average_wait_answered']}s")
    return 0 if summary["finished"] == summary["calls"] else 1


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `cti simulate` options."""
    p.add_argument(
        "--name", default=None, help="sandbox instance (default: CTI_SANDBOX or 'default')"
    )
    p.add_argument("--calls", type=int, default=10)
    p.add_argument("--rate", type=float, default=1.0, help="new calls per second")
    p.add_argument("--agents", type=int, default=2, help="agents 1001.. to log in")
    p.add_argument("--answer-delay", default="1-3", help="agent ring time before answering, s")
    p.add_argument("--talk", default="5-15", help="talk time, s")
    p.add_argument("--patience", default="20-90", help="seconds a caller stays before hanging up")
    p.add_argument("--keys", default="", help="DTMF the callers key into the IVR")
    p.add_argument(
        "--key-delay",
        type=int,
        default=None,
        help="seconds after connecting to key blind (default: as the IVR's first prompt starts)",
    )
    p.add_argument("--did", default="8000", help="the desk number dialled")
    p.add_argument("--queue", default="helpdesk")
    p.add_argument("--queue-timeout", type=int, help="set the dialplan's CTI_QUEUE_TIMEOUT")
    p.add_argument("--seed", type=int)
    p.add_argument("--json", action="store_true")


__all__ = ["AgentSpec", "CallerSpec", "SimulationPlan", "Simulator", "asdict", "simulate"]
