"""Benchmark: time our FastAGI server adds per IVR command, 50 concurrent calls, against the same
step in plain dialplan, in the same run on a real Asterisk sandbox.

    python -m bench.agi [--calls 50] [--steps 20] [--rounds 3]

Each call runs twenty `Set(X=n)` steps: one group through FastAGI (`SET VARIABLE X n`, served by
our AgiServer, the one the IVR uses), the other in plain dialplan; all calls start at once, so
the FastAGI calls step in lockstep and each step waits for the server to answer all the others.
Per step, the time between consecutive steps is read from Asterisk's own AMI event timestamps:
AGIExecStart for AGI, Newexten for dialplan. Prints p50 / p90 / p99 / max of both, the server
process's CPU time per command, and the worst p99 of the rounds.

The measuring (an AMI client that originates the calls and parses every event they cause) runs
in a process of its own, so that the server's event loop serves FastAGI alone, as the figure
says; `--watch-here` puts it back in the server's loop, for comparison.
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

from bench.stats import pct
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


async def run(calls: int, steps: int, rounds: int, watch_here: bool) -> None:
    agi_port = free_port()
    inst = Instance(f"bench{os.getpid()}")
    st = await asyncio.to_thread(
        inst.up, ami_port=free_port(), sip_port=free_port(), agi_port=free_port(),
        globals_={"BENCH_AGI_PORT": str(agi_port)},
    )  # fmt: skip
    commands = 0

    async def handler(agi: AgiChannel) -> None:
        nonlocal commands
        for n in range(1, steps + 1):
            await agi.set_variable("X", str(n))
            commands += 1

    server = AgiServer("127.0.0.1", agi_port, handler)
    await server.start()
    mp = multiprocessing.get_context("spawn")
    worst = 0.0
    where = "in the server's process" if watch_here else "in a process of its own"
    print(f"{calls} FastAGI calls + {calls} dialplan calls at once, {steps} steps each; "
          f"the measuring AMI client runs {where}")  # fmt: skip
    print(f"{'':8}{'':22}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'steps':>7}"
          f"{'CPU us/cmd':>12}")  # fmt: skip
    try:
        for r in range(rounds):
            prefix = f"r{r}"
            commands, cpu0 = 0, time.process_time()
            if watch_here:
                starts, exts, elapsed = await watch(st, calls, prefix)
            else:
                receive, send = mp.Pipe(duplex=False)
                proc = mp.Process(target=_watch_process, args=(st, calls, prefix, send))
                proc.start()
                starts, exts, elapsed = await asyncio.to_thread(receive.recv)
                await asyncio.to_thread(proc.join)
            cpu = time.process_time() - cpu0
            agi, plan = gaps(starts), gaps(exts)
            worst = max(worst, pct(agi, 0.99))
            for name, v, per in (
                ("FastAGI (our server)", agi, f"{cpu / max(commands, 1) * 1e6:12.0f}"),
                ("plain dialplan", plan, ""),
            ):
                print(f"round {r + 1} {name:22}{pct(v, 0.5):9.3f}{pct(v, 0.9):9.3f}"
                      f"{pct(v, 0.99):9.3f}{max(v) * 1000:9.3f}{len(v):7}{per}")  # fmt: skip
            added = statistics.median(agi) - statistics.median(plan)
            print(f"round {r + 1} added by FastAGI per command (median): {added * 1000:.3f} ms, "
                  f"{elapsed:.1f}s")  # fmt: skip
    finally:
        await server.stop()
        await asyncio.to_thread(inst.purge)
    print(f"worst FastAGI p99 of {rounds} rounds: {worst:.3f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--watch-here", action="store_true", help="measure in the server's own loop")
    a = p.parse_args()
    asyncio.run(run(a.calls, a.steps, a.rounds, a.watch_here))


if __name__ == "__main__":
    main()
