"""Several `cti serve` nodes behind one address: one PostgreSQL, a Redis broker of the test's own
(tests/support/redis.py), one sandbox Asterisk. The node owning the AMI link is killed with -9
mid-traffic: another takes the lease, and no call record is lost or doubled against queue_log;
agents' pages on other nodes keep getting their pops, the wallboard on another node its boards.
Also the broker and the lease alone, as an attacker and as a dying holder would try them."""

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis as redis_sync
import redis.asyncio as aioredis

from cti.ami import events as ev
from cti.ami.client import AmiClient, AmiOptions
from cti.db import create_engine, migrate, session_maker
from cti.errors import ConfigError
from cti.live.broker import PREFIX, Broker, BusRelay
from cti.live.bus import AgentStateChanged, Bus, DomainEvent, QueueChanged
from cti.live.lease import Lease, holders
from cti.live.model import AgentState, AgentView
from cti.sandbox.instance import InstanceState, free_port
from cti.settings import load_settings
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, Simulator
from desk.migrations import MIGRATIONS
from desk.staff import upsert_staff
from desk.web.nodes import AMI_LEASE
from tests.conftest import server_settings
from tests.integration.test_journal import _env_of, assert_journal_matches, mixed_callers, run_sim
from tests.integration.test_overflow import FIXTURES, routing_yaml
from tests.support import db, journal
from tests.support.im import ImReceiver
from tests.support.redis import USER, RedisServer
from tests.support.staff import PASSWORD

pytestmark = pytest.mark.postgresql


@pytest.fixture(scope="module")
def broker_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


# -- the broker ----------------------------------------------------------------------------------


def _agent(ext: str) -> AgentStateChanged:
    view = AgentView(ext, AgentState.READY, "", 1.5, ("helpdesk", "vip"), None)
    return AgentStateChanged(view)


async def _until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def test_events_reach_the_other_nodes_once_and_in_order(broker_server: RedisServer) -> None:
    """What the owner's bus publishes reaches its own page bus at once and every other node's
    page bus through Redis, once, in order, equal to the original; a node never hears itself."""
    a_sink, b_sink, owner_bus = Bus(), Bus(), Bus()
    a, b = Broker(broker_server.url(), "a"), Broker(broker_server.url(), "b")
    a_relay, _ = BusRelay(a, a_sink), BusRelay(b, b_sink)
    seen: dict[str, list[DomainEvent]] = {"a": [], "b": []}
    for name, sink in (("a", a_sink), ("b", b_sink)):
        for kind in (AgentStateChanged, QueueChanged):
            sink.subscribe(kind, seen[name].append)
    await a.start()
    await b.start()
    try:
        detach = a_relay.attach(owner_bus)
        sent = [_agent("1001"), QueueChanged("helpdesk", 3), _agent("张三"), QueueChanged("vip", 0)]
        for event in sent:
            owner_bus.publish(event)
        assert seen["a"] == sent  # locally, synchronously
        assert await _until(lambda: len(seen["b"]) >= len(sent))
        await asyncio.sleep(0.3)
        assert seen["b"] == sent and seen["a"] == sent, seen
        detach()
        owner_bus.publish(QueueChanged("helpdesk", 9))
        await asyncio.sleep(0.3)
        assert len(seen["b"]) == len(sent), "a detached bus relays nothing"
    finally:
        await a.close()
        await b.close()


async def test_a_broken_entry_is_skipped_and_the_link_goes_on(broker_server: RedisServer) -> None:
    """Garbage on the stream (a bad writer, a newer version's event) is counted and skipped."""
    sink = Bus()
    got: list[DomainEvent] = []
    sink.subscribe(QueueChanged, got.append)
    b = Broker(broker_server.url(), "b")
    BusRelay(b, sink)
    await b.start()
    r = aioredis.from_url(broker_server.url())
    try:
        for raw in (b"not json", json.dumps({"node": "x"}).encode(),
                    json.dumps({"node": "x", "data": {"type": "Nope"}}).encode(),
                    json.dumps({"node": "x", "data": {"type": "QueueChanged", "queue": 5,
                                                      "waiting": "x", "extra": 1}}).encode(),
                    json.dumps({"node": "x", "data": {"type": "QueueChanged",
                                                      "queue": "helpdesk", "waiting": 2}}).encode(),
                    ):  # fmt: skip
            await r.xadd(f"{PREFIX}bus", {"m": raw})
        await r.xadd(f"{PREFIX}bus", {"other": b"field"})
        assert await _until(lambda: got)
        assert got[-1] == QueueChanged("helpdesk", 2)
        assert b.stats.bad >= 3, b.stats
    finally:
        await r.aclose()
        await b.close()


