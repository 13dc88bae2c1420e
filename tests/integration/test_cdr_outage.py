"""Nothing lost in any outage, CDR edition: a real Asterisk 22 writes its CDRs through cdr_pgsql
into a PostgreSQL of the tests' own. The CTI server's AMI link is cut, calls run through its IVR
unseen; then the CTI server itself stops (its FastAGI unreachable: the dialplan sends callers
straight to the queue, and a caller the empty queue turns away is in no queue_log and in no IVR
step, only in the CDRs). When the server comes back, every call Asterisk handled has exactly one
journal row, checked against the CDR table."""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cti.ami.client import AmiClient, AmiOptions
from cti.cdr import TABLE_SQL
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState, free_port
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, SimulationResult, Simulator
from desk.web.app import create_app
from tests.conftest import QUEUE_TIMEOUT, _idle_queue, server_settings
from tests.integration.test_ivr import FIXTURES
from tests.support import db, journal
from tests.support.postgres import PostgresServer
from tests.support.staff import logged_in
from tests.support.tcpproxy import TcpProxy

pytestmark = [pytest.mark.asterisk, pytest.mark.postgresql]

AGENTS = [AgentSpec("1001", (1, 1), (2, 3))]


@pytest.fixture
def cdr_sandbox(postgres: PostgresServer) -> Iterator[tuple[Instance, InstanceState, str, str]]:
    """An Asterisk of its own writing CDRs into a fresh database: the instance, its state, the
    database's SQLAlchemy URL and its libpq DSN."""
    name = postgres.create_database()

    async def create() -> None:
        con = await asyncpg.connect(postgres.dsn(name))
        await con.execute(TABLE_SQL.format(table="cdr"))
        await con.close()

    asyncio.run(create())
    inst = Instance(f"cdr{os.getpid()}")
    inst.purge()
    st = inst.up(ami_port=free_port(), sip_port=free_port(), agi_port=free_port(),
                 globals_={"CTI_QUEUE_TIMEOUT": str(QUEUE_TIMEOUT)}, prompts="short",
                 cdr_database=f"postgresql://postgres@127.0.0.1:{postgres.port}/{name}")  # fmt: skip
    try:
        yield inst, st, postgres.url(name), postgres.dsn(name)
    finally:
        inst.purge()
        postgres.drop_database(name)


async def _cdr_rows(dsn: str, prefix: str) -> list[dict[str, Any]]:
    con = await asyncpg.connect(dsn)
    try:
        rows = await con.fetch("SELECT * FROM cdr WHERE linkedid LIKE $1 ORDER BY id", prefix + "%")
    finally:
        await con.close()
    return [dict(r) for r in rows]


async def _ami(http: TestClient, up: bool) -> None:
    for _ in range(150):
        health = await (await http.get("/healthz")).json()
        if health["ami"]["connected"] == up:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"AMI link still {'down' if up else 'up'}: {health['ami']}")


async def _run(client: AmiClient, callers: list[CallerSpec], agents: bool) -> SimulationResult:
    sim = Simulator(client, SimulationPlan(rate=2, agents=AGENTS if agents else [],
                                           callers=callers))  # fmt: skip
    if agents:
        await sim.setup_agents()
    else:
        await sim.remove_agents([a.ext for a in AGENTS])
    result = await sim.run(timeout=180)
    assert all(c.ended_at and not c.failed for c in result.calls), result.calls
    return result


