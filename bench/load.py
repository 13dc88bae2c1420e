"""Benchmark: many concurrent carrier calls over SIP through the IVR and the queue, with no lost
record, and where the 2-core machine saturates.

    python -m bench.load [--steps 50,100,150,200] [--rate 10] [--baseline 10] [--local 100]
    python -m bench.load --calls 100 --concurrent 100 [--rate 10]

A private sandbox (bench.server) with the deployed pjsip.conf and `cti serve` in its own process.
The carrier is SIPp over the deployed trunk definition (tests.support.sip: bound to the trunk's
loopback address), one call per directory user, each with RTP and RFC 2833 DTMF: the caller keys
1 again and again (fault report), so the IVR opens an incident, reads its number back and queues
the call; an agent answers, talks, hangs up; the caller says nothing in the survey and Asterisk
sends the BYE. The agents are logged in to the CTI server over its web API with the agent page's
WebSocket open (they get every pop) and answer on the sandbox's Local-channel phones
([sim-agent]): 200 baresip processes would load the two cores more than the server does, and the
part under test here is the carrier side, the IVR, the journal and the pops.

Each step places N calls at `--rate` calls/s with SIPp's limit at N and the agents' talk time long
enough for all N to be up at once, then checks that nothing was lost: SIPp's every call
succeeded; exactly one journal row per call SIPp placed (by caller number), answered, ended, with
an incident; queue_log agrees (one ENTERQUEUE and a CONNECT to the journal's agent per call, no
queue_log call without a row); incidents the IVR opened = calls that keyed. Per step it prints
the CTI server's CPU per call and peak RSS, Asterisk's and SIPp's CPU, the load average, SIP
setup time (INVITE to 200 OK, SIPp's own), the IVR's time and the FastAGI turnaround: from an
AGI command's end to the next command's start on the channel by Asterisk's AMI timestamps
("AGI"; they are taken when Asterisk's manager thread formats the event, late under load), and
on the wire ("wire", bench.wire: from Asterisk's reply leaving to the server's next command
leaving, kernel timestamps of the FastAGI port's packets; left out without CAP_NET_RAW). The first
step (10 calls by default) is the baseline of the same run: saturation shows as failed calls or
as setup time, AGI turnaround and time to agent rising well above it.
"""

import argparse
import asyncio
import contextlib
import csv
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from sqlalchemy import text

from bench.pop_ws import WsAgent
from bench.server import BenchServer, bench_server, cpu_seconds, rss_mb
from bench.stats import pct
from bench.wire import agi_steps, open_capture
from cti.ami import events as ev
from cti.ami.client import AmiClient
from cti.db import create_engine
from cti.queuelog import parse_line
from cti.sandbox.instance import free_udp_port
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator
from tests.support.postgres import PostgresServer
from tests.support.sip import caller_scenario, rtp_pcap

# Press 1 (report a fault) again and again: a key during the welcome interrupts it, the next
# one answers the main menu, the rest fall on prompts that take only * (as tests/sip does).
KEYS = [(1.0 + 1.5 * i, "1") for i in range(10)]
# The Local-channel callers key the same: 1 after a second, then every 1.75 s (w is 0.5 s).
LOCAL_KEYS = "1" + "www1" * 9
# The callers' channels in the journal, by who places the calls.
CHANNELS = {"sip": "PJSIP/carrier-%", "local": "Local/%@sim-caller-%"}


@dataclass
class StepResult:
    """What one step measured and found."""

    name: str
    calls: int
    since: float = 0.0  # when the step placed its first call (epoch seconds)
    seconds: float = 0.0
    sipp_ok: int = 0
    sipp_failed: int = 0
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    peak_concurrent: int = 0
    server_cpu: float = 0.0
    server_idle_cpu: float = 0.0  # what the server spends with nobody calling, over as long
    server_rss_peak: float = 0.0
    asterisk_cpu: float = 0.0
    sipp_cpu: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)
    setup: list[float] = field(default_factory=list)
    ivr: list[float] = field(default_factory=list)
    to_agent: list[float] = field(default_factory=list)
    agi: list[float] = field(default_factory=list)
    agi_wire: list[float] = field(default_factory=list)
    incidents: int = 0
    keyed: int = 0
    lost: int = 0  # calls SIPp placed with no journal row, or more than one