async def test_events_published_while_the_broker_is_away_arrive_when_it_is_back() -> None:
    """Redis restarts (its streams lost: nothing is saved): what the owner published meanwhile
    waits in its queue and reaches the other node, in order, once Redis is back."""
    server = RedisServer().start()
    owner, sink = Bus(), Bus()
    a, b = Broker(server.url(), "a"), Broker(server.url(), "b")
    relay = BusRelay(a, Bus())
    BusRelay(b, sink)
    got: list[DomainEvent] = []
    sink.subscribe(QueueChanged, got.append)
    await a.start()
    await b.start()
    try:
        relay.attach(owner)
        owner.publish(QueueChanged("helpdesk", 1))
        assert await _until(lambda: len(got) == 1)
        restarting = asyncio.create_task(asyncio.to_thread(server.restart, 2.0))
        await asyncio.sleep(0.7)  # Redis is down now
        owner.publish(QueueChanged("helpdesk", 2))
        owner.publish(QueueChanged("helpdesk", 3))
        assert await _until(lambda: not a.stats.connected or not b.stats.connected)
        await restarting
        assert await _until(lambda: len(got) >= 3, timeout=20), (got, a.stats, b.stats)
        await asyncio.sleep(0.5)
        assert [e.waiting for e in got if isinstance(e, QueueChanged)] == [1, 2, 3]
        assert a.stats.errors >= 1 and a.stats.dropped == 0 and a.stats.connected
    finally:
        await a.close()
        await b.close()
        server.stop()


def test_the_broker_admits_the_nodes_user_only_and_only_to_its_streams(
    broker_server: RedisServer,
) -> None:
    """As an attacker on the host would try it: no password, a wrong one, the default user, and
    the nodes' own user asking for anything beyond the cti: streams."""
    port = broker_server.port
    for kwargs in ({}, {"username": USER, "password": "wrong"}, {"password": "wrong"},
                   {"username": "default", "password": ""}):  # fmt: skip
        with pytest.raises(redis_sync.exceptions.RedisError):
            redis_sync.Redis(port=port, socket_timeout=5, **kwargs).ping()  # type: ignore[arg-type]
    r = redis_sync.Redis(port=port, username=USER, password=broker_server.password)
    try:
        assert r.ping()
        for command in (("CONFIG", "GET", "*"), ("FLUSHALL",), ("KEYS", "*"), ("SET", "cti:x", "1"),
                        ("XADD", "other", "*", "m", "x"), ("ACL", "LIST"), ("DEBUG", "SLEEP", "1"),
                        ("SHUTDOWN",), ("MODULE", "LIST"), ("EVAL", "return 1", "0")):  # fmt: skip
            # Refused: NOPERM by the ACL (DEBUG is off altogether).
            with pytest.raises(redis_sync.exceptions.ResponseError):
                r.execute_command(*command)
    finally:
        r.close()
    assert "127.0.0.1" in (Path(broker_server.dir or "") / "redis.conf").read_text()


