"""queue_log from PostgreSQL: a real Asterisk 22 writes its realtime queue_log through
res_config_pgsql into a PostgreSQL of the tests' own; the CTI server is given no queue_log file
at all, only that table, and still reconciles the calls it missed while its AMI link was cut."""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cti.ami.client import AmiClient, AmiOptions
from cti.db import create_engine
from cti.queuelog import QueueLogReader, QueueLogTable
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState, free_port
from desk.web.app import create_app
from tests.conftest import QUEUE_TIMEOUT, _idle_queue, server_settings
from tests.integration.test_journal import mixed_callers, run_sim
from tests.support import journal
from tests.support.postgres import PostgresServer
from tests.support.tcpproxy import TcpProxy

pytestmark = [pytest.mark.asterisk, pytest.mark.postgresql]

# The table Asterisk's contrib/realtime schema gives queue_log, with the id we read by.
TABLE = """
CREATE TABLE queue_log (
    id BIGSERIAL PRIMARY KEY,
    time TIMESTAMP WITHOUT TIME ZONE,
    callid VARCHAR(80) NOT NULL DEFAULT '',
    queuename VARCHAR(256) NOT NULL DEFAULT '',
    agent VARCHAR(80) NOT NULL DEFAULT '',
    event VARCHAR(32) NOT NULL DEFAULT '',
    data1 VARCHAR(100) NOT NULL DEFAULT '',
    data2 VARCHAR(100) NOT NULL DEFAULT '',
    data3 VARCHAR(100) NOT NULL DEFAULT '',
    data4 VARCHAR(100) NOT NULL DEFAULT '',
    data5 VARCHAR(100) NOT NULL DEFAULT ''
)
"""


class RealtimeQueueLogInstance(Instance):
    """The sandbox's configuration, plus queue_log into PostgreSQL (and still into its file,
    which the test compares with)."""

    def __init__(self, name: str, port: int, database: str) -> None:
        super().__init__(name)
        self.pg_port, self.pg_database = port, database

    def _render(self, st: InstanceState, globals_: dict[str, str]) -> None:
        super()._render(st, globals_)
        etc = self.dir / "etc"
        (etc / "res_pgsql.conf").write_text(
            f"[general]\ndbhost=127.0.0.1\ndbport={self.pg_port}\ndbname={self.pg_database}\n"
            "dbuser=postgres\nrequirements=warn\n"
        )
        (etc / "extconfig.conf").write_text("[settings]\nqueue_log => pgsql,general,queue_log\n")
        logger = (etc / "logger.conf").read_text()
        (etc / "logger.conf").write_text(logger.replace(
            "[general]\n",
            "[general]\nqueue_adaptive_realtime = yes\nqueue_log_realtime_use_gmt = yes\n", 1))  # fmt: skip
        modules = (etc / "modules.conf").read_text()
        (etc / "modules.conf").write_text(modules.replace("noload => res_config_pgsql.so\n", ""))


@pytest.fixture
def realtime(
    postgres: PostgresServer,
) -> Iterator[tuple[RealtimeQueueLogInstance, InstanceState, str]]:
    """A second Asterisk whose queue_log goes into a fresh database; its SQLAlchemy URL."""
    name = postgres.create_database()

    async def create() -> None:
        con = await asyncpg.connect(postgres.dsn(name))
        await con.execute(TABLE)
        await con.close()

    asyncio.run(create())
    inst = RealtimeQueueLogInstance(f"pgql{os.getpid()}", postgres.port, name)
    inst.purge()
    st = inst.up(ami_port=free_port(), sip_port=free_port(), agi_port=free_port(),
                 globals_={"CTI_QUEUE_TIMEOUT": str(QUEUE_TIMEOUT)})  # fmt: skip
    try:
        yield inst, st, postgres.url(name)
    finally:
        inst.purge()
        postgres.drop_database(name)


