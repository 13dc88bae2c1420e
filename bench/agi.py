"""Benchmark: time our FastAGI server adds per IVR command, 50 concurrent calls, against the same
step in plain dialplan, in the same run on a real Asterisk sandbox.

    python -m bench.agi [--calls 50] [--steps 20] [--rounds 3] [--loops uvloop,asyncio]
                        [--impls baseline,current] [--baseline REV]

Each call runs twenty `Set(X=n)` steps: one group through FastAGI (`SET VARIABLE X n`, served by
our AgiServer, the one the IVR uses), the other in plain dialplan; all calls start at once, so
the FastAGI calls step in lockstep and each step waits for the server to answer all the others.
Per step, the time between consecutive steps is read from Asterisk's own AMI event timestamps:
AGIExecStart for AGI, Newexten for dialplan. Prints p50 / p90 / p99 / max of both, the server
process's CPU time per command (user + system, from getrusage) and its context switches per
command, then a summary: the median of the rounds and the worst p99.

Our server runs in a process of its own, started afresh for each round on each event loop named
(`--loops`) with each implementation named (`--impls`: `current` is cti/ivr/agi.py as it is,
`baseline` the cti/ivr/agi.py of git revision `--baseline`, read with `git show`, by default
the last one with the StreamReader channel), alternating in the same run so that all see the
same machine. The measuring AMI client (it originates the calls and parses every event they
cause) runs in a process of its own too: the server's loop serves FastAGI alone, as the figure
says. The load average is printed with each round: the figures are only as quiet as the machine.
"""

import argparse
import asyncio
import itertools
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
import types
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.stats import loadavg, pct
from cti import eventloop
from cti.ami import actions
from cti.ami import events as ev
from cti.ami.client import AmiClient, AmiOptions
from cti.ivr import agi as current_agi
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState, free_port

Series = dict[str, list[float]]
BASELINE = "b2c2e03"  # the last cti/ivr/agi.py with the StreamReader/StreamWriter channel
ROOT = Path(__file__).resolve().parent.parent


def baseline_source(rev: str) -> str:
    """cti/ivr/agi.py as it was at git revision `rev`."""
    return subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:cti/ivr/agi.py"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip


def load_agi(source: str | None) -> Any:
    """The FastAGI module to serve with: ours, or the baseline's source as a module."""
    if source is None:
        return current_agi
    module = types.ModuleType("agi_baseline")
    module.__file__ = "agi_baseline.py"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


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


