"""GET /api/agent/me/softphone as an attacker would try it: no session, an agent with a desk
phone, a lead, another agent's extension in the query, a session that logged out, many agents at
once. Each opted-in agent gets their own password and nobody else's; every fetch is audited."""

import asyncio
from pathlib import Path

from sqlalchemy import select

from cti import softphone
from desk.models import AuditEntry
from desk.web.keys import SESSIONS
from tests.support.staff import PASSWORD, add_staff
from tests.support.web import desk_server, from_address

KEY = "k" * 40
URL = "wss://pbx.example.test:8089/ws"
SOFT = {"CTI_SOFTPHONE_EXTENSIONS": "1003,1004,1005,1006,1007,1008",
        "CTI_SOFTPHONE_URL": URL, "CTI_SOFTPHONE_KEY": KEY}  # fmt: skip
ROUTE = "/api/agent/me/softphone"


async def _login(browser: object, username: str) -> None:
    r = await browser.post("/api/login", json={"username": username, "password": PASSWORD})  # type: ignore[attr-defined]
    assert r.status == 200
    browser.headers["X-CSRF-Token"] = (await r.json())["csrf"]  # type: ignore[attr-defined]


async def test_only_the_logged_in_agent_gets_their_own_softphone_password(tmp_path: Path) -> None:
    async with desk_server(tmp_path, **SOFT) as server:
        await add_staff(server.app, "soft3", "agent", "1003", name="赵静")
        await add_staff(server.app, "soft4", "agent", "1004")
        await add_staff(server.app, "desk1", "agent", "1001")  # a desk phone: not opted in
        await add_staff(server.app, "lead1", "lead")  # no extension at all
        async with from_address(server, "127.0.0.2") as stranger:
            r = await stranger.get(ROUTE)
            assert r.status == 401
            assert "password" not in await r.text()
        async with from_address(server, "127.0.0.3") as b:
            await _login(b, "soft3")
            # Naming another agent in the query changes nothing: the session says who asks.
            r = await b.get(ROUTE, params={"ext": "1004", "username": "soft4"})
            assert r.status == 200
            assert r.headers["Cache-Control"] == "no-store"
            body = await r.json()
            assert body == {"ws_url": URL, "uri": "sip:1003@pbx.example.test", "username": "1003",
                            "password": softphone.password(KEY, "1003"),
                            "display_name": "赵静"}  # fmt: skip
            assert body["password"] != softphone.password(KEY, "1004")
            assert (await b.post(ROUTE)).status == 405
            # The agent page carries the softphone for this agent only.
            page = await (await b.get("/agent")).text()
            assert 'id="softphone"' in page and "/static/softphone.js" in page
            await b.post("/logout", allow_redirects=False)
            assert (await b.get(ROUTE)).status == 401
        async with from_address(server, "127.0.0.4") as b:
            await _login(b, "desk1")
            r = await b.get(ROUTE)
            assert r.status == 404 and "password" not in await r.text()
            page = await (await b.get("/agent")).text()
            assert 'id="softphone"' not in page and "softphone.js" not in page
        async with from_address(server, "127.0.0.5") as b:
            await _login(b, "lead1")
            r = await b.get(ROUTE)
            assert r.status == 404 and "password" not in await r.text()
        async with server.app[SESSIONS]() as s:
            rows = (await s.scalars(select(AuditEntry).where(
                AuditEntry.action == "softphone.credentials"))).all()  # fmt: skip
        assert [(a.actor, a.target) for a in rows] == [("soft3", "1003")]


async def test_many_agents_at_once_each_get_their_own(tmp_path: Path) -> None:
    exts = ["1003", "1004", "1005", "1006", "1007", "1008"]
    async with desk_server(tmp_path, **SOFT) as server:
        for ext in exts:
            await add_staff(server.app, f"a{ext}", "agent", ext)
        browsers = [from_address(server, f"127.0.1.{i + 1}") for i in range(len(exts))]
        try:
            for b, ext in zip(browsers, exts, strict=True):
                await _login(b, f"a{ext}")

            async def fetch(b: object) -> dict[str, str]:
                r = await b.get(ROUTE)  # type: ignore[attr-defined]
                assert r.status == 200
                got: dict[str, str] = await r.json()
                return got

            got = await asyncio.gather(*(fetch(b) for b in browsers for _ in range(5)))
        finally:
            for b in browsers:
                await b.close()
        for i, body in enumerate(got):
            ext = exts[i // 5]
            assert body["username"] == ext
            assert body["password"] == softphone.password(KEY, ext)
        assert len({b["password"] for b in got}) == len(exts)


async def test_no_agent_is_opted_in_unless_configured(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server:
        await add_staff(server.app, "soft3", "agent", "1003")
        async with from_address(server, "127.0.0.2") as b:
            await _login(b, "soft3")
            assert (await b.get(ROUTE)).status == 404
