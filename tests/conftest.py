"""Shared fixtures: a real Asterisk sandbox for the session, the simulator, the CTI server, and a
PostgreSQL server of our own for the tests that (or a run that) ask for it.

CTI_TEST_DATABASE=postgresql runs every test that builds its server with `server_settings` on a
fresh PostgreSQL database; the `postgresql` marker does it for one test in every run.
CTI_TEST_DATABASE_URL=postgresql://user@host:port/db does the same on a server already running
(tests/support/postgres.py).

scripts/test runs the tests on several pytest-xdist workers. Each worker is a process with its
own session fixtures: its own Asterisk sandbox (named after the process, on free ports), its own
PostgreSQL and slapd when it needs them; every test has its own tmp_path. A test that must not
share the machine with others is marked `serial` and runs alone (scripts/test runs them in a
pass of their own before the others; the lock below keeps them alone in any one run); tests that
must share one worker (and so one sandbox) can use `pytest.mark.xdist_group(name)`.
"""

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cti.ami.client import AmiClient, AmiOptions
from cti.errors import AmiActionFailed
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState, free_port
from cti.settings import Settings, load_settings
from tests.support import db, durations
from tests.support import postgres as pg
from tests.support.postgres import PostgresServer

# The queue timeout of the test sandbox: short, so tests see timed-out calls quickly.
QUEUE_TIMEOUT = 15


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On xdist workers: long tests first (by their recorded durations, then `slow`, Asterisk,
    browser tests), so that no worker starts a long one while the others run out of work;
    `serial` ones last, where they hold up the fewest others."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    recorded = durations.load()

    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("serial") is not None:
            return 3
        if item.get_closest_marker("slow") is not None:
            return -1
        if item.get_closest_marker("asterisk") is not None or "sandbox" in getattr(
            item, "fixturenames", ()
        ):
            return 0
        if item.get_closest_marker("browser") is not None or "browser" in getattr(
            item, "fixturenames", ()
        ):
            return 1
        return 2

    def order(item: pytest.Item) -> tuple[bool, bool, float, int]:
        serial = item.get_closest_marker("serial") is not None
        alone = item.get_closest_marker("alone") is not None  # after the serial ones it waits for
        return serial, alone, -recorded.get(item.nodeid, 0.0), rank(item)

    items.sort(key=order)  # stable: the files' own order within each rank


