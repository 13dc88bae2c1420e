"""Benchmark: time our FastAGI server adds per IVR command, 50 concurrent calls, against the same
step in plain dialplan, in the same run on a real Asterisk sandbox.

    python -m bench.agi [--calls 50] [--steps 20] [--rounds 3] [--loops uvloop,asyncio]
                        [--impls baseline,current] [--baseline REV] [--watch-nice 19]
                        [--think-ms 0]

Each call runs twenty `Set(X=n)` steps: one group through FastAGI (`SET VARIABLE X n`, served by
our AgiServer, the one the IVR uses), the other in plain dialplan; all calls start at once, so
the FastAGI calls step in lockstep and each step waits for the server to answer all the others:
some 20 000 commands a second, the 2-core machine saturated for the 50 ms of a round. With
`--think-ms N` each FastAGI step is `EXEC Wait` of N ms instead, as an IVR's steps are (a
prompt, a wait for keys: Asterisk takes a while, then answers), and the step rows are the step
less those N ms: 50 calls then ask for 1000 commands a second at N = 50.

A FastAGI step is timed twice. On the wire (bench.wire: the kernel's timestamps of the packets
of our FastAGI port on the loopback, read after each round): "wire step" is the time between
consecutive commands of a call leaving our server (Asterisk's part and ours), "wire our part"
the time from Asterisk's result leaving Asterisk to our next command leaving our server. From
Asterisk's AMI event timestamps ("AMI stamps", AGIExecStart; Newexten for the plain dialplan,
which only has this one): Asterisk stamps an event when its manager thread formats it, which
under load is late (seen: our next command on the wire 35 ms before the AMI stamp of the
previous command's end), so that figure measures Asterisk's event queue as well; the wire is
the one to read. Without CAP_NET_RAW the wire rows are left out. Prints p50 / p90 / p99 / max,
the server process's CPU time per command (user + system, from getrusage) and its context
switches per command, then a summary: the median of the rounds, the worst p99, the p99 of all
rounds pooled and how many rounds stayed under 5 ms.

Our server runs in a process of its own, started afresh for each round on each event loop named
(`--loops`) with each implementation named (`--impls`: `current` is cti/ivr/agi.py as it is,
`baseline` the cti/ivr/agi.py of git revision `--baseline`, read with `git show`, by default
the last one with the StreamReader channel), alternating in the same run so that all see the
same machine. The measuring AMI client (it originates the calls and parses every event they
cause, some 4000 a round, in the same 50 ms as the steps) runs in a process of its own, at
`--watch-nice` (19: it takes the CPU the others leave and reads its backlog after the burst;
0 makes it compete with what it measures). The load average is printed with each round: the
figures are only as quiet as the machine.
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
from bench.wire import Segment, agi_steps, open_capture
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
STEP_COMMANDS = ("SET VARIABLE", "EXEC Wait", 'EXEC "Wait"')  # a step, however quoted
WIRE_STEP_COMMANDS = tuple(c.encode() for c in STEP_COMMANDS)


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
                if isinstance(e, ev.AGIExecStart) and e.command.startswith(STEP_COMMANDS):
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


def _watch_process(st: InstanceState, calls: int, prefix: str, nice: int, out: Any) -> None:
    os.nice(nice)  # the harness, not what is measured: it takes the CPU the others leave
    out.send(asyncio.run(watch(st, calls, prefix)))
    out.close()


def gaps(series: Series) -> list[float]:
    """Seconds between consecutive steps of each call."""
    out = []
    for ts in series.values():
        ts.sort()
        out += [b - a for a, b in itertools.pairwise(ts)]
    return out


def wire_gaps(segments: list[Segment], port: int) -> tuple[list[float], list[float]]:
    """bench.wire.agi_steps for this benchmark's step commands."""
    return agi_steps(segments, port, WIRE_STEP_COMMANDS)