class AgiWatch:
    """FastAGI turnaround per command from the sim user's AMI events: AGIExecEnd of one command
    to AGIExecStart of the next on the same channel (the server's reply, plus the network, plus
    the lag of Asterisk's AMI stamps under load); and on the wire (bench.wire, where the packet
    capture can run): from Asterisk's reply leaving to the server's next command leaving."""

    def __init__(self, client: AmiClient, agi_port: int) -> None:
        self.client = client
        self.last_end: dict[str, float] = {}
        self.gaps: list[float] = []
        self.port = agi_port
        self.capture = open_capture(agi_port)
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            e = await self.client.events.get()
            if isinstance(e, ev.AGIExecEnd):
                self.last_end[e.uniqueid] = e.timestamp
            elif isinstance(e, ev.AGIExecStart):
                end = self.last_end.pop(e.uniqueid, None)
                if end is not None:
                    self.gaps.append(e.timestamp - end)
            elif isinstance(e, ev.Newexten | ev.Hangup):
                # Back in the dialplan: the FastAGI session is over (the survey's is another).
                self.last_end.pop(e.uniqueid, None)

    def take(self) -> list[float]:
        gaps, self.gaps = self.gaps, []
        return gaps

    def take_wire(self) -> list[float]:
        """The turnarounds on the wire since the last call (none without the capture)."""
        if self.capture is None:
            return []
        return agi_steps(self.capture.drain(), self.port)[1]

    async def close(self) -> None:
        self.task.cancel()
        if self.capture is not None:
            self.capture.close()


async def prime(client: AmiClient, n_agents: int, talk: int) -> None:
    """The agents' Local-channel phones answer after 1-2 s and talk `talk` to `talk` + 3 s."""
    agents = [AgentSpec(str(2001 + i), (1, 2), (talk, talk + 3)) for i in range(n_agents)]
    await Simulator(client, SimulationPlan(rate=1, agents=agents, callers=[])).prime_agents()


def _ts(value: str | datetime | None) -> float | None:
    if value is None:
        return None
    d = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return (d if d.tzinfo else d.replace(tzinfo=UTC)).timestamp()


