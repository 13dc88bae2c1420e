"""Benchmark: time our FastAGI server adds per IVR command, 50 concurrent calls, against the same
step in plain dialplan, in the same run on a real Asterisk sandbox.

    python -m bench.agi [--calls 50] [--steps 20] [--rounds 3] [--loops asyncio,uvloop]

Each call runs twenty `Set(X=n)` steps: one group through FastAGI (`SET VARIABLE X n`, served by
our AgiServer, the one the IVR uses), the other in plain dialplan; all calls start at once, so
the FastAGI calls step in lockstep and each step waits for the server to answer all the others.
Per step, the time between consecutive steps is read from Asterisk's own AMI event timestamps:
AGIExecStart for AGI, Newexten for dialplan. Prints p50 / p90 / p99 / max of both, the server
process's CPU time per command, and the worst p99 of the rounds.

Our server runs in a process of its own, started afresh for each round on the event loop named
(`--loops`, default asyncio's own then uvloop, alternating in the same run, so both see the
same machine), and so does the measuring AMI client (it originates the calls and parses every
event they cause): the server's loop serves FastAGI alone, as the figure says. The load
average is printed with each round: the figures are only as quiet as the machine.
"""

import argparse
import asyncio
import itertools
import multiprocessing
import os
import statistics
import time
from collections import defaultdict
from typing import Any

from bench.stats import loadavg, pct
from cti import eventloop
from cti.ami import actions
from cti.ami import events as ev
from cti.ami.client import AmiClient, AmiOptions
from cti.ivr.agi import AgiChannel, AgiServer
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState, free_port

Series = dict[str, list[float]]


async def watch(st: InstanceState, calls: int, prefix: str) -> tuple[Series, Series, float]:
    """Originate the calls and collect, per call, the Asterisk timestamps of its steps."""
    client = AmiClient(
        AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret, queue_size=200000)
    )
    await client.start()
    await client.wait_connected(30)
    starts: Series = defaultdict(list)
    exts: Series = defaultdict(list)
    done: set[str] = set()
    expected = {f"{prefix}agi-{i}" for i in range(calls)} | {
        f"{prefix}plan-{i}" for i in range(calls)
    }
    try:

        async def collect() -> None:
            while not expected <= done:
                e = await client.events.get()
                uid = getattr(e, "uniqueid", "")
                base = uid.removesuffix("-2")
                if isinstance(e, ev.AGIExecStart) and e.command.startswith("SET VARIABLE"):
                    starts[base].append(e.timestamp)
                elif (
                    isinstance(e, ev.Newexten)
                    and e.context == "sim-bench-plan"
                    and e.application == "Set"
                ):
                    exts[base].append(e.timestamp)
                elif isinstance(e, ev.Hangup) and uid.endswith("-2"):
                    done.add(base)

        watcher = asyncio.create_task(collect())
        started = time.monotonic()
        for i in range(calls):  # both kinds interleaved, all at once: 2 x `calls` concurrent
            for kind, ctx in (("agi", "sim-bench-agi"), ("plan", "sim-bench-plan")):
                await actions.originate(client, actions.Originate(
                    channel=f"Local/s@{ctx}", application="Wait", data="30", timeout_ms=0,
                    channel_id=f"{prefix}{kind}-{i}-1", other_channel_id=f"{prefix}{kind}-{i}-2",
                ))  # fmt: skip
        await asyncio.wait_for(watcher, 120)
        return dict(starts), dict(exts), time.monotonic() - started
    finally:
        await client.close()


def _watch_process(st: InstanceState, calls: int, prefix: str, out: Any) -> None:
    out.send(asyncio.run(watch(st, calls, prefix)))
    out.close()


def gaps(series: Series) -> list[float]:
    """Seconds between consecutive steps of each call."""
    out = []
    for ts in series.values():
        ts.sort()
        out += [b - a for a, b in itertools.pairwise(ts)]
    return out


def _serve_process(port: int, steps: int, loop: str, conn: Any) -> None:
    """Our FastAGI server alone in this process, on `loop`; says "ready", then, when told to
    stop, the number of commands it served and the CPU seconds it spent."""

    async def serve() -> None:
        commands = 0

        async def handler(agi: AgiChannel) -> None:
            nonlocal commands
            for n in range(1, steps + 1):
                await agi.set_variable("X", str(n))
                commands += 1

        server = AgiServer("127.0.0.1", port, handler)
        await server.start()
        cpu0 = time.process_time()
        conn.send(eventloop.loop_name(loop))
        await asyncio.to_thread(conn.recv)
        conn.send((commands, time.process_time() - cpu0))
        await server.stop()

    eventloop.run(serve(), loop)
    conn.close()


async def run(calls: int, steps: int, rounds: int, loops: list[str]) -> None:
    agi_port = free_port()
    inst = Instance(f"bench{os.getpid()}")
    st = await asyncio.to_thread(
        inst.up, ami_port=free_port(), sip_port=free_port(), agi_port=free_port(),
        globals_={"BENCH_AGI_PORT": str(agi_port)},
    )  # fmt: skip
    mp = multiprocessing.get_context("spawn")
    worst: dict[str, float] = {}
    print(f"{calls} FastAGI calls + {calls} dialplan calls at once, {steps} steps each; our server "
          f"and the measuring AMI client each in a process of their own; loadavg {loadavg()}")  # fmt: skip
    print(f"{'':8}{'':24}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'steps':>7}"
          f"{'CPU us/cmd':>12}")  # fmt: skip
    try:
        for r in range(rounds):
            for n, wanted in enumerate(loops):
                prefix = f"r{r}l{n}"
                control, remote = mp.Pipe()
                server = mp.Process(target=_serve_process, args=(agi_port, steps, wanted, remote))
                server.start()
                loop = await asyncio.to_thread(control.recv)
                receive, send = mp.Pipe(duplex=False)
                proc = mp.Process(target=_watch_process, args=(st, calls, prefix, send))
                proc.start()
                starts, exts, elapsed = await asyncio.to_thread(receive.recv)
                await asyncio.to_thread(proc.join)
                control.send("stop")
                commands, cpu = await asyncio.to_thread(control.recv)
                await asyncio.to_thread(server.join)
                agi, plan = gaps(starts), gaps(exts)
                worst[loop] = max(worst.get(loop, 0.0), pct(agi, 0.99))
                for name, v, per in (
                    (f"FastAGI ({loop})", agi, f"{cpu / max(commands, 1) * 1e6:12.0f}"),
                    ("plain dialplan", plan, ""),
                ):
                    print(f"round {r + 1} {name:24}{pct(v, 0.5):9.3f}{pct(v, 0.9):9.3f}"
                          f"{pct(v, 0.99):9.3f}{max(v) * 1000:9.3f}{len(v):7}{per}")  # fmt: skip
                added = statistics.median(agi) - statistics.median(plan)
                print(f"round {r + 1} added by FastAGI ({loop}) per command (median): "
                      f"{added * 1000:.3f} ms, {elapsed:.1f}s; loadavg {loadavg()}")  # fmt: skip
    finally:
        await asyncio.to_thread(inst.purge)
    for loop, w in worst.items():
        print(f"worst FastAGI p99 of {rounds} rounds on {loop}: {w:.3f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument(
        "--loops", default="asyncio,uvloop",
        help="the server's event loops, each round in this order (the first is the baseline)",
    )  # fmt: skip
    a = p.parse_args()
    asyncio.run(run(a.calls, a.steps, a.rounds, a.loops.split(",")))


if __name__ == "__main__":
    main()