def _usage() -> tuple[float, float, int]:
    """This process's user and system CPU seconds and context switches so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime, r.ru_stime, r.ru_nvcsw + r.ru_nivcsw


def _serve_process(
    port: int, steps: int, think_ms: int, loop: str, source: str | None, conn: Any
) -> None:
    """Our FastAGI server alone in this process, on `loop`, with the module `source` (None: ours);
    says "ready", then, when told to stop, the number of commands it served, the user and system
    CPU seconds it spent and its context switches. Each step is SET VARIABLE, or with `think_ms`
    EXEC Wait (Asterisk takes that long to answer, as it does for a prompt)."""
    agi = load_agi(source)

    async def serve() -> None:
        commands = 0

        async def handler(channel: Any) -> None:
            nonlocal commands
            for n in range(1, steps + 1):
                if think_ms:
                    await channel.exec("Wait", f"{think_ms / 1000:.3f}")
                else:
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
              baseline: str, watch_nice: int = 19, think_ms: int = 0) -> None:  # fmt: skip
    sources = {impl: baseline_source(baseline) if impl == "baseline" else None for impl in impls}
    agi_port = free_port()
    inst = Instance(f"bench{os.getpid()}")
    st = await asyncio.to_thread(
        inst.up, ami_port=free_port(), sip_port=free_port(), agi_port=free_port(),
        globals_={"BENCH_AGI_PORT": str(agi_port)},
    )  # fmt: skip
    capture = open_capture(agi_port)
    mp = multiprocessing.get_context("spawn")
    seen: dict[str, list[tuple[float, float]]] = defaultdict(list)  # each round's p50, p99
    pooled: dict[str, list[float]] = defaultdict(list)  # every round's gaps, seconds
    cpus: dict[str, list[float]] = defaultdict(list)  # CPU seconds per command, each round
    kind = f"EXEC Wait {think_ms} ms" if think_ms else "SET VARIABLE, lockstep"
    print(f"{calls} FastAGI calls + {calls} dialplan calls at once, {steps} steps each ({kind}); "
          f"our server and the measuring AMI client each in a process of their own; baseline = "
          f"cti/ivr/agi.py at {baseline}; loadavg {loadavg()}")  # fmt: skip
    head = f"{'':8}{'':56}{'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}{'steps':>6}"
    print(f"{head}{'CPU us/cmd':>11}{'user':>6}{'sys':>5}{'switch/cmd':>11}")
    try:
        for r in range(rounds):
            for n, (wanted, impl) in enumerate(itertools.product(loops, impls)):
                prefix = f"r{r}v{n}"
                control, remote = mp.Pipe()
                server = mp.Process(
                    target=_serve_process,
                    args=(agi_port, steps, think_ms, wanted, sources[impl], remote),
                )
                server.start()
                loop = await asyncio.to_thread(control.recv)
                if capture is not None:
                    capture.drain()  # what came before this round
                receive, send = mp.Pipe(duplex=False)
                proc = mp.Process(target=_watch_process, args=(st, calls, prefix, watch_nice, send))
                proc.start()
                starts, exts, elapsed = await asyncio.to_thread(receive.recv)
                await asyncio.to_thread(proc.join)
                control.send("stop")
                commands, user, system, switches = await asyncio.to_thread(control.recv)
                await asyncio.to_thread(server.join)
                name = f"FastAGI {impl} ({loop})"
                per = max(commands, 1)
                cpu = (user + system) / per * 1e6
                cpus[name].append(cpu)
                # With think time, a step less the wait it asked for: what is left is added.
                less, wait = (f" - {think_ms} ms wait", think_ms / 1000) if think_ms else ("", 0.0)
                series = [(f"{name}, AMI stamps{less}", [g - wait for g in gaps(starts)])]
                if capture is not None:
                    wire, ours = wire_gaps(capture.drain(), agi_port)
                    series += [
                        (f"{name}, wire step{less}", [g - wait for g in wire]),
                        (f"{name}, wire our part", ours),
                    ]
                for label, v in series:
                    seen[label].append((pct(v, 0.5), pct(v, 0.99)))
                    pooled[label] += v
                tail = (f"{cpu:11.0f}{user / per * 1e6:6.0f}{system / per * 1e6:5.0f}"
                        f"{switches / per:11.2f}")  # fmt: skip
                plan = gaps(exts)
                for label, v in [*series, ("plain dialplan, AMI stamps", plan)]:
                    print(
                        f"round {r + 1} {label:56}{pct(v, 0.5):8.3f}{pct(v, 0.9):8.3f}"
                        f"{pct(v, 0.99):8.3f}{max(v, default=0) * 1000:8.3f}{len(v):6}{tail}"
                    )
                    tail = ""
                added = statistics.median(series[0][1] or [0.0]) - statistics.median(plan or [0.0])
                print(f"round {r + 1} added by {name} per command (median, AMI stamps): "
                      f"{added * 1000:.3f} ms, {elapsed:.1f}s; loadavg {loadavg()}")  # fmt: skip
    finally:
        if capture is not None:
            capture.close()
        await asyncio.to_thread(inst.purge)
    # In lockstep one stall of the machine delays the 50 calls' steps together: 5 % of a round's
    # samples, so a round's p99 is about its longest stall. The pooled p99 is that of every
    # command of every round; "< 5 ms" counts the rounds whose own p99 is under the aim.
    print(f"summary of {rounds} rounds (median of the rounds; worst p99; p99 of all rounds' "
          f"commands pooled); loadavg {loadavg()}")  # fmt: skip
    print(f"{'':56}{'p50 ms':>8}{'p99 ms':>8}{'worst p99':>10}{'pooled p99':>11}"
          f"{'< 5 ms':>8}{'CPU us/cmd':>11}")  # fmt: skip
    for label, figures in seen.items():
        p50s, p99s = zip(*figures, strict=True)
        under = sum(1 for v in p99s if v < 5.0)
        cpu_text = f"{statistics.median(cpus[label.split(',')[0]]):11.0f}"
        print(f"{label:56}{statistics.median(p50s):8.3f}{statistics.median(p99s):8.3f}"
              f"{max(p99s):10.3f}{pct(pooled[label], 0.99):11.3f}{f'{under}/{len(p99s)}':>8}"
              f"{cpu_text}")  # fmt: skip


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
    p.add_argument(
        "--watch-nice", type=int, default=19,
        help="niceness of the measuring AMI client's process (0: it competes for the CPU)",
    )  # fmt: skip
    p.add_argument(
        "--think-ms", type=int, default=0,
        help="each FastAGI step an EXEC Wait of this long, as a prompt (0: SET VARIABLE, lockstep)",
    )  # fmt: skip
    a = p.parse_args()
    asyncio.run(run(a.calls, a.steps, a.rounds, a.loops.split(","), a.impls.split(","),
                    a.baseline, a.watch_nice, a.think_ms))  # fmt: skip


if __name__ == "__main__":
    main()
