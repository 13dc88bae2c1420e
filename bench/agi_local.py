"""Benchmark: our FastAGI server's own CPU per command, without Asterisk, on each event loop.

    python -m bench.agi_local [--calls 50] [--commands 200] [--loops asyncio,uvloop]
                              [--impls baseline,current] [--baseline REV]

A client process plays Asterisk for `--calls` connections at once, answering every command at
once (`200 result=1`); the server (the AgiServer the IVR uses, in this process) sends
`--commands` SET VARIABLE commands per call. Prints the server's CPU and wall time per command
for each loop and implementation (`current`, or the `baseline` agi.py of git revision
`--baseline`, as in bench.agi), alternating in the same run; bench.agi measures the same against
a real Asterisk.
"""

import argparse
import asyncio
import multiprocessing
import resource
import time
from typing import Any

from bench.agi import BASELINE, baseline_source, load_agi
from bench.stats import loadavg
from cti import eventloop


def _asterisk(port: int, calls: int, commands: int) -> None:
    async def call(i: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"agi_network_script: ivr\nagi_uniqueid: {i}\n\n".encode())
        for _ in range(commands):
            await reader.readline()
            writer.write(b"200 result=1\n")
        await reader.read()
        writer.close()

    async def main() -> None:
        await asyncio.gather(*(call(i) for i in range(calls)))

    eventloop.run(main())


def _switches() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_nvcsw + r.ru_nivcsw


async def serve(agi: Any, calls: int, commands: int) -> tuple[float, float, float]:
    """CPU and wall seconds and context switches per command, serving with the module `agi`."""
    done = asyncio.Event()
    served = 0

    async def handler(channel: Any) -> None:
        nonlocal served
        for n in range(commands):
            await channel.set_variable("X", str(n))
            served += 1
        if served == calls * commands:
            done.set()

    server = agi.AgiServer("127.0.0.1", 0, handler)
    await server.start()
    client = multiprocessing.get_context("spawn").Process(
        target=_asterisk, args=(server.port, calls, commands)
    )
    client.start()
    cpu0, wall0, switches0 = time.process_time(), time.perf_counter(), _switches()
    await asyncio.wait_for(done.wait(), 600)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    switches = _switches() - switches0
    await server.stop()
    await asyncio.to_thread(client.join)
    return cpu / served, wall / served, switches / served


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--calls", type=int, default=50)
    p.add_argument("--commands", type=int, default=200)
    p.add_argument("--loops", default="asyncio,uvloop,asyncio,uvloop")
    p.add_argument("--impls", default="baseline,current")
    p.add_argument("--baseline", default=BASELINE, help="git revision of the baseline agi.py")
    a = p.parse_args()
    impls = a.impls.split(",")
    modules = {i: load_agi(baseline_source(a.baseline) if i == "baseline" else None) for i in impls}
    print(f"{a.calls} connections x {a.commands} commands; loadavg {loadavg()}")
    for wanted in a.loops.split(","):
        for impl in impls:
            cpu, wall, switches = eventloop.run(serve(modules[impl], a.calls, a.commands), wanted)
            print(f"{impl:8} {eventloop.loop_name(wanted):8} server CPU {cpu * 1e6:6.1f} us/command, "
                  f"wall {wall * 1e6:6.1f} us/command, {switches:.2f} context switches/command; "
                  f"loadavg {loadavg()}")  # fmt: skip


if __name__ == "__main__":
    main()