async def test_every_call_asterisk_handled_has_one_row_after_ami_and_cti_outages(
    cdr_sandbox: tuple[Instance, InstanceState, str, str], tmp_path: Path
) -> None:
    inst, st, url, dsn = cdr_sandbox
    assert "Running" in inst.cli("module show like cdr_pgsql")  # Asterisk really writes CDRs
    sim_client = AmiClient(AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret))
    await sim_client.start()
    await sim_client.wait_connected(30)
    await _idle_queue(sim_client)
    proxy = await TcpProxy(st.ami_port).start()
    settings = server_settings(st, tmp_path, ami_port=proxy.port, CTI_CDR_DATABASE_URL=url,
                               CTI_CONFIG_DIR=str(FIXTURES / "config" / "open"))  # fmt: skip
    to_agent = {"main_menu": "0"}
    try:
        async with TestClient(TestServer(create_app(settings))) as http:
            await db.import_users(tmp_path, FIXTURES / "users.csv")
            await logged_in(http, "admin")
            await _ami(http, True)
            # Watched live: one call through the IVR to an agent.
            seen = await _run(sim_client, [CallerSpec(40, 0, "", "13700137000", "王五",
                                                      reactions=to_agent)], agents=True)  # fmt: skip
            # Its end seen by the server too (the simulator's own AMI client may hear the
            # hang-up first; under load the server's events lagged and the cut below made the
            # call a reconciled one).
            ended = await journal.wait_finished(tmp_path, f"sim-{seen.run_id}-", 1)
            assert [r for r in ended if r["ended_at"]], ended
            proxy.accepting = False
            proxy.cut()
            await _ami(http, False)
            # AMI cut, the IVR still up: a caller to an agent, one who hangs up in the menu.
            blind = await _run(sim_client, [
                CallerSpec(40, 0, "", "13800138000", "张三", reactions=to_agent),
                CallerSpec(4, 0, "", "13900139000", "李四"),
            ], agents=True)  # fmt: skip
        # The CTI server stopped too: its FastAGI refuses, the dialplan queues callers at once.
        down = await _run(sim_client, [CallerSpec(40, 0, "", "13600136000", "赵六"),
                                       CallerSpec(2, 0, "", "13500135000", "")], agents=True)  # fmt: skip
        # ... and with nobody logged in, the queue turns callers away (JOINEMPTY).
        away = await _run(sim_client, [CallerSpec(30, 0, "", "13300133000", "Alice Chen"),
                                       CallerSpec(30, 0, "", "13300133001", "")], agents=False)  # fmt: skip
        assert not journal.rows(tmp_path, f"sim-{down.run_id}-")

        proxy.accepting = True
        async with TestClient(TestServer(create_app(settings))) as http:
            await logged_in(http, "admin")
            await _ami(http, True)
            runs = {"seen": seen, "blind": blind, "down": down, "away": away}
            records = {}
            for key, run in runs.items():
                found = await journal.wait_finished(tmp_path, f"sim-{run.run_id}-",
                                                    len(run.calls), timeout=60)  # fmt: skip
                records[key] = {r["uniqueid"]: r for r in found}
            health = await (await http.get("/healthz")).json()
    finally:
        await proxy.stop()
        await sim_client.close()

    # Against the CDR table: every call Asterisk handled (its marked channel) has exactly one
    # row, under the call's Uniqueid = Linkedid; no other leg (the caller's half, the agent's
    # phone) became a call.
    for key, run in runs.items():
        cdrs = await _cdr_rows(dsn, f"sim-{run.run_id}-")
        calls = {r["uniqueid"] for r in cdrs if r["cti_entry"] == "inbound"}
        assert calls == {c.uniqueid for c in run.calls}, (key, cdrs)
        assert len(cdrs) > len(calls)  # other legs are in the CDRs too, and must not count
        rows = journal.rows(tmp_path, f"sim-{run.run_id}-")
        assert sorted(r["uniqueid"] for r in rows) == sorted(calls), (key, rows)
        for r in rows:
            assert r["linkedid"] == r["uniqueid"] and r["ended_at"] is not None
            end = max(c["end"] for c in cdrs if c["uniqueid"] == r["uniqueid"])
            assert abs(_ts(r["ended_at"]) - end) < 1.0, (key, r, end)
        ql = journal.queue_log_calls(st.queue_log, f"sim-{run.run_id}-")
        mismatches = journal.compare([r for r in rows if r["uniqueid"] in ql], ql)
        assert not mismatches, "\n".join(map(str, mismatches))

    [live] = records["seen"].values()
    assert live["source"] == "ami" and live["outcome"] == "answered"
    to_agent_call, hung_up = (records["blind"][c.uniqueid] for c in blind.calls)
    assert to_agent_call["source"] == "reconciled" and to_agent_call["outcome"] == "answered"
    assert to_agent_call["ivr_entered_at"] is not None  # the IVR's steps merged in
    assert hung_up["outcome"] == "ended_in_ivr" and hung_up["caller_number"] == "13900139000"
    assert hung_up["dialled_number"] and hung_up["ivr_entered_at"] is not None

    # With the CTI server down the dialplan's fallback queued the callers at once, without an
    # IVR: queue_log has them, the IVR has no step of them.
    ql_down = journal.queue_log_calls(st.queue_log, f"sim-{down.run_id}-")
    assert set(ql_down) == {c.uniqueid for c in down.calls}
    for c in down.calls:
        r = records["down"][c.uniqueid]
        assert r["ivr_entered_at"] is None and r["incident_number"] is None
        assert _ts(r["queued_at"]) - _ts(r["arrived_at"]) < 3.0
        assert not db.query(tmp_path, "SELECT * FROM ivr_steps WHERE call_uniqueid = ?",
                            c.uniqueid)  # fmt: skip
    assert {r["outcome"] for r in records["down"].values()} == {"answered", "abandoned"}

    # Turned away by the empty queue: in no queue_log, in no IVR step; only the CDR knew them.
    assert not journal.queue_log_calls(st.queue_log, f"sim-{away.run_id}-")
    for c in away.calls:
        r = records["away"][c.uniqueid]
        assert r["source"] == "reconciled" and r["outcome"] == "left_empty"
        assert r["queue_status"] == "JOINEMPTY" and r["caller_number"] == c.caller.number
        assert r["dialled_number"] == "8000"  # the number they dialled, from the CDR
    assert health["journal"]["cdr"] and "cdr" in health["journal"]["cdr"]
    assert health["journal"]["reconciled_calls"] >= len(blind.calls) + len(down.calls) + 2