def test_several_nodes_need_postgresql_and_a_redis_url(tmp_path: Path) -> None:
    """A broker with the embedded SQLite (each node its own file: no shared state, no leases)
    or a URL that is no Redis is refused at start with a clear message."""
    base = {"CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "s" * 20}
    with pytest.raises(ConfigError, match="PostgreSQL"):
        load_settings(None, {**base, "CTI_BROKER_URL": "redis://127.0.0.1:1/0"})
    with pytest.raises(ConfigError, match="redis"):
        load_settings(None, {**base, "CTI_BROKER_URL": "nats://127.0.0.1:4222",
                             "CTI_DATABASE_URL": "postgresql+asyncpg://u@h/d"})  # fmt: skip
    with pytest.raises(ConfigError, match="node_name"):
        load_settings(None, {**base, "CTI_BROKER_URL": "redis://127.0.0.1:1/0",
                             "CTI_DATABASE_URL": "postgresql+asyncpg://u@h/d",
                             "CTI_NODE_NAME": "a b'; drop"})  # fmt: skip
    ok = load_settings(None, {**base, "CTI_BROKER_URL": "redis://cti:pw@127.0.0.1:1/0",
                              "CTI_DATABASE_URL": "postgresql+asyncpg://u@h/d"})  # fmt: skip
    assert ok.masked()["broker_url"] == "redis://***@127.0.0.1:1/0"
    assert load_settings(None, base).broker_url == ""  # one node: embedded, as before


# -- the lease -----------------------------------------------------------------------------------

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from cti.live.lease import Lease

    async def main():
        async def taken():
            print("held", flush=True)
        async def lost():
            pass
        lease = Lease(sys.argv[1], "ami:main", "doomed", taken, lost, interval=0.5)
        await lease.run()

    asyncio.run(main())
    """
)


async def test_one_holder_at_a_time_and_a_takeover_after_kill_9(pg_url: str) -> None:
    """While a node holds the lease nobody else gets it; killed with -9, the next node takes it
    within a few heartbeats (measured and printed), and only one of the waiting nodes does."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, pg_url, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    assert line.strip() == b"held"
    taken: dict[str, float] = {}
    lost: list[str] = []

    def job(name: str) -> tuple[Any, Any]:
        async def on() -> None:
            taken[name] = time.monotonic()

        async def off() -> None:
            lost.append(name)

        return on, off

    waiting = [Lease(pg_url, "ami:main", n, *job(n), interval=0.5) for n in ("b", "c")]
    other = Lease(pg_url, "ami:other", "b", *job("other"), interval=0.5)
    for lease in (*waiting, other):
        lease.start()
    try:
        assert await _until(lambda: "other" in taken), "another Asterisk's lease is separate"
        await asyncio.sleep(2)
        assert not {"b", "c"} & set(taken), "nobody takes a held lease"
        assert (await holders(pg_url))["ami:main"] == "doomed"
        killed = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        assert await _until(lambda: {"b", "c"} & set(taken), timeout=30)
        winner = next(iter({"b", "c"} & set(taken)))
        print(f"lease taken over {taken[winner] - killed:.2f} s after kill -9")
        await asyncio.sleep(2)
        assert len({"b", "c"} & set(taken)) == 1, taken
        assert (await holders(pg_url))["ami:main"] == winner
        # The winner gives it back (a clean stop): the other one takes it.
        await next(w for w in waiting if w.node == winner).close()
        assert await _until(lambda: len({"b", "c"} & set(taken)) == 2, timeout=30)
        assert lost == [winner]
    finally:
        for lease in (*waiting, other):
            await lease.close()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()


# -- three nodes, one killed mid-traffic -----------------------------------------------------------


class NodeProc:
    """One `cti serve` node in its own process."""

    def __init__(self, name: str, env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / "server.log"
        self.env = {**env, "CTI_NODE_NAME": name, "CTI_HTTP_PORT": str(self.port),
                    "CTI_DATA_DIR": str(folder)}  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cti", "-v", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=self.log.open("ab"),
            start_new_session=True,
        )

    async def ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/healthz") as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.2)
        pytest.fail(f"node {self.name} did not come up: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Page:
    """A logged-in browser's WebSocket on one node; messages with the time they came."""

    def __init__(self, username: str, path: str) -> None:
        self.username = username
        self.path = path
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self.connected_to: list[str] = []
        self.connected_at: list[float] = []
        self.errors: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def open(self, nodes: list[NodeProc]) -> None:
        """Connect to the first node; when it goes away, to the next one that answers (as the
        page's reconnect behind a load balancer would)."""
        first = asyncio.Event()
        self._task = asyncio.create_task(self._run(nodes, first))
        try:
            await asyncio.wait_for(first.wait(), 30)
        except TimeoutError:
            pytest.fail(f"{self.username} never connected: {self.errors[-3:]}")

    async def _run(self, nodes: list[NodeProc], first: asyncio.Event) -> None:
        # One cookie jar for every node, as one browser behind one address: the login session
        # is in the shared database, so a reconnect to another node needs no new login.
        jar = aiohttp.CookieJar(unsafe=True)  # cookies from an IP address
        i = 0
        while True:
            node = nodes[i % len(nodes)]
            i += 1
            try:
                async with aiohttp.ClientSession(base_url=node.url, cookie_jar=jar) as http:
                    try:
                        ws = await http.ws_connect(self.path, origin=node.url)
                    except aiohttp.WSServerHandshakeError as exc:
                        if exc.status != 401:
                            raise
                        r = await http.post(
                            "/api/login", json={"username": self.username, "password": PASSWORD}
                        )
                        if r.status != 200:
                            raise aiohttp.ClientError(f"login {r.status}") from None
                        ws = await http.ws_connect(self.path, origin=node.url)
                    async with ws:
                        self.connected_to.append(node.name)
                        self.connected_at.append(time.time())
                        first.set()
                        async for msg in ws:
                            if msg.type == aiohttp.WSMsgType.TEXT:
                                self.messages.append((time.time(), json.loads(msg.data)))
            except (aiohttp.ClientError, OSError) as exc:
                self.errors.append(f"{node.name}: {exc!r}")
            await asyncio.sleep(0.2)

    def of_type(self, kind: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m) for t, m in self.messages if m.get("type") == kind]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def _add_staff(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate(engine, MIGRATIONS)
        async with session_maker(engine).begin() as s:
            for ext in ("1001", "1002", "1003"):
                await upsert_staff(s, {"username": f"agent{ext}", "name": f"坐席{ext}",
                                       "role": "agent", "extension": ext,
                                       "queues": "helpdesk"}, PASSWORD)  # fmt: skip
            await upsert_staff(s, {"username": "lead1", "name": "班长", "role": "lead",
                                   "extension": None, "queues": "helpdesk"}, PASSWORD)  # fmt: skip
    finally:
        await engine.dispose()


async def _me_until(http: aiohttp.ClientSession, done: Any) -> dict[str, Any]:
    """GET /api/agent/me until its agent satisfies `done` (10 s at most)."""
    me: dict[str, Any] = {}
    for _ in range(100):
        me = await (await http.get("/api/agent/me")).json()
        if me.get("agent") and done(me["agent"]):
            return me
        await asyncio.sleep(0.1)
    raise AssertionError(me)


@contextlib.asynccontextmanager
async def ring_watch(
    st: InstanceState,
) -> AsyncIterator[tuple[list[tuple[float, str, str]], dict[tuple[str, str], float]]]:
    """Every ring Asterisk gives an agent (AgentCalled): (time, caller uniqueid, extension); and
    when each ring ended (answered or not), by (caller uniqueid, extension)."""
    client = AmiClient(AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret))
    await client.start()
    await client.wait_connected(30)
    rings: list[tuple[float, str, str]] = []
    ended: dict[tuple[str, str], float] = {}

    async def watch() -> None:
        while True:
            event = await client.events.get()
            if isinstance(event, ev.AgentCalled):
                rings.append((time.time(), event.uniqueid, event.member_name))
            elif isinstance(event, ev.AgentConnect | ev.AgentRingNoAnswer | ev.AgentDump):
                ended.setdefault((event.uniqueid, event.member_name), time.time())

    task = asyncio.create_task(watch())
    try:
        yield rings, ended
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


async def new_holder(url: str, among: tuple[str, ...]) -> str | None:
    """The node of `among` that takes the AMI lease, polled every 50 ms for 30 s (None: none)."""
    for _ in range(600):
        held = (await holders(url)).get(AMI_LEASE)
        if held in among:
            return held
        await asyncio.sleep(0.05)
    return None


async def test_three_nodes_and_the_ami_owner_killed_mid_traffic(
    sim_client: AmiClient,
    sandbox_state: InstanceState,
    tmp_path: Path,
    broker_server: RedisServer,
) -> None:
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0")
    url = db.url_of(tmp_path)
    assert url.startswith("postgresql"), "several nodes share one PostgreSQL database"
    env = {**os.environ, **_env_of(settings), "CTI_BROKER_URL": broker_server.url(),
           "CTI_LEASE_INTERVAL": "0.5", "CTI_AGI_SECRET": settings.agi_secret,
           "CTI_SECRET_KEY": "k" * 43, "CTI_WRAPUP_SECONDS": "1",
           "CTI_AGENT_INTERFACE": settings.agent_interface,
           "CTI_CONFIG_DIR": settings.config_dir, "CTI_AMI_PING_INTERVAL": "1",
           "CTI_AMI_PING_TIMEOUT": "2"}  # fmt: skip
    nodes = [NodeProc(name, env, tmp_path / name) for name in ("a", "b", "c")]
    a, b, c = nodes
    pages: list[Page] = []
    try:
        a.start()
        await a.ready()
        # Ready (database and broker up) comes before the lease's first try has run.
        assert await new_holder(url, ("a",)) == "a"
        b.start()
        c.start()
        await asyncio.gather(b.ready(), c.ready())
        held = await holders(url)
        assert held.get(AMI_LEASE) == "a" and held.get("scheduler") in ("a", "b", "c"), held
        await _add_staff(url)
        # Agents' pages on different nodes (1003's on the owner, to be killed); the wallboard
        # on a node that does not own the link.
        agent_pages = {"1001": Page("agent1001", "/ws/agent"), "1002": Page("agent1002", "/ws/agent"),
                       "1003": Page("agent1003", "/ws/agent")}  # fmt: skip
        await agent_pages["1001"].open([b, c])
        await agent_pages["1002"].open([c, b])
        await agent_pages["1003"].open([a, b, c])
        board = Page("lead1", "/ws/wallboard")
        await board.open([c, b])
        pages = [*agent_pages.values(), board]

        async with ring_watch(sandbox_state) as (rings, ring_ended):
            sim = await run_sim(sim_client, mixed_callers(40, seed=15), rate=2.5)
            run = asyncio.create_task(sim.run(timeout=180))
            await asyncio.sleep(7)
            assert rings, "agents were rung before the kill"
            killed_at = time.time()
            a.kill()
            new_owner = await new_holder(url, ("b", "c"))
            taken_at = time.time()
            assert new_owner, "nobody took the AMI link over"
            # Until the new owner has logged in to Asterisk and resynced.
            owner = b if new_owner == "b" else c
            resynced_at = None
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(base_url=owner.url, cookie_jar=jar) as http:
                await http.post("/api/login", json={"username": "lead1", "password": PASSWORD})
                for _ in range(600):
                    health = await (await http.get("/healthz")).json()
                    if health.get("journal", {}).get("resyncs", 0) >= 1:
                        resynced_at = time.time()
                        break
                    await asyncio.sleep(0.05)
            assert resynced_at, "the new owner never resynced"
            result = await run
            await asyncio.sleep(3)  # the last pops and boards
        print(f"takeover: lease {taken_at - killed_at:.2f} s, AMI resynced "
              f"{resynced_at - killed_at:.2f} s after kill -9 (node {new_owner})")  # fmt: skip

        # No call record lost or doubled, against queue_log.
        handled = [c for c in result.calls if not c.failed]
        assert len(handled) == 40
        records = await journal.wait_finished(tmp_path, f"sim-{sim.run_id}-", 40, timeout=90)
        assert_journal_matches(tmp_path, sandbox_state, sim.run_id, 40, records)

        # Every ring got its pop on the agent's page, whichever node it was on; of the rings that
        # began while no node had the link (kill -> resync), those still ringing when the new
        # owner had resynced (found in its snapshot); a ring begun and ended unseen has none.
        ours = [(t, uid, ext) for t, uid, ext in rings if uid.startswith(f"sim-{sim.run_id}-")]
        # A pop, or the current pop in the hello of a page that (re)connects mid-ring.
        popped = {(m["call"]["uniqueid"], ext) for ext, p in agent_pages.items()
                  for _, m in p.of_type("pop")} | {
                  (m["pop"]["call"]["uniqueid"], ext) for ext, p in agent_pages.items()
                  for _, m in p.of_type("hello") if m.get("pop")}  # fmt: skip
        in_gap = [r for r in ours if killed_at - 1.0 <= r[0] <= resynced_at
                  and ring_ended.get((r[1], r[2]), time.time()) < resynced_at + 0.5]  # fmt: skip
        # 1003's page was on the killed node: a ring over before it had reconnected to another
        # node reached no page of theirs.
        back = agent_pages["1003"].connected_at[1]
        offline = [r for r in ours if r[2] == "1003" and r[0] < back + 0.5
                   and ring_ended.get((r[1], r[2]), time.time()) < back + 0.5]  # fmt: skip
        missing = [r for r in ours
                   if r not in in_gap and r not in offline and (r[1], r[2]) not in popped]  # fmt: skip
        print(f"kill at {killed_at:.2f}, resynced at {resynced_at:.2f}, 1003 back at {back:.2f}; "
              f"rings of 1003 while its page was away {len(offline)}")  # fmt: skip
        print(f"rings {len(ours)}, popped {len(popped)}, rung and over during the takeover "
              f"{len(in_gap)} ({sum((r[1], r[2]) in popped for r in in_gap)} of them popped)")  # fmt: skip
        assert ours and not missing, missing
        assert len([r for r in ours if r[0] > resynced_at]) > 0, "rings after the takeover"
        for ext, page in agent_pages.items():
            print(ext, "connected to", page.connected_to)
        assert agent_pages["1003"].connected_to[:2] == ["a", "b"], "1003 moved to another node"
        # Each page's first message (hello) carries the agent's live state, from the owner of
        # the AMI link whichever node the page is on (1003's second one: after the takeover).
        for ext, page in agent_pages.items():
            hellos = [m for _, m in page.of_type("hello")]
            assert len(hellos) == len(page.connected_to), (ext, hellos)
            assert all(h["agent"] and h["agent"]["ext"] == ext for h in hellos), (ext, hellos)

        # The wallboard on node c kept receiving boards, before and after the takeover.
        boards = [t for t, _ in board.of_type("wallboard")]
        before = [t for t in boards if t < killed_at]
        after = [t for t in boards if t > resynced_at]
        gaps = [y - x for x, y in itertools.pairwise(boards)]
        print(f"wallboard: {len(boards)} boards, {len(before)} before, {len(after)} after the "
              f"takeover; longest gap {max(gaps):.2f} s")  # fmt: skip
        assert len(before) >= 2 and len(after) >= 2, boards
        assert board.connected_to == ["c"], "the wallboard's connection never dropped"
        last = board.of_type("wallboard")[-1][1]
        assert last.get("agents"), "the new owner's boards carry the live agents"
    finally:
        for page in pages:
            await page.close()
        for node in nodes:
            node.stop()


@pytest.mark.slow
async def test_an_im_take_on_another_node_reaches_every_wallboard(
    sim_client: AmiClient,
    sandbox_state: InstanceState,
    tmp_path: Path,
    broker_server: RedisServer,
) -> None:
    """A responder's take link is opened on a node that does not own overflow (a load balancer
    picked it): that node reads the link, the owner takes the call (the first click wins), and
    the take shows on the wallboard of yet another node. A forged link is refused there too."""
    im = await ImReceiver({"hook": "s3cret", "ding": "dsecret"}).start()
    cfg = tmp_path / "config"
    cfg.mkdir()
    shutil.copy(FIXTURES / "config" / "open" / "hours.yaml", cfg / "hours.yaml")
    (cfg / "routing.yaml").write_text(routing_yaml(im, "      im: {min_wait: 1}"))
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0")
    url = db.url_of(tmp_path)
    env = {**os.environ, **_env_of(settings), "CTI_BROKER_URL": broker_server.url(),
           "CTI_LEASE_INTERVAL": "0.5", "CTI_SECRET_KEY": "k" * 43, "CTI_WRAPUP_SECONDS": "1",
           "CTI_AGENT_INTERFACE": settings.agent_interface, "CTI_CONFIG_DIR": str(cfg),
           "CTI_METRICS_SECRET": "m" * 40}  # fmt: skip
    nodes = [NodeProc(name, env, tmp_path / name) for name in ("a", "b", "c")]
    a, b, c = nodes
    board: Page | None = None
    try:
        a.start()
        await a.ready()
        b.start()
        c.start()
        await asyncio.gather(b.ready(), c.ready())
        assert await new_holder(url, ("a",)) == "a"
        await _add_staff(url)
        board = Page("lead1", "/ws/wallboard")
        await board.open([c])
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base_url=b.url, cookie_jar=jar) as lead:
            r = await lead.post("/api/login", json={"username": "lead1", "password": PASSWORD})
            lead.headers["X-CSRF-Token"] = (await r.json())["csrf"]
            now = datetime.now(UTC)
            r = await lead.post("/api/oncall", json={
                "name": "李工", "mobile": "13900000005", "im_handle": "李工",
                "starts_at": (now - timedelta(hours=1)).isoformat(),
                "ends_at": (now + timedelta(hours=1)).isoformat()})  # fmt: skip
            assert r.status == 201, await r.text()
        callers = [CallerSpec(60, 0, "", f"1380000{i:04d}", f"来电{i}") for i in range(6)]
        sim = Simulator(sim_client, SimulationPlan(rate=3, agents=[AgentSpec("1401", (1, 1), (20, 20))],
                                                   callers=callers))  # fmt: skip
        await sim.setup_agents()
        run = asyncio.create_task(sim.run(timeout=150))
        assert await _until(lambda: im.of("call_offer"), timeout=60), im.received
        link = im.of("call_offer")[0].body
        path = "/" + link["take_url"].split("/", 3)[3]
        async with aiohttp.ClientSession(base_url=b.url) as responder:
            page = await responder.get(path)
            assert page.status == 200 and "take-button" in await page.text()
            forged = await responder.post(path[:-3] + "xyz", headers={"Accept": "application/json"})
            assert forged.status == 410
        # The responder double-clicks, on two nodes that do not own overflow and on the owner at
        # once (a load balancer spreads them): one click takes the call, the others see it taken.
        async with aiohttp.ClientSession() as responder:
            clicks = await asyncio.gather(*(
                responder.post(node.url + path, headers={"Accept": "application/json"})
                for node in (b, c, a, b)))  # fmt: skip
            bodies = [await r.json() for r in clicks]
        winners = [body for body in bodies if body["ok"]]
        assert len(winners) == 1 and winners[0]["taken_by"] == "李工", bodies
        assert all(body["state"] == "taken" for body in bodies), bodies
        assert await _until(lambda: board.of_type("taken"), timeout=10), board.messages[-3:]
        assert board.of_type("taken")[0][1]["uniqueid"] == link["uniqueid"]
        await run
        async with aiohttp.ClientSession() as scraper:
            text = await (await scraper.get(f"{b.url}/metrics", headers={
                "Authorization": "Bearer " + "m" * 40})).text()  # fmt: skip
        assert 'cti_lease_held{lease="ami"} 0.0' in text and "cti_broker_up 1.0" in text, text
        # An agent whose page is on a node without the AMI link changes state through the
        # owner; bad input gets the owner's clear error; a stranger gets nothing.
        async with aiohttp.ClientSession(
            base_url=c.url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as agent:
            assert (await agent.post("/api/agent/me/state", json={"state": "ready"})).status == 401
            r = await agent.post("/api/login", json={"username": "agent1001", "password": PASSWORD})
            agent.headers["X-CSRF-Token"] = (await r.json())["csrf"]
            r = await agent.post("/api/agent/me/state", json={"state": "ready"})
            assert r.status == 202, await r.text()
            # The owner's state follows Asterisk's events; this node reads it from the owner.
            await _me_until(agent, lambda a: a["queues"] == ["helpdesk"])
            r = await agent.post("/api/agent/me/state", json={"state": "paused", "reason": ""})
            assert r.status == 400 and "reason" in (await r.json())["message"]
            r = await agent.post("/api/agent/me/state", json={"state": "logged_out"})
            assert r.status == 202
            await _me_until(agent, lambda a: a["queues"] == [])
    finally:
        if board is not None:
            await board.close()
        for node in nodes:
            node.stop()
        await im.stop()


async def test_calls_transfers_and_supervision_asked_of_another_node_reach_the_holder(
    sandbox_state: InstanceState, tmp_path: Path, broker_server: RedisServer
) -> None:
    """Click-to-call, transfers and supervision need the AMI link: a node without it passes
    such a request on to the holder (desk/web/forward.py), which checks it again and carries it
    out; strangers, missing CSRF tokens and a request already passed on are not passed on."""
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0")
    url = db.url_of(tmp_path)
    env = {**os.environ, **_env_of(settings), "CTI_BROKER_URL": broker_server.url(),
           "CTI_LEASE_INTERVAL": "0.5", "CTI_AGI_SECRET": settings.agi_secret,
           "CTI_SECRET_KEY": "k" * 43, "CTI_AGENT_INTERFACE": settings.agent_interface,
           "CTI_CONFIG_DIR": settings.config_dir}  # fmt: skip
    a, b = NodeProc("a", env, tmp_path / "a"), NodeProc("b", env, tmp_path / "b")
    try:
        a.start()
        await a.ready()
        b.start()
        await b.ready()
        assert (await holders(url)).get(AMI_LEASE) == "a"
        await _add_staff(url)
        async with aiohttp.ClientSession(
            base_url=b.url, cookie_jar=aiohttp.CookieJar(unsafe=True)
        ) as http:
            # No session: b answers itself, nothing reaches a.
            r = await http.post("/api/click-to-call", json={"number": "13800138000"})
            assert r.status == 401
            login = await http.post(
                "/api/login", json={"username": "agent1001", "password": PASSWORD}
            )
            csrf = (await login.json())["csrf"]
            # No CSRF token: refused on b.
            r = await http.post("/api/click-to-call", json={"number": "13800138000"})
            assert r.status == 403
            hdr = {"X-CSRF-Token": csrf}
            # Carried out by a: Asterisk rings 1001's phone, a's audit says who asked.
            r = await http.post("/api/click-to-call", json={"number": "13800138000"}, headers=hdr)
            assert r.status == 202, await r.text()
            assert (await r.json())["from"] == "1001"
            # The holder's own checks: not on a call (409), a bad body (400), both a's words.
            r = await http.post(
                "/api/agent/me/transfer", json={"kind": "agent", "to": "1002"}, headers=hdr
            )
            assert r.status == 409 and "not on a call" in (await r.json())["message"]
            r = await http.post("/api/agent/me/transfer/attended", json={"action": "x"},
                                headers=hdr)  # fmt: skip
            assert r.status == 400
            # An agent is not a lead: supervision refused (b's own role check).
            r = await http.post(
                "/api/supervise", json={"agent": "1002", "mode": "listen"}, headers=hdr
            )
            assert r.status == 403
            # A request claiming to be passed on already is not passed on again.
            r = await http.post("/api/click-to-call", json={"number": "13800138000"},
                                headers={**hdr, "X-CTI-Forwarded-By": "x"})  # fmt: skip
            assert r.status == 503
            # Parallel requests: each passed on and answered.
            rs = await asyncio.gather(*(
                http.post("/api/click-to-call", json={"number": "13800138000"}, headers=hdr)
                for _ in range(8)
            ))  # fmt: skip
            assert [x.status for x in rs] == [202] * 8
        audit = db.query(
            tmp_path, "SELECT actor, action FROM audit_log WHERE action = ?", "click_to_call"
        )
        assert audit == [{"actor": "agent1001", "action": "click_to_call"}] * 9
    finally:
        b.stop()
        a.stop()
