"""POST /api/agent/me/transfer against people who may not transfer and targets that are not
targets: each gets a clear 4xx and nothing reaches Asterisk or the audit log. (A real transfer
between two baresip phones is in tests/sip/test_transfer.py.)"""

import asyncio
from pathlib import Path

from tests.support import db
from tests.support.staff import add_staff, login
from tests.support.web import desk_server, from_address


async def test_transfer_refuses_strangers_and_hostile_targets(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server:
        await add_staff(server.app, "agent1", "agent", "1001")
        await add_staff(server.app, "agent2", "agent", "1002")
        await add_staff(server.app, "nophone", "agent", None)
        async with (
            from_address(server, "127.0.0.2") as nobody,
            from_address(server, "127.0.0.3") as agent,
            from_address(server, "127.0.0.4") as nophone,
        ):
            good = {"kind": "agent", "to": "1002"}
            assert (await nobody.post("/api/agent/me/transfer", json=good)).status == 401
            await login(nophone, "nophone")
            r = await nophone.post("/api/agent/me/transfer", json=good)
            assert r.status == 400 and "extension" in (await r.json())["message"]
            await login(agent, "agent1")
            for body, field in (
                ({"kind": "fax", "to": "1002"}, "kind"),
                ({"kind": ["agent"], "to": "1002"}, "kind"),
                ({"kind": "agent"}, "to"),
                ({"kind": "agent", "to": "1001"}, "own phone"),
                ({"kind": "agent", "to": "7777"}, "nobody"),
                ({"kind": "agent", "to": "1002,1"}, "to"),
                ({"kind": "agent", "to": "PJSIP/1002"}, "to"),
                ({"kind": "queue", "to": "../../etc"}, "to"),
                ({"kind": "queue", "to": "a" * 81}, "to"),
                ({"kind": "outside", "to": "abc"}, "to"),
                ({"kind": "outside", "to": "1002"}, "outside"),
                ({"kind": "outside", "to": "139\r\n0000"}, "to"),
                ({"kind": "queue", "to": "helpdesk", "mode": "attended"}, "colleague"),
                ({"kind": "outside", "to": "13912345678", "mode": "attended"}, "colleague"),
                ({"kind": "agent", "to": "1002", "mode": "sideways"}, "mode"),
            ):
                r = await agent.post("/api/agent/me/transfer", json=body)
                assert r.status == 400, (body, r.status, await r.text())
                assert field in (await r.json())["message"], (body, await r.text())
            answers = await asyncio.gather(
                *(agent.post("/api/agent/me/transfer", json=good) for _ in range(15)),
                *(agent.post("/api/agent/me/transfer", json={"kind": "x"}) for _ in range(15)),
            )
            assert sorted({a.status for a in answers}) == [400, 503]
            del agent.headers["X-CSRF-Token"]
            assert (await agent.post("/api/agent/me/transfer", json=good)).status == 403
        assert db.query(tmp_path, "SELECT * FROM audit_log WHERE action = 'transfer'") == []


async def test_finishing_an_attended_transfer_refuses_strangers_and_nonsense(
    tmp_path: Path,
) -> None:
    """POST /api/agent/me/transfer/attended (complete or cancel my consultation): no session,
    no phone, an unknown action, no CSRF token, many at once: a clear 4xx or 503 (no link to
    Asterisk here), nothing audited. (The real consultation is in tests/sip/test_transfer.py.)"""
    url = "/api/agent/me/transfer/attended"
    async with desk_server(tmp_path) as server:
        await add_staff(server.app, "agent1", "agent", "1001")
        await add_staff(server.app, "nophone", "agent", None)
        async with (
            from_address(server, "127.0.0.2") as nobody,
            from_address(server, "127.0.0.3") as agent,
            from_address(server, "127.0.0.4") as nophone,
        ):
            good = {"action": "complete"}
            assert (await nobody.post(url, json=good)).status == 401
            await login(nophone, "nophone")
            r = await nophone.post(url, json=good)
            assert r.status == 400 and "extension" in (await r.json())["message"]
            await login(agent, "agent1")
            for body in ({}, {"action": "finish"}, {"action": ["complete"]}, {"action": None},
                         {"action": "complete\r\nAction: Originate"}, {"action": "x" * 5000}):  # fmt: skip
                r = await agent.post(url, json=body)
                assert r.status == 400, (body, r.status, await r.text())
            r = await agent.post(
                url, data=b"\xff\xfe{", headers={"Content-Type": "application/json"}
            )
            assert r.status == 400
            answers = await asyncio.gather(
                *(agent.post(url, json=good) for _ in range(10)),
                *(agent.post(url, json={"action": "cancel"}) for _ in range(10)),
                *(agent.post(url, json={"action": "?"}) for _ in range(10)),
            )
            assert sorted({a.status for a in answers}) == [400, 503]
            del agent.headers["X-CSRF-Token"]
            assert (await agent.post(url, json=good)).status == 403
        assert db.query(tmp_path, "SELECT * FROM audit_log WHERE action LIKE 'transfer%'") == []