def _usage() -> tuple[float, float, int]:
    """This process's user and system CPU seconds and context switches so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_nvcsw + r.ru_nivcsw


def _serve_process(port: int, steps: int, loop: str, source: str | None, conn: Any) -> None:
    """Our FastAGI server alone in this process, on `loop`, with the module `source` (None: ours);
    says "ready", then, when told to stop, the number of commands it served, the user and system
    CPU seconds it spent and its context switches."""
    agi = load_agi(source)

    async def serve() -> None:
        commands = 0

        async def handler(channel: Any) -> None:
            nonlocal commands
            for n in range(1, steps + 1):
                await channel.set_variable("X", str(n))
                commands += 1

        server = agi.AgiServer("127.0.0.1", port, handler)
        await server.start()
        waiting = asyncio.ensure_future(asyncio.to_thread(conn.recv))  # its thread, before
        await asyncio.sleep(0.05)
        before = _usage()
        conn.send(eventloop.loop_name(loop))
        await waiting
        after = _usage()
        conn.send((commands, *(b - a for a, b in zip(before, after, strict=True))))
        await server.stop()

    eventloop.run(serve(), loop)
    conn.close()


async def run(calls: int, steps: int, rounds: int, loops: list[str], impls: list[str],
              baseline: str) -> None:  # fmt: skip
    sources = {impl: baseline_source(baseline) if impl == "baseline" else None for impl in impls}
    agi_port = free_port()
    inst = Instance(f"bench{os.getpid()}")
    st = await asyncio.to_thread(
        inst.up, ami_port=free_port(), sip_port=free_port(), agi_port=free_port(),
        globals_={"BENCH_AGI_PORT": str(agi_port)},
    )  # fmt: skip
    mp = multiprocessing.get_context("spawn")
    seen: dict[str, list[tuple[float, float, float]]] = defaultdict(list)  # p50, p99, CPU/cmd
    pooled: dict[str, list[float]] = defaultdict(list)  # every round's step gaps, seconds
    print(f"{calls} FastAGI calls + {calls} dialplan calls at once, {steps} steps each; our server "
          f"and the measuring AMI client each in a process of their own; baseline = cti/ivr/agi.py "
          f"at {baseline}; loadavg {loadavg()}")  # fmt: skip
    head = f"{'':8}{'':30}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}{'steps':>6}"
    print(f"{head}{'CPU us/cmd':>11}{'user':>6}{'sys':>5}{'switch/cmd':>11}")
    try:
        for r in range(rounds):
            for n, (wanted, impl) in enumerate(itertools.product(loops, impls)):
                prefix = f"r{r}v{n}"
                control, remote = mp.Pipe()
                server = mp.Process(
                    target=_serve_process, args=(agi_port, steps, wanted, sources[impl], remote)
                )
                server.start()
                loop = await asyncio.to_thread(control.recv)
                receive, send = mp.Pipe(duplex=False)
                proc = mp.Process(target=_watch_process, args=(st, calls, prefix, send))
                proc.start()
                starts, exts, elapsed = await asyncio.to_thread(receive.recv)
                await asyncio.to_thread(proc.join)
                control.send("stop")
                commands, user, system, switches = await asyncio.to_thread(control.recv)
                await asyncio.to_thread(server.join)
                agi, plan = gaps(starts), gaps(exts)
                name = f"FastAGI {impl} ({loop})"
                per = max(commands, 1)
                cpu = (user + system) / per * 1e6
                seen[name].append((pct(agi, 0.5), pct(agi, 0.99), cpu))
                pooled[name] += agi
                for label, v, tail in (
                    (name, agi, f"{cpu:11.0f}{user / per * 1e6:6.0f}{system / per * 1e6:5.0f}"
                                f"{switches / per:11.2f}"),
                    ("plain dialplan", plan, ""),
                ):  # fmt: skip
                    print(f"round {r + 1} {label:30}{pct(v, 0.5):8.3f}{pct(v, 0.9):8.3f}"
                          f"{pct(v, 0.99):8.3f}{max(v) * 1000:8.3f}{len(v):6}{tail}")  # fmt: skip
                added = statistics.median(agi) - statistics.median(plan)
                print(f"round {r + 1} added by {name} per command (median): "
                      f"{added * 1000:.3f} ms, {elapsed:.1f}s; loadavg {loadavg()}")  # fmt: skip
    finally:
        await asyncio.to_thread(inst.purge)
    # In lockstep one stall of the machine delays the 50 calls' steps together: 5 % of a round's
    # samples, so a round's p99 is about its longest stall. The pooled p99 is that of every
    # command of every round; "< 5 ms" counts the rounds whose own p99 is under the aim.
    print(f"summary of {rounds} rounds (median of the rounds; worst p99; p99 of all rounds' "
          f"commands pooled); loadavg {loadavg()}")  # fmt: skip
    print(f"{'':38}{'p50 ms':>8}{'p99 ms':>8}{'worst p99':>10}{'pooled p99':>11}"
          f"{'< 5 ms':>8}{'CPU us/cmd':>11}")  # fmt: skip
    for name, figures in seen.items():
        p50s, p99s, cpus = zip(*figures, strict=True)
        under = sum(1 for v in p99s if v < 5.0)
        print(f"{name:38}{statistics.median(p50s):8.3f}{statistics.median(p99s):8.3f}"
              f"{max(p99s):10.3f}{pct(pooled[name], 0.99):11.3f}{f'{under}/{len(p99s)}':>8}"
              f"{statistics.median(cpus):11.0f}")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--loops", default="uvloop,asyncio", help="the server's event loops")
    p.add_argument(
        "--impls", default="baseline,current",
        help="FastAGI implementations, each on each loop, alternating in every round",
    )  # fmt: skip
    p.add_argument("--baseline", default=BASELINE, help="git revision of the baseline agi.py")
    a = p.parse_args()
    asyncio.run(run(a.calls, a.steps, a.rounds, a.loops.split(","), a.impls.split(","), a.baseline))


if __name__ == "__main__":
    main()