async def read_journal(
    db_url: str, since: float, channel: str
) -> tuple[list[dict[str, Any]], set[str], list[dict[str, Any]]]:
    """The step's calls (from the journal), the ones that keyed in the IVR, and the incidents
    the IVR opened for them."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as con:
            found = await con.execute(
                text("SELECT * FROM calls WHERE channel LIKE :ch ORDER BY arrived_at"),
                {"ch": channel},
            )
            rows = [
                dict(r._mapping) for r in found if (_ts(r._mapping["arrived_at"]) or 0) >= since - 1
            ]
            uids = {r["uniqueid"] for r in rows}
            found = await con.execute(
                text(
                    "SELECT DISTINCT call_uniqueid FROM ivr_steps"
                    " WHERE route = 'ivr' AND digits != ''"
                )
            )
            keyed = {r[0] for r in found} & uids
            found = await con.execute(
                text("SELECT call_uniqueid, created_at FROM incidents WHERE recorded_by = 'IVR'")
            )
            opened = [dict(r._mapping) for r in found if r[0] in uids]
    finally:
        await engine.dispose()
    return rows, keyed, opened


async def check(
    db_url: str,
    queue_log: Path,
    since: float,
    numbers: list[str],
    res: StepResult,
    channel: str = CHANNELS["sip"],
) -> list[dict[str, Any]]:
    """No lost record: one journal row per call placed, agreeing with queue_log and incidents."""
    rows, keyed, opened = await read_journal(db_url, since, channel)
    uids = {r["uniqueid"] for r in rows}
    res.rows = len(rows)
    res.keyed = len(keyed)
    res.incidents = len(opened)
    per_number: dict[str, int] = defaultdict(int)
    for r in rows:
        per_number[r["caller_number"]] += 1
    missing = [n for n in numbers if per_number.get(n, 0) == 0]
    doubled = [n for n, c in per_number.items() if c > 1]
    strangers = [n for n in per_number if n not in set(numbers)]
    res.lost = len(missing) + len(doubled)
    if missing:
        res.problems.append(f"{len(missing)} calls with no journal row, e.g. {missing[:3]}")
    if doubled:
        res.problems.append(f"{len(doubled)} callers with more than one row, e.g. {doubled[:3]}")
    if strangers:
        res.problems.append(f"{len(strangers)} rows from numbers not dialled: {strangers[:3]}")
    for r in rows:
        if r["ended_at"] is None or r["outcome"] != "answered" or not r["incident_number"]:
            res.problems.append(
                f"{r['uniqueid']}: outcome {r['outcome']}, ended {r['ended_at']},"
                f" incident {r['incident_number']}"
            )
    if {o["call_uniqueid"] for o in opened} != keyed or len(opened) != len(keyed):
        res.problems.append(f"{len(opened)} incidents opened by the IVR, {len(keyed)} calls keyed")
    # queue_log: Asterisk's own record of the same calls.
    enter: dict[str, int] = defaultdict(int)
    connect: dict[str, str] = {}
    log = await asyncio.to_thread(queue_log.read_text, errors="replace")
    for line in log.splitlines():
        e = parse_line(line)
        if e is None or e.time < int(since) - 1:
            continue
        if e.event == "ENTERQUEUE":
            enter[e.callid] += 1
        elif e.event == "CONNECT":
            connect[e.callid] = e.agent
    for r in rows:
        if enter.get(r["uniqueid"]) != 1 or connect.get(r["uniqueid"]) != r["agent"]:
            res.problems.append(
                f"{r['uniqueid']}: queue_log ENTERQUEUE x{enter.get(r['uniqueid'], 0)},"
                f" CONNECT {connect.get(r['uniqueid'])} but journal agent {r['agent']}"
            )
    unjournaled = [c for c in enter if c not in uids]
    if unjournaled:
        res.problems.append(f"{len(unjournaled)} queue_log calls with no journal row")
    return rows


def peak_overlap(rows: list[dict[str, Any]]) -> int:
    """The most calls up at once (arrival to end), from the journal."""
    marks = []
    for r in rows:
        a, b = _ts(r["arrived_at"]), _ts(r["ended_at"])
        if a is not None and b is not None:
            marks += [(a, 1), (b, -1)]
    peak = cur = 0
    for _, d in sorted(marks):
        cur += d
        peak = max(peak, cur)
    return peak


def sipp_counts(folder: Path) -> tuple[int, int]:
    """(successful, failed) calls from SIPp's statistics file (its last line)."""
    files = sorted(folder.glob("*_.csv"))
    if not files:
        return 0, 0
    with files[0].open() as fh:
        rows = list(csv.reader(fh, delimiter=";"))
    head, last = rows[0], rows[-1]
    return int(last[head.index("SuccessfulCall(C)")]), int(last[head.index("FailedCall(C)")])


def sipp_rtts(folder: Path) -> list[float]:
    """Each call's INVITE → 200 OK time, seconds (SIPp's -trace_rtt file)."""
    out = []
    for f in folder.glob("*_rtt.csv"):
        with f.open() as fh:
            for row in csv.reader(fh, delimiter=";"):
                if len(row) >= 2 and row[1].replace(".", "").isdigit():
                    out.append(float(row[1]) / 1000)
    return out


def write_sipp_files(folder: Path, numbers: list[str], seconds: float) -> None:
    """The carrier's scenario (one call per line of callers.csv: caller number and name) and the
    callers' RTP with their keys."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "callers.csv").write_text("SEQUENTIAL\n" + "".join(f"{n};用户\n" for n in numbers))
    pcap = rtp_pcap(folder / "caller.pcap", KEYS, seconds)
    (folder / "scenario.xml").write_text(caller_scenario("[field0]", "[field1]", pcap, 300))


class Step(NamedTuple):
    """One step: `calls` calls, at most `concurrent` at once, from the carrier over SIP (SIPp)
    or, as the comparison, from the sandbox's Local-channel callers ([sim-caller])."""

    name: str
    calls: int
    concurrent: int
    carrier: str = "sip"  # or "local"