async def test_journal_reconciles_from_the_realtime_queue_log_table(
    realtime: tuple[RealtimeQueueLogInstance, InstanceState, str], tmp_path: Path
) -> None:
    inst, st, url = realtime
    shown = inst.cli("module show like res_config_pgsql")
    assert "Running" in shown, shown  # Asterisk really writes through res_config_pgsql
    sim_client = AmiClient(AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret))
    await sim_client.start()
    await sim_client.wait_connected(30)
    await _idle_queue(sim_client)
    proxy = await TcpProxy(st.ami_port).start()
    # No queue_log file for the server: the table only.
    settings = server_settings(st, tmp_path, ami_port=proxy.port, CTI_IVR_ENABLED="0",
                               CTI_QUEUE_LOG_PATH="", CTI_QUEUE_LOG_DATABASE_URL=url)  # fmt: skip
    try:
        async with TestClient(TestServer(create_app(settings))):
            sim = await run_sim(sim_client, mixed_callers(20, seed=11), rate=2.5)
            run = asyncio.create_task(sim.run(timeout=150))
            await asyncio.sleep(3)
            proxy.accepting = False
            proxy.cut()  # blind for a while: calls end that only queue_log (the table) knows
            await asyncio.sleep(8)
            proxy.accepting = True
            result = await run
            handled = [c for c in result.calls if not c.failed]
            assert len(handled) == 20
            prefix = f"sim-{sim.run_id}-"
            records = await journal.wait_finished(tmp_path, prefix, 20, timeout=90)
        assert len(records) == 20 and all(r["ended_at"] for r in records)
        ql = journal.queue_log_calls(st.queue_log, prefix)  # the file, as the referee
        mismatches = journal.compare(records, ql)
        assert not mismatches, "\n".join(map(str, mismatches))
        reconciled = [r for r in records if r["source"] == "reconciled"]
        assert reconciled, "calls that ended during the cut were filled in from the table"

        # The table holds what the file holds, line for line (whole seconds, same fields).
        table = QueueLogTable(create_engine(url))
        rows, _ = await table.read_since(None)
        await table.close()
        lines, _ = QueueLogReader(Path(st.queue_log)).read_since(None)

        def mine(entries: list) -> list[tuple[object, ...]]:  # type: ignore[type-arg]
            return [(e.callid, e.queue, e.agent, e.event, e.data) for e in entries
                    if e.callid.startswith(prefix)]  # fmt: skip

        assert mine(rows) == mine(lines) and mine(rows)
        assert all(abs(r.time - f.time) <= 1 for r, f in zip(
            [e for e in rows if e.callid.startswith(prefix)],
            [e for e in lines if e.callid.startswith(prefix)], strict=True))  # fmt: skip
    finally:
        await proxy.stop()
        await sim_client.close()


async def test_the_table_reader_on_its_own(pg_url: str) -> None:
    """The single-`data` layout, positions, a site moving from the file, and bad settings."""
    from cti.errors import ConfigError
    from cti.queuelog import Position

    con = await asyncpg.connect(pg_url.replace("postgresql+asyncpg://", "postgresql://"))
    await con.execute(
        "CREATE TABLE ql (id BIGSERIAL PRIMARY KEY, time TIMESTAMP, callid TEXT, queuename TEXT,"
        " agent TEXT, event TEXT, data TEXT)"
    )
    await con.execute(
        "INSERT INTO ql (time, callid, queuename, agent, event, data) VALUES"
        " ('2026-11-30 01:00:00.250', 'c1', 'helpdesk', 'NONE', 'ENTERQUEUE', '|13800138000|1'),"
        " ('2026-11-30 01:00:07.900', 'c1', 'helpdesk', 'NONE', 'ABANDON', '1|1|7'),"
        " (NULL, 'c2', 'helpdesk', 'NONE', 'ENTERQUEUE', '')"
    )
    await con.close()
    engine = create_engine(pg_url)
    table = QueueLogTable(engine, "ql")
    try:
        rows, pos = await table.read_since(None)
        assert [(e.time, e.callid, e.event, e.data) for e in rows] == [
            (1796000400, "c1", "ENTERQUEUE", ("", "13800138000", "1")),
            (1796000407, "c1", "ABANDON", ("1", "1", "7")),
        ]
        assert table.malformed == 1 and pos == Position(0, 3)
        assert await table.read_since(pos) == ([], pos)
        assert (await table.read_since(Position(0, 1)))[0][0].event == "ABANDON"
        # A position from the file (inode, offset): from now on, not the whole history.
        assert await table.read_since(Position(1234, 99)) == ([], Position(0, 3))
        with pytest.raises(ConfigError, match="does not exist"):
            await QueueLogTable(engine, "no_such_table").read_since(None)
        with pytest.raises(ConfigError, match="plain table name"):
            QueueLogTable(engine, "ql; DROP TABLE ql")
    finally:
        await engine.dispose()