def _ts(value: Any) -> float:
    """A journal time (datetime from PostgreSQL or SQLite's text) as Unix seconds."""
    from datetime import UTC, datetime

    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


async def test_the_cdr_reader_on_its_own(pg_url: str) -> None:
    """Positions, a site's timestamp columns, rows no report can use, hostile text, and a
    table that is not what the README asks for."""
    from cti.cdr import CdrTable
    from cti.db import create_engine
    from cti.errors import ConfigError

    con = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    await con.execute(TABLE_SQL.format(table="cdr"))
    # A site that keeps Asterisk's timestamp columns (cdr_pgsql.conf timezone = UTC).
    await con.execute(
        TABLE_SQL.format(table="cdr_ts")
        .replace("start DOUBLE PRECISION", "start TIMESTAMP")
        .replace("answer DOUBLE PRECISION", "answer TIMESTAMP")
        .replace('"end" DOUBLE PRECISION', '"end" TIMESTAMP')
    )
    await con.execute("CREATE TABLE cdr_old (id BIGSERIAL, calldate TIMESTAMP, uniqueid TEXT)")
    rows = [
        ("c1", "c1", 1800000000.5, 1800000000.6, 1800000030.25, "inbound", '"张三" <138>'),
        ("c1-c", "c1", 1800000000.5, 0.0, 1800000030.3, "", ""),
        ("c2", "c2", None, None, 1800000040.0, "inbound", ""),  # no start: skipped
        ("c3", "c3", 1800000050.0, 0.0, 1e300, "inbound", ""),  # an end past 9999: skipped
        ("c4'; DROP TABLE cdr; --", "c4", 1800000060.0, 0.0, 1800000061.0, "inbound",
         '"\x00\u2028<script>" <1>'.replace("\x00", "")),
    ]  # fmt: skip
    await con.executemany(
        'INSERT INTO cdr (uniqueid, linkedid, start, answer, "end", cti_entry, clid)'
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        rows,
    )
    await con.execute(
        'INSERT INTO cdr_ts (uniqueid, linkedid, start, answer, "end", cti_entry, src) VALUES'
        " ('t1', 't1', '2027-01-15 08:00:00', NULL, '2027-01-15 08:00:09', 'inbound', '10086')"
    )
    await con.close()
    engine = create_engine(pg_url)
    try:
        table = CdrTable(engine)
        assert await table.end() == 5
        records, pos = await table.read_since(0)
        assert pos == 5 and table.malformed == 2
        assert [r.uniqueid for r in records] == ["c1", "c1-c", "c4'; DROP TABLE cdr; --"]
        assert records[0].start == 1800000000.5 and records[1].answer is None
        assert records[0].end == 1800000030.25 and records[0].clid == '"张三" <138>'
        assert await table.read_since(pos) == ([], 5)
        assert [r.id for r in (await table.read_since(3))[0]] == [5]
        ts = CdrTable(engine, "cdr_ts")
        [t1], _ = await ts.read_since(0)
        assert (t1.start, t1.end, t1.answer, t1.src) == (1800000000.0, 1800000009.0, None, "10086")
        with pytest.raises(ConfigError, match="lacks the columns"):
            await CdrTable(engine, "cdr_old").end()
        with pytest.raises(ConfigError, match="does not exist"):
            await CdrTable(engine, "no_such_table").read_since(0)
        with pytest.raises(ConfigError, match="plain table name"):
            CdrTable(engine, "cdr; DROP TABLE cdr")
    finally:
        await engine.dispose()


