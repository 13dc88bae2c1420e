"""POST /api/supervise against people who should not use it and input that is not an agent or
a mode: each gets a clear 4xx, nothing reaches Asterisk, and nothing is audited. (The real
thing, a lead's phone listening in on a baresip agent, is in tests/sip.)"""

import asyncio
from pathlib import Path

from tests.support import db
from tests.support.staff import add_staff, login
from tests.support.web import desk_server, from_address


async def test_only_a_lead_with_a_phone_may_supervise_and_bad_input_is_refused(
    tmp_path: Path,
) -> None:
    async with desk_server(tmp_path) as server:
        await add_staff(server.app, "agent1", "agent", "1001")
        await add_staff(server.app, "lead1", "lead", "1002")
        await add_staff(server.app, "lead_nophone", "lead", None)
        async with (
            from_address(server, "127.0.0.2") as nobody,
            from_address(server, "127.0.0.3") as agent,
            from_address(server, "127.0.0.4") as lead,
            from_address(server, "127.0.0.5") as lead_nophone,
        ):
            good = {"agent": "1001", "mode": "listen"}
            r = await nobody.post("/api/supervise", json=good)
            assert r.status == 401
            await login(agent, "agent1")
            r = await agent.post("/api/supervise", json=good)
            assert r.status == 403
            await login(lead_nophone, "lead_nophone")
            r = await lead_nophone.post("/api/supervise", json=good)
            assert r.status == 400 and "extension" in (await r.json())["message"]
            await login(lead, "lead1")
            for body, field in (
                ({"agent": "1001", "mode": "eavesdrop"}, "mode"),
                ({"agent": "1001"}, "mode"),
                ({"agent": "1001", "mode": ["listen"]}, "mode"),
                ({"agent": "1001,qB", "mode": "listen"}, "agent"),
                ({"agent": "PJSIP/1001", "mode": "listen"}, "agent"),
                ({"agent": "1" * 500, "mode": "listen"}, "agent"),
                ({"agent": "", "mode": "listen"}, "agent"),
                ({"agent": 1001, "mode": "listen"}, "agent"),
                ({"agent": "1002", "mode": "listen"}, "own phone"),
            ):
                r = await lead.post("/api/supervise", json=body)
                assert r.status == 400, (body, r.status, await r.text())
                assert field in (await r.json())["message"], (body, await r.text())
            r = await lead.post("/api/supervise", data=b"\xff{not json")
            assert r.status == 400
            # Many at once: no 500, and with no link to Asterisk a valid request says so.
            answers = await asyncio.gather(
                *(lead.post("/api/supervise", json=good) for _ in range(20)),
                *(lead.post("/api/supervise", json={"agent": "x", "mode": "?"}) for _ in range(20)),
            )
            assert sorted({a.status for a in answers}) == [400, 503]
            # Without CSRF token (a forged cross-site form): refused.
            del lead.headers["X-CSRF-Token"]
            r = await lead.post("/api/supervise", json=good)
            assert r.status == 403
        assert db.query(tmp_path, "SELECT * FROM audit_log WHERE action = 'supervise'") == []
