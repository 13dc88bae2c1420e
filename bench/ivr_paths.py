"""Benchmark: a caller's time from the desk answering to the queue, for the common IVR paths.

    python -m bench.ivr_paths [--repeat 2]

A private sandbox and `cti serve` in its own process with the shipped menus (the desk open all
day). Each path is one kind of caller, played by the simulator reacting to the prompts Asterisk
starts (AGIExecStart): a known caller who keys 0 during the welcome, one who waits to hear the
main menu first, a fault report, a password request through the service menu, an unknown caller
who skips identification, and a caller who presses nothing. Time to queue is Asterisk's own
QueueCallerJoin timestamp minus the call's placing. The baseline, in the same run, is the audio
those callers actually heard (the prompts' WAV lengths, read from the sandbox): what is left is
the IVR's own time (digit timeouts, AGI, database). Digits read back (the incident number)
are not in the prompt catalogue and count as the IVR's own time.
"""

import argparse
import asyncio
import wave
from pathlib import Path

from bench.server import BenchServer, bench_server
from bench.stats import pct
from cti.ami.client import AmiClient
from cti.simulate import AgentSpec, CallerSpec, SimCall, SimulationPlan, Simulator

# name -> (known caller?, reactions)
PATHS: dict[str, tuple[bool, dict[str, str]]] = {
    "0 during the welcome": (True, {"welcome": "0"}),
    "0 after the main menu": (True, {"main_menu": "0"}),
    "1 fault report": (True, {"welcome": "1"}),
    "2 then 1 password": (True, {"welcome": "2", "service_menu": "1"}),
    "unknown caller, 0, #": (False, {"welcome": "0", "identify_unknown": "#"}),
    "presses nothing": (True, {}),
}


def heard_seconds(call: SimCall, sounds: Path, until: float) -> float:
    """The audio this caller heard before `until`: each prompt started before it, as long as
    its WAV file or until the next prompt cut it short."""
    total = 0.0
    starts = [*call.prompts_at, until]
    for i, prompt in enumerate(call.prompts):
        if starts[i] >= until:
            break
        f = sounds / "zh" / "cti" / f"{prompt}.wav"
        length = 0.0
        if f.exists():
            with wave.open(str(f)) as w:
                length = w.getnframes() / w.getframerate()
        total += max(0.0, min(length, starts[i + 1] - starts[i]))
    return total


async def run(repeat: int) -> None:
    async with bench_server("benchivr", agents=4, always_open=True) as srv:
        sim_client = srv.sim_client()
        try:
            await measure(srv, sim_client, repeat)
        finally:
            await sim_client.close()


async def measure(srv: BenchServer, sim_client: AmiClient, repeat: int) -> None:
    numbers = srv.numbers
    await sim_client.start()
    await sim_client.wait_connected(30)
    callers: list[tuple[str, CallerSpec]] = []
    for _ in range(repeat):
        for name, (known, reactions) in PATHS.items():
            number = numbers[len(callers) % len(numbers)] if known else "13999999999"
            callers.append((name, CallerSpec(200, 0, "", number, "", reactions=reactions)))
    agents = [AgentSpec("2001", (1, 1), (1, 1)), AgentSpec("2002", (1, 1), (1, 1))]
    plan = SimulationPlan(rate=0.25, agents=agents, callers=[c for _, c in callers])
    sim = Simulator(sim_client, plan)
    await sim.setup_agents()
    result = await sim.run(timeout=600)
    sounds = Path(srv.st.root) / "usr/share/asterisk/sounds"
    by_path: dict[str, list[tuple[float, float]]] = {}
    by_caller = {id(c): n for n, c in callers}
    for call in result.calls:
        if call.queued_at is None:
            print(f"  {by_caller[id(call.caller)]}: not queued ({call.result}) {call.prompts}")
            continue
        to_queue = call.queued_at - call.placed_at
        by_path.setdefault(by_caller[id(call.caller)], []).append(
            (to_queue, heard_seconds(call, sounds, call.queued_at))
        )
    print(f"{'path':28}{'calls':>6}{'to queue p50':>14}{'max':>7}{'audio heard':>13}{'IVR own':>9}")
    for name in PATHS:
        rows = by_path.get(name, [])
        if not rows:
            continue
        tq = [r[0] for r in rows]
        audio = [r[1] for r in rows]
        own = [r[0] - r[1] for r in rows]
        print(
            f"{name:28}{len(rows):6}{pct(tq, 0.5) / 1000:13.1f}s{max(tq):6.1f}s"
            f"{pct(audio, 0.5) / 1000:12.1f}s{pct(own, 0.5) / 1000:8.1f}s"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2, help="callers per path")
    args = p.parse_args()
    asyncio.run(run(args.repeat))


if __name__ == "__main__":
    main()