async def test_the_sweep_records_what_the_events_missed_and_nothing_twice(
    cdr_sandbox: tuple[Instance, InstanceState, str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """While connected, calls watched live get no second row from their CDRs; a call whose CDR
    is there but whose events never came (written into the table here, as Asterisk would) gets
    one."""
    from cti.journal import service

    monkeypatch.setattr(service, "POSITION_LAG", 1.0)  # the sweep's delay, not its logic
    _, st, url, dsn = cdr_sandbox
    sim_client = AmiClient(AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret))
    await sim_client.start()
    await sim_client.wait_connected(30)
    await _idle_queue(sim_client)
    settings = server_settings(st, tmp_path, CTI_CDR_DATABASE_URL=url, CTI_IVR_ENABLED="0")
    try:
        async with TestClient(TestServer(create_app(settings))) as http:
            await logged_in(http, "admin")
            await _ami(http, True)
            run = await _run(sim_client, [CallerSpec(30, 0, "", "13800138000", "张三"),
                                          CallerSpec(2, 0, "", "13900139000", "")], agents=True)  # fmt: skip
            missed = f"sim-{run.run_id}-missed"
            con = await asyncpg.connect(dsn)
            await con.execute(
                'INSERT INTO cdr (uniqueid, linkedid, start, answer, "end", src, cti_entry,'
                " cti_did) VALUES ($1, $1, extract(epoch FROM now()) - 9,"
                ' extract(epoch FROM now()) - 9, extract(epoch FROM now()) - 2, $2, $3, $4)',
                missed, "13700137000", "inbound", "8000",
            )  # fmt: skip
            await con.close()
            row = await db.call(tmp_path, missed, timeout=30)
            await asyncio.sleep(3)  # more sweeps: still one row each
            rows = journal.rows(tmp_path, f"sim-{run.run_id}-")
    finally:
        await sim_client.close()
    assert row["source"] == "reconciled" and row["caller_number"] == "13700137000"
    assert row["outcome"] == "ended_in_ivr" and row["dialled_number"] == "8000"
    cdrs = await _cdr_rows(dsn, f"sim-{run.run_id}-")
    marked = sorted({r["uniqueid"] for r in cdrs if r["cti_entry"]})  # an answered call: 2 CDRs
    assert sorted(r["uniqueid"] for r in rows) == marked and len(marked) == 3
    watched = [r for r in rows if r["uniqueid"] != missed]
    assert [r["source"] for r in watched] == ["ami", "ami"]
    meta = db.query(tmp_path, "SELECT value FROM journal_meta WHERE key = ?", "cdr_position")
    assert int(meta[0]["value"]) == max(r["id"] for r in cdrs)
