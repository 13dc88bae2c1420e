"""Nothing lost in an outage, IVR edition: calls that begin and end inside the IVR while the
server's AMI link is cut appear in no queue_log and are gone from Asterisk when the link comes
back; the journal records them from what the IVR itself saw (its steps, the incident it
opened, the voicemail it kept)."""

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cti.ami.client import AmiClient
from cti.sandbox.instance import InstanceState
from cti.simulate import CallerSpec
from desk.web.app import create_app
from tests.conftest import server_settings
from tests.integration.test_ivr import FIXTURES, simulate
from tests.support import db, journal
from tests.support.staff import logged_in
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.asterisk


async def _ami(http: TestClient, up: bool) -> None:
    """Wait until the server's AMI link is (or is not) up."""
    for _ in range(150):
        health = await (await http.get("/healthz")).json()
        if health["ami"]["connected"] == up:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"AMI link still {'down' if up else 'up'}: {health['ami']}")


async def test_calls_that_end_in_the_ivr_during_an_outage_are_recorded(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    proxy = await TcpProxy(sandbox_state.ami_port).start()
    settings = server_settings(sandbox_state, tmp_path, ami_port=proxy.port,
                               CTI_CONFIG_DIR=str(FIXTURES / "config" / "closed"))  # fmt: skip
    try:
        async with TestClient(TestServer(create_app(settings))) as http:
            await db.import_users(tmp_path, FIXTURES / "users.csv")
            await logged_in(http, "admin")
            await _ami(http, True)
            proxy.accepting = False
            proxy.cut()
            await _ami(http, False)
            voicemail = CallerSpec(90, 0, "", "13800138000", "张三", reactions={
                "after_hours_menu": "1", "voicemail_intro": "wwwwwwwwwwwwwwwwwwww#"})  # fmt: skip
            hangs_up = CallerSpec(5, 0, "", "13900139000", "李四")  # during the hours' prompt
            result = await simulate(sim_client, [voicemail, hangs_up])
            assert all(c.ended_at and not c.failed for c in result.calls), result.calls
            vm_call, short_call = result.calls
            # Nobody saw them: no record yet, no queue_log line.
            assert not journal.rows(tmp_path, vm_call.uniqueid)
            assert not journal.queue_log_calls(sandbox_state.queue_log, vm_call.uniqueid)
            proxy.accepting = True
            await _ami(http, True)
            vm = await db.call(tmp_path, vm_call.uniqueid, timeout=30)
            short = await db.call(tmp_path, short_call.uniqueid, timeout=30)
            health = await (await http.get("/healthz")).json()
    finally:
        await proxy.stop()
    incident = db.incident_of_call(tmp_path, vm_call.uniqueid)
    assert incident is not None and incident["recording"]
    assert vm["outcome"] == "voicemail" and vm["source"] == "reconciled"
    assert vm["incident_number"] == incident["number"]
    assert vm["caller_number"] == "13800138000" and vm["queued_at"] is None
    assert vm["ivr_entered_at"] is not None and vm["ended_at"] >= vm["ivr_entered_at"]
    inferred = vm["inferred"] if isinstance(vm["inferred"], list) else json.loads(vm["inferred"])
    assert {"arrived_at", "ended_at", "incident_number", "voicemail"} <= set(inferred)
    assert short["outcome"] == "ended_in_ivr" and short["source"] == "reconciled"
    assert short["caller_number"] == "13900139000" and short["incident_number"] is None
    assert health["journal"]["reconciled_calls"] >= 2
    # Exactly one record each.
    assert len(journal.rows(tmp_path, vm_call.uniqueid)) == 1