async def step(
    srv: BenchServer,
    client: AmiClient,
    n_agents: int,
    watch: AgiWatch,
    s: Step,
    rate: float,
    idle_rate: float,
) -> StepResult:
    """Place the step's calls at `rate`/s and check every record."""
    res = StepResult(s.name, s.calls)
    numbers = srv.numbers[: s.calls]
    folder = srv.work / f"step-{s.name}"
    # Long enough that the step's calls are all up at once (placing them takes calls/rate s).
    talk = math.ceil(min(s.calls, s.concurrent) / rate) + 5
    await prime(client, n_agents, talk)
    await asyncio.to_thread(write_sipp_files, folder, numbers, 20 + talk + 10)
    st = srv.st
    watch.take()
    watch.take_wire()
    loads = [os.getloadavg()[0]]
    ast_pid = st.pid or 0
    cpu0 = (cpu_seconds(srv.pid), cpu_seconds(ast_pid))
    since = res.since = time.time()
    budget = s.calls / rate + 20 + talk + 200
    sipp: asyncio.subprocess.Process | None = None
    sim: Simulator | None = None
    sim_client: AmiClient | None = None
    if s.carrier == "sip":
        args = [
            f"127.0.0.1:{st.sip_port}", "-sf", str(folder / "scenario.xml"), "-s", "8000",
            "-i", st.carrier_host, "-p", str(st.carrier_port),
            "-mi", st.carrier_host, "-mp", str(free_udp_port(st.carrier_host)),
            "-inf", str(folder / "callers.csv"),
            "-m", str(s.calls), "-r", str(rate), "-l", str(s.concurrent),
            "-trace_err", "-error_file", str(folder / "errors.log"),
            "-trace_stat", "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
            "-trace_screen", "-screen_file", str(folder / "screen.txt"), "-nostdin",
        ]  # fmt: skip
        with (folder / "stdout.txt").open("wb") as out:
            sipp = await asyncio.create_subprocess_exec(
                "sipp", *args, cwd=folder, stdin=asyncio.subprocess.DEVNULL, stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
        done: asyncio.Future[Any] = asyncio.ensure_future(sipp.wait())
    else:
        # The simulator reads its own AMI connection (the AGI watch reads the other one).
        sim_client = srv.sim_client()
        await sim_client.start()
        await sim_client.wait_connected(30)
        callers = [CallerSpec(300, 1, LOCAL_KEYS, n, "用户") for n in numbers]
        sim = Simulator(sim_client, SimulationPlan(rate=rate, agents=[], callers=callers))
        done = asyncio.ensure_future(sim.run(timeout=budget))
    try:
        async with asyncio.timeout(budget):
            while not done.done():
                res.server_rss_peak = max(res.server_rss_peak, rss_mb(srv.pid))
                if sipp is not None:
                    with contextlib.suppress(OSError):
                        res.sipp_cpu = cpu_seconds(sipp.pid)
                loads.append(os.getloadavg()[0])
                await asyncio.wait([done], timeout=1)
    except TimeoutError:
        done.cancel()
        if sipp is not None:
            sipp.terminate()
            await sipp.wait()
        res.problems.append("the calls did not end in time")
    finally:
        if sim_client is not None:
            await sim_client.close()
    res.seconds = time.time() - since
    queue_log = Path(st.queue_log)
    channel = CHANNELS[s.carrier]
    # The journal writes a finished call shortly after its hang-up.
    for _ in range(60):
        rows = await check(
            srv.db_url, queue_log, since, numbers, StepResult(s.name, s.calls), channel
        )
        if len(rows) >= s.calls and all(r["ended_at"] for r in rows):
            break
        await asyncio.sleep(1)
    res.server_cpu = cpu_seconds(srv.pid) - cpu0[0]
    res.server_idle_cpu = idle_rate * res.seconds
    res.asterisk_cpu = cpu_seconds(ast_pid) - cpu0[1]
    res.load = (min(loads), max(loads))
    if sim is not None:
        failed = sum(1 for c in sim.calls.values() if c.failed)
        res.sipp_ok, res.sipp_failed = len(sim.calls) - failed, failed
    else:
        res.sipp_ok, res.sipp_failed = sipp_counts(folder)
        res.setup = sipp_rtts(folder)
    if res.sipp_ok != s.calls or res.sipp_failed:
        res.problems.append(f"{res.sipp_ok} calls succeeded, {res.sipp_failed} failed")
    rows = await check(srv.db_url, queue_log, since, numbers, res, channel)
    res.peak_concurrent = peak_overlap(rows)
    for r in rows:
        a, q, ans = (_ts(r[k]) for k in ("arrived_at", "queued_at", "answered_at"))
        if a is not None and q is not None:
            res.ivr.append(q - a)
        if a is not None and ans is not None:
            res.to_agent.append(ans - a)
    res.agi = watch.take()
    res.agi_wire = watch.take_wire()
    # Let the agents' wrap-up end before the next step.
    await asyncio.sleep(3)
    return res


def report(results: list[StepResult]) -> None:
    """The table of figures."""
    print(
        f"{'step':10}{'calls':>6}{'peak':>5}{'fail':>5}{'lost':>5}{'srv CPU/call':>13}"
        f"{'RSS MB':>7}{'srv CPU':>8}{'ast CPU':>8}{'sipp':>6}{'setup ms p50/p99':>17}"
        f"{'AGI ms p50/p99':>16}{'wire p50/p99':>14}{'to queue s p50/p99':>19}{'to agent s p50/p99':>19}{'load':>11}"
    )
    for r in results:
        print(
            f"{r.name:10}{r.calls:6}{r.peak_concurrent:5}{r.sipp_failed:5}{r.lost:5}"
            f"{(r.server_cpu - r.server_idle_cpu) / max(r.calls, 1) * 1000:10.0f} ms"
            f"{r.server_rss_peak:7.0f}"
            f"{r.server_cpu / r.seconds * 100:7.0f}%{r.asterisk_cpu / r.seconds * 100:7.0f}%"
            f"{r.sipp_cpu / r.seconds * 100:5.0f}%"
            f"{pct(r.setup, 0.5):9.1f}/{pct(r.setup, 0.99):<7.1f}"
            f"{pct(r.agi, 0.5):8.1f}/{pct(r.agi, 0.99):<7.1f}"
            f"{pct(r.agi_wire, 0.5):6.2f}/{pct(r.agi_wire, 0.99):<7.2f}"
            f"{pct(r.ivr, 0.5) / 1000:11.1f}/{pct(r.ivr, 0.99) / 1000:<7.1f}"
            f"{pct(r.to_agent, 0.5) / 1000:11.1f}/{pct(r.to_agent, 0.99) / 1000:<7.1f}"
            f"{r.load[0]:5.1f}-{r.load[1]:<5.1f}"
        )
    for r in results:
        print(
            f"{r.name}: {r.rows} journal rows for {r.calls} calls, SIPp {r.sipp_ok} ok /"
            f" {r.sipp_failed} failed, {r.incidents} incidents for {r.keyed} calls that keyed,"
            f" {len(r.agi)} AGI commands, {r.seconds:.0f} s; "
            + ("no lost record" if not r.problems else "PROBLEMS:")
        )
        for p in r.problems[:10]:
            print(f"    {p}")


@contextlib.asynccontextmanager
async def load_server(
    n_agents: int, *, keep: bool = False, postgresql: bool = False
) -> AsyncIterator[BenchServer]:
    """The sandbox and the CTI server of this benchmark: the IVR with short stand-ins of the
    prompts (as the test workers play them), open all day, `n_agents` agents' staff records;
    the database an SQLite file, or a PostgreSQL server of its own (Debian's, as the tests')."""
    pg: PostgresServer | None = None
    db_url = None
    if postgresql:
        pg = await asyncio.to_thread(PostgresServer().start)
        db_url = pg.url(await asyncio.to_thread(pg.create_database))
    try:
        async with bench_server(
            "benchload",
            agents=n_agents,
            always_open=True,
            prompts="short",
            keep=keep,
            env={"CTI_WRAPUP_SECONDS": "1"},
            db_url=db_url,
        ) as srv:
            yield srv
    finally:
        if pg is not None:
            await asyncio.to_thread(pg.stop)


def agents_for(steps: list[Step]) -> int:
    """Agents enough that no step's call waits for one: its most calls at once."""
    return max(min(s.calls, s.concurrent) for s in steps)


async def drive(srv: BenchServer, steps: list[Step], rate: float) -> list[StepResult]:
    """Log the agents in and run the steps (name, calls, at most this many at once)."""
    n_agents = agents_for(steps)
    if max(s.calls for s in steps) > len(srv.numbers):
        raise SystemExit(f"at most {len(srv.numbers)} calls per step (one per directory user)")
    client = srv.sim_client()
    sessions: list[aiohttp.ClientSession] = []
    watch: AgiWatch | None = None
    try:
        await client.start()
        await client.wait_connected(30)
        watch = AgiWatch(client, srv.st.agi_port)
        await prime(client, n_agents, 10)
        gate = asyncio.Semaphore(8)  # logins eight at a time (each hashes a password)

        async def log_in(ext: int) -> None:
            http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
            sessions.append(http)
            async with gate:
                await WsAgent(http, ext).start(srv.url)

        await asyncio.gather(*(log_in(2001 + i) for i in range(n_agents)))
        await asyncio.sleep(3)  # every agent ready in Asterisk
        # The server's own cost with the agents logged in and nobody calling (CPU s per s).
        cpu0, t0 = cpu_seconds(srv.pid), time.time()
        await asyncio.sleep(10)
        idle_rate = (cpu_seconds(srv.pid) - cpu0) / (time.time() - t0)
        print(
            f"{n_agents} agents ready (Local-channel phones, pages on WebSocket); sandbox"
            f" {srv.inst.name}; {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f};"
            f" server idle CPU {idle_rate * 100:.1f}%, RSS {rss_mb(srv.pid):.0f} MB",
            flush=True,
        )
        results = []
        for s in steps:
            r = await step(srv, client, n_agents, watch, s, rate, idle_rate)
            results.append(r)
            report([r])
            sys.stdout.flush()
        return results
    finally:
        if watch is not None:
            await watch.close()
        for http in sessions:
            await http.close()
        await client.close()


async def run(
    steps: list[Step], rate: float, keep: bool, postgresql: bool = False
) -> list[StepResult]:
    """Run the steps on one sandbox and server; print the table and return the results."""
    async with load_server(agents_for(steps), keep=keep, postgresql=postgresql) as srv:
        print(f"database: {srv.db_url.split(':')[0]}")
        results = await drive(srv, steps, rate)
    print()
    report(results)
    return results


def plan(args: argparse.Namespace) -> list[Step]:
    """The baseline step, the Local-channel comparison, then --calls/--concurrent as one step,
    else one step per --steps figure."""
    out = [Step("baseline", args.baseline, args.baseline)] if args.baseline else []
    if args.local:
        out.append(Step(f"local{args.local}", args.local, args.local, "local"))
    if args.calls or args.concurrent:
        calls = args.calls or args.concurrent
        concurrent = args.concurrent or calls
        return [*out, Step(f"c{concurrent}", calls, concurrent)]
    return [*out, *(Step(f"c{n}", n, n) for n in (int(x) for x in args.steps.split(",")))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", default="50,100,150,200", help="concurrent calls per step")
    p.add_argument("--calls", type=int, default=0, help="one step of this many calls …")
    p.add_argument("--concurrent", type=int, default=0, help="… at most this many at once")
    p.add_argument("--rate", type=float, default=10, help="new calls per second")
    p.add_argument("--baseline", type=int, default=10, help="calls of the baseline step (0: none)")
    p.add_argument(
        "--local", type=int, default=100,
        help="calls of the comparison step on Local-channel callers, no SIP (0: none)",
    )  # fmt: skip
    p.add_argument(
        "--postgresql", action="store_true",
        help="the desk's database on a PostgreSQL server of its own (default: an SQLite file)",
    )  # fmt: skip
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, SIPp files)")
    a = p.parse_args()
    results = asyncio.run(run(plan(a), a.rate, a.keep, a.postgresql))
    raise SystemExit(1 if any(r.problems for r in results) else 0)


if __name__ == "__main__":
    main()
