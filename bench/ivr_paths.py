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
import contextlib
import os
import shutil
import sys
import tempfile
import wave
from pathlib import Path

from bench.pop import seed
from bench.stats import pct
from cti.ami.client import AmiClient, AmiOptions
from cti.sandbox import Instance
from cti.sandbox.instance import free_port
from cti.simulate import AgentSpec, CallerSpec, SimCall, SimulationPlan, Simulator

ALWAYS_OPEN = """timezone: Asia/Shanghai
weekly: {mon: ["00:00-23:59"], tue: ["00:00-23:59"], wed: ["00:00-23:59"], thu: ["00:00-23:59"],
         fri: ["00:00-23:59"], sat: ["00:00-23:59"], sun: ["00:00-23:59"]}
"""

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
    inst = Instance(f"benchivr{os.getpid()}")
    st = await asyncio.to_thread(
        inst.up,
        ami_port=free_port(),
        sip_port=free_port(),
        agi_port=free_port(),
        globals_={"CTI_QUEUE_TIMEOUT": "120"},
    )
    work = Path(tempfile.mkdtemp(prefix="bench-ivr-"))
    (work / "config").mkdir()
    (work / "config" / "hours.yaml").write_text(ALWAYS_OPEN)
    db_url = f"sqlite+aiosqlite:///{work / 'cti.sqlite3'}"
    numbers = await seed(db_url, 4)
    port = free_port()
    env = {
        **os.environ,
        "CTI_DATABASE_URL": db_url,
        "CTI_DATA_DIR": str(work),
        "CTI_CONFIG_DIR": str(work / "config"),
        "CTI_HTTP_PORT": str(port),
        "CTI_AMI_HOST": st.ami_host,
        "CTI_AMI_PORT": str(st.ami_port),
        "CTI_AMI_USER": st.ami_user,
        "CTI_AMI_SECRET": st.ami_secret,
        "CTI_QUEUE_LOG_PATH": st.queue_log,
        "CTI_AGI_PORT": str(st.agi_port),
        "CTI_AGI_SECRET": st.agi_secret,
        "CTI_MEDIA_DIR": st.media_dir,
        "CTI_ASTERISK_MEDIA_DIR": st.asterisk_media_dir,
        "CTI_TTS_ROOT": st.root,
        "CTI_AGENT_INTERFACE": "Local/{ext}@sim-agent/n",
        "CTI_WRAPUP_SECONDS": "1",
        "CTI_REPORT_SCHEDULE": "0",
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti", "serve", env=env, stderr=asyncio.subprocess.DEVNULL
    )
    sim_client = AmiClient(AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret))
    try:
        for _ in range(150):
            with contextlib.suppress(OSError):
                _r, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            await asyncio.sleep(0.2)
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
        sounds = Path(st.root) / "usr/share/asterisk/sounds"
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
        print(
            f"{'path':28}{'calls':>6}{'to queue p50':>14}{'max':>7}{'audio heard':>13}{'IVR own':>9}"
        )
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
    finally:
        await sim_client.close()
        server.terminate()
        await server.wait()
        await asyncio.to_thread(inst.purge)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=2, help="callers per path")
    args = p.parse_args()
    asyncio.run(run(args.repeat))


if __name__ == "__main__":
    main()
