"""Benchmark: time our FastAGI server adds per IVR command, 50 concurrent calls, against the same
step in plain dialplan, in the same run on a real Asterisk sandbox.

    python -m bench.agi [--calls 50] [--steps 20]

Each call runs twenty `Set(X=n)` steps: one group through FastAGI (`SET VARIABLE X n`, served by
our AgiServer, the one the IVR uses), the other in plain dialplan. Per step, the time between
consecutive steps is read from Asterisk's own AMI event timestamps: AGIExecStart for AGI,
Newexten for dialplan. Prints p50 / p90 / p99 of both and their difference.
"""

import argparse
import asyncio
import itertools
import os
import statistics
import time
from collections import defaultdict

from bench.stats import pct
from cti.ami import actions
from cti.ami import events as ev
from cti.ami.client import AmiClient, AmiOptions
from cti.ivr.agi import AgiChannel, AgiServer
from cti.sandbox import Instance
from cti.sandbox.instance import free_port


async def run(calls: int, steps: int) -> None:
    agi_port = free_port()
    inst = Instance(f"bench{os.getpid()}")
    st = await asyncio.to_thread(
        inst.up, ami_port=free_port(), sip_port=free_port(), agi_port=free_port(),
        globals_={"BENCH_AGI_PORT": str(agi_port)},
    )  # fmt: skip

    async def handler(agi: AgiChannel) -> None:
        for n in range(1, steps + 1):
            await agi.set_variable("X", str(n))

    server = AgiServer("127.0.0.1", agi_port, handler)
    await server.start()
    client = AmiClient(
        AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret, queue_size=200000)
    )
    await client.start()
    try:
        starts: dict[str, list[float]] = defaultdict(list)
        exts: dict[str, list[float]] = defaultdict(list)
        done: set[str] = set()
        expected = {f"agi-{i}" for i in range(calls)} | {f"plan-{i}" for i in range(calls)}

        async def watch() -> None:
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

        watcher = asyncio.create_task(watch())
        started = time.monotonic()
        for i in range(calls):  # both kinds interleaved, all at once: 2 x `calls` concurrent
            for kind, ctx in (("agi", "sim-bench-agi"), ("plan", "sim-bench-plan")):
                await actions.originate(client, actions.Originate(
                    channel=f"Local/s@{ctx}", application="Wait", data="30", timeout_ms=0,
                    channel_id=f"{kind}-{i}-1", other_channel_id=f"{kind}-{i}-2",
                ))  # fmt: skip
        await asyncio.wait_for(watcher, 120)
        elapsed = time.monotonic() - started
    finally:
        await client.close()
        await server.stop()
        await asyncio.to_thread(inst.purge)

    def gaps(series: dict[str, list[float]]) -> list[float]:
        out = []
        for ts in series.values():
            ts.sort()
            out += [b - a for a, b in itertools.pairwise(ts)]
        return out

    agi, plan = gaps(starts), gaps(exts)
    print(
        f"{calls} FastAGI calls + {calls} dialplan calls at once, "
        f"{steps} steps each, {elapsed:.1f}s"
    )
    print(f"{'':22}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'steps':>8}")
    for name, v in (("FastAGI (our server)", agi), ("plain dialplan", plan)):
        print(f"{name:22}{pct(v, 0.5):9.3f}{pct(v, 0.9):9.3f}{pct(v, 0.99):9.3f}{len(v):8}")
    added = statistics.median(agi) - statistics.median(plan)
    print(f"added by FastAGI per command (median): {added * 1000:.3f} ms")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--steps", type=int, default=20)
    a = p.parse_args()
    asyncio.run(run(a.calls, a.steps))


if __name__ == "__main__":
    main()
