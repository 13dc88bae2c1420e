"""CDR reconciliation with several Asterisks: each Asterisk's CDR table is its own (declared with
it), read by its own journal, under its own position, and a CDR of one Asterisk is matched
against that Asterisk's calls only — a Uniqueid may repeat on another Asterisk."""

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cti.ami.client import AmiClient
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState
from cti.simulate import CallerSpec
from desk.web.app import create_app
from tests.conftest import server_settings
from tests.integration.test_cdr_outage import _run, cdr_sandbox
from tests.support import db
from tests.support.staff import logged_in

pytestmark = [pytest.mark.asterisk, pytest.mark.postgresql]

__all__ = ["cdr_sandbox"]  # the fixture, shared with test_cdr_outage


async def test_each_asterisk_reconciles_from_its_own_cdrs(
    cdr_sandbox: tuple[Instance, InstanceState, str, str],
    sim_client: AmiClient,
    sandbox_state: InstanceState,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cti.journal import service

    monkeypatch.setattr(service, "POSITION_LAG", 1.0)  # the sweep's delay, not its logic
    _, east, url, dsn = cdr_sandbox
    declared = {"east": {"site": "上海", "ami_host": east.ami_host, "ami_port": east.ami_port,
                         "ami_user": east.ami_user, "ami_secret": east.ami_secret,
                         "queue_log_path": east.queue_log, "cdr_database_url": url}}  # fmt: skip
    # The default Asterisk ("main") has no CDR table; "east" has its own.
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0",
                               CTI_ASTERISKS=json.dumps(declared, ensure_ascii=False))  # fmt: skip
    async with TestClient(TestServer(create_app(settings))) as http:
        await logged_in(http, "admin")
        for _ in range(150):
            health = await (await http.get("/healthz")).json()
            if all(a["ami"]["connected"] for a in health.get("asterisks", {}).values()):
                break
            await asyncio.sleep(0.2)
        assert health["asterisks"]["east"]["journal"]["cdr"], health["asterisks"]["east"]
        assert not health["asterisks"]["main"]["journal"]["cdr"]
        # A call on main, watched live.
        run = await _run(sim_client, [CallerSpec(30, 0, "", "13800138000", "张三")], agents=True)
        [call] = run.calls
        await db.call(tmp_path, call.uniqueid, timeout=30)
        # East's CDRs name a call with the very same Uniqueid, which east's events never showed:
        # east's sweep records it, under east; main's call is not taken for it.
        con = await asyncpg.connect(dsn)
        await con.execute(
            'INSERT INTO cdr (uniqueid, linkedid, start, answer, "end", src, cti_entry,'
            " cti_did) VALUES ($1, $1, extract(epoch FROM now()) - 9,"
            ' extract(epoch FROM now()) - 9, extract(epoch FROM now()) - 2, $2, $3, $4)',
            call.uniqueid, "13700137000", "inbound", "8000",
        )  # fmt: skip
        await con.close()
        sql = "SELECT * FROM calls WHERE uniqueid = ? ORDER BY asterisk"
        for _ in range(150):
            rows = db.query(tmp_path, sql, call.uniqueid)
            if len(rows) >= 2:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(3)  # more sweeps: still one row each
        rows = db.query(tmp_path, sql, call.uniqueid)
    assert [(r["asterisk"], r["source"]) for r in rows] == [("east", "reconciled"), ("main", "ami")]
    east_row, main_row = rows
    assert east_row["caller_number"] == "13700137000" and east_row["dialled_number"] == "8000"
    assert main_row["caller_number"] == "13800138000"
    meta = {r["key"]: r["value"] for r in db.query(tmp_path, "SELECT * FROM journal_meta")}
    assert "cdr_position:east" in meta and "cdr_position" not in meta, meta