@contextlib.contextmanager
def _alone_or_together(folder: Path, alone: bool) -> Iterator[None]:
    """Every test holds `room` shared while it runs; a `serial` one holds it exclusively. The
    `gate` stops new tests from entering while a serial one waits for the room to empty."""
    with (
        (folder / "cti-tests-gate").open("a") as gate,
        (folder / "cti-tests-room").open("a") as room,
    ):
        fcntl.flock(gate, fcntl.LOCK_EX)
        if alone:
            fcntl.flock(room, fcntl.LOCK_EX)
        else:
            fcntl.flock(room, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield


@pytest.fixture(autouse=True)
def _serial(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """Tests marked `serial` run while no test of the parallel kind does (on any xdist worker).
    In a run of serial tests only (scripts/test's first pass) they share the machine with each
    other: they wait for calls in real time and use a fraction of a core each, where the others
    (Chromium pages, the API fuzzers, bursts of simulated calls) keep both cores busy. A test
    marked `alone` too runs with no other test at all."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    marked = request.node.get_closest_marker
    serial = marked("serial") is not None
    alone = marked("alone") is not None or (
        serial
        and not all(item.get_closest_marker("serial") is not None for item in request.session.items)
    )
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    with _alone_or_together(shared, alone):
        yield


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of our own (initdb + pg_ctl, a free loopback port), for the session."""
    server = pg.server().start()
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh PostgreSQL database for this test (its SQLAlchemy URL), dropped afterwards."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)


def wants_postgresql(request: pytest.FixtureRequest) -> bool:
    """The test is marked `postgresql`, or the run asks for it (CTI_TEST_DATABASE=postgresql)."""
    if request.node.get_closest_marker("postgresql") is not None:
        return True
    return pg.wanted_for_every_test() and "tmp_path" in request.fixturenames


@pytest.fixture(autouse=True)
def _test_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Give the test's server (server_settings) and the readers in tests.support a PostgreSQL
    database instead of the SQLite file in tmp_path, when asked for."""
    if not wants_postgresql(request):
        yield
        return
    folder: Path = request.getfixturevalue("tmp_path")
    db.use(folder, request.getfixturevalue("pg_url"))
    yield
    db.forget(folder)


def own_sandbox(prefix: str) -> Iterator[Instance]:
    """A fresh Asterisk named `prefix` + this process's id, on free ports, with short stand-ins
    of the IVR prompts; purged when done."""
    inst = Instance(f"{prefix}{os.getpid()}")
    inst.purge()
    inst.up(
        ami_port=free_port(),
        sip_port=free_port(),
        agi_port=free_port(),
        globals_={"CTI_QUEUE_TIMEOUT": str(QUEUE_TIMEOUT)},
        prompts="short",
    )
    yield inst
    inst.purge()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Instance]:
    """A real Asterisk 22 of our own for the whole test session (of this xdist worker: each
    worker process has its own)."""
    yield from own_sandbox("test")


@pytest.fixture
def sandbox_state(sandbox: Instance, request: pytest.FixtureRequest) -> InstanceState:
    """The running sandbox's ports and credentials (restarting it if a test stopped it), playing
    the real prompts to tests marked `real_prompts` and short stand-ins to the others."""
    if not sandbox.is_running():
        sandbox.restart()
    listens = request.node.get_closest_marker("real_prompts") is not None
    sandbox.use_prompts("full" if listens else "short")
    st = sandbox.load()
    assert st is not None
    return st


async def _idle_queue(client: AmiClient, queue: str = "helpdesk") -> None:
    """Log every member out and wait until no call is up, so tests do not see each other."""
    for _ in range(600):
        chans = await client.action("CoreShowChannels", as_list=True)
        if not any(m.get("Event") == "CoreShowChannel" for m in chans):
            break
        await asyncio.sleep(0.1)
    status = await client.action("QueueStatus", as_list=True, Queue=queue)
    for m in status:
        if m.get("Event") == "QueueMember":
            with contextlib.suppress(AmiActionFailed):
                await client.action("QueueRemove", Queue=queue, Interface=m["Location"])


@contextlib.asynccontextmanager
async def idle_sim_client(st: InstanceState) -> AsyncIterator[AmiClient]:
    """The simulator's AMI client on the sandbox `st`, with an idle, memberless help-desk
    queue."""
    client = AmiClient(AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret))
    await client.start()
    try:
        await client.wait_connected(30)
        await _idle_queue(client)
        yield client
    finally:
        await client.close()


@pytest.fixture
async def sim_client(sandbox_state: InstanceState) -> AsyncIterator[AmiClient]:
    """The simulator's AMI client, with an idle, memberless help-desk queue."""
    async with idle_sim_client(sandbox_state) as client:
        yield client


def server_settings(
    st: InstanceState, tmp_path: Path, *, ami_port: int | None = None, **extra: str
) -> Settings:
    """Settings for a CTI server on this sandbox with its own database (the SQLite file in
    tmp_path, or the test's PostgreSQL database)."""
    env = {
        "CTI_DATABASE_URL": db.url_of(tmp_path),
        "CTI_AMI_HOST": st.ami_host,
        "CTI_AMI_PORT": str(ami_port or st.ami_port),
        "CTI_AMI_USER": st.ami_user,
        "CTI_AMI_SECRET": st.ami_secret,
        "CTI_QUEUE_LOG_PATH": st.queue_log,
        "CTI_AGI_PORT": str(st.agi_port),
        "CTI_AGI_SECRET": st.agi_secret,
        "CTI_MEDIA_DIR": st.media_dir,
        "CTI_ASTERISK_MEDIA_DIR": st.asterisk_media_dir,
        "CTI_TTS_ROOT": st.root,
        # The desk is open whatever the time of day the tests run.
        "CTI_CONFIG_DIR": str(Path(__file__).parent / "fixtures" / "config" / "open"),
        "CTI_AGENT_INTERFACE": "Local/{ext}@sim-agent/n",
        # Wrap-up pauses an agent after each call; tests that do not study it keep it short.
        "CTI_WRAPUP_SECONDS": "1",
        "CTI_AMI_PING_INTERVAL": "1",
        "CTI_AMI_PING_TIMEOUT": "2",
        **extra,
    }
    return load_settings(None, env)
