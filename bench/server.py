"""The set-up the benchmarks share: a private Asterisk sandbox, a database of their own, `cti serve`
in its own process (so its CPU and memory are its own), the wait for its port, and the teardown.

    async with bench_server("benchload", agents=200, env={...}) as srv:
        srv.url, srv.pid, srv.st (the sandbox's ports and credentials), srv.numbers ...
"""

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cti.ami.client import AmiClient, AmiOptions
from cti.db import create_engine, migrate, session_maker
from cti.ivr.ports import NewIncident
from cti.phone import NumberPlan, normalize
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState, free_port
from desk import directory, incidents
from desk.migrations import MIGRATIONS
from desk.staff import upsert_staff

ALWAYS_OPEN = """timezone: Asia/Shanghai
weekly: {mon: ["00:00-23:59"], tue: ["00:00-23:59"], wed: ["00:00-23:59"], thu: ["00:00-23:59"],
         fri: ["00:00-23:59"], sat: ["00:00-23:59"], sun: ["00:00-23:59"]}
"""


PASSWORD = "bench password"
USERS = 200


async def seed(db_url: str, agents: int) -> list[str]:
    """Staff 2001.., directory users with one earlier incident each; returns caller numbers."""
    engine = create_engine(db_url)
    numbers = []
    try:
        await migrate(engine, MIGRATIONS)
        async with session_maker(engine).begin() as s:
            now = datetime.now(UTC)
            for i in range(agents):
                fields = {
                    "username": f"a{2001 + i}",
                    "name": f"坐席{i}",
                    "role": "agent",
                    "extension": str(2001 + i),
                    "queues": "helpdesk",
                }
                await upsert_staff(s, fields, PASSWORD)
            for i in range(USERS):
                mobile = f"137{i:08d}"
                numbers.append(mobile)
                user, _ = await directory.upsert_user(
                    s,
                    {
                        "employee_no": f"B{i:05d}",
                        "name": f"用户{i}",
                        "department": "测试部",
                        "location": "北京",
                        "office_phone": "",
                        "mobile": mobile,
                        "email": f"u{i}@example.com",
                    },
                    by="bench",
                    now=now,
                    plan=NumberPlan(area_code="10"),
                )
                new = NewIncident(
                    "fault",
                    "打印机",
                    "打印机卡纸",
                    "phone",
                    mobile,
                    normalize(mobile, NumberPlan(area_code="10")).key,
                    directory.requester_of(user),
                    "",
                    "zh",
                    "",
                )
                await incidents.create(s, new, recorded_by="bench", now=now, local_day=now.date())
    finally:
        await engine.dispose()
    return numbers


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process now, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class BenchServer:
    """A running sandbox + CTI server."""

    inst: Instance
    st: InstanceState
    work: Path
    db_url: str
    port: int
    proc: asyncio.subprocess.Process
    numbers: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sim_client(self, queue_size: int = 500000) -> AmiClient:
        """An AMI client as the sandbox's `sim` user (not yet started)."""
        st = self.st
        return AmiClient(
            AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret, queue_size=queue_size)
        )


async def wait_port(port: int, proc: asyncio.subprocess.Process, timeout: float = 60) -> None:
    """Wait until something listens on 127.0.0.1:port (and the process is still alive)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if proc.returncode is not None:
            raise RuntimeError(f"cti serve exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError):
            _r, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"cti serve did not listen on {port} within {timeout:g} s")


@contextlib.asynccontextmanager
async def bench_server(
    prefix: str,
    *,
    agents: int,
    env: dict[str, str] | None = None,
    always_open: bool = False,
    prompts: str | None = None,
    keep: bool = False,
    db_url: str | None = None,
) -> AsyncIterator[BenchServer]:
    """A private sandbox named `prefix` + pid, its staff `a2001..` (`agents` of them) and directory
    users seeded (`seed`), and `cti serve` on it with `env` on top of the common settings.
    `always_open` pins opening hours open all day (the IVR's menus rather than after-hours);
    `prompts="short"` plays short stand-ins of the IVR prompts; `db_url` is the database (an
    SQLite file in the work folder if not given). Everything is removed at the end
    (`keep` leaves the work folder, with the server's log, for a look)."""
    inst = Instance(f"{prefix}{os.getpid()}")
    inst.purge()
    st = await asyncio.to_thread(
        inst.up,
        ami_port=free_port(),
        sip_port=free_port(),
        agi_port=free_port(),
        globals_={"CTI_QUEUE_TIMEOUT": "120"},
        prompts=prompts,
    )
    work = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    proc: asyncio.subprocess.Process | None = None
    try:
        extra: dict[str, str] = {}
        if always_open:
            (work / "config").mkdir()
            (work / "config" / "hours.yaml").write_text(ALWAYS_OPEN)
            extra["CTI_CONFIG_DIR"] = str(work / "config")
        db_url = db_url or f"sqlite+aiosqlite:///{work / 'cti.sqlite3'}"
        numbers = await seed(db_url, agents)
        port = free_port()
        full_env = {
            **os.environ,
            "CTI_DATABASE_URL": db_url,
            "CTI_DATA_DIR": str(work),
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
            **extra,
            **(env or {}),
        }
        with (work / "server.log").open("wb") as log:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cti", "serve", env=full_env,
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        await wait_port(port, proc)
        yield BenchServer(inst, st, work, db_url, port, proc, numbers)
    finally:
        if proc is not None and proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.to_thread(inst.purge)
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
