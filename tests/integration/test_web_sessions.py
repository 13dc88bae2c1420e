"""Sessions and what they open, as an attacker would try them against the running server: the
session cookie behind a TLS proxy, the signing key, a password change, the redirect after the
login, WebSockets from other sites and after logout, and what /healthz tells strangers."""

import asyncio
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, update

from cti.errors import ConfigError
from cti.sandbox.instance import free_port
from desk.models import Staff, WebSession
from desk.staff import upsert_staff
from desk.web.app import create_app
from desk.web.keys import HUB, SESSIONS
from tests.support.staff import PASSWORD, add_staff, login
from tests.support.web import desk_env, desk_server, desk_settings, from_address


async def test_session_cookie_is_secure_when_people_come_over_https(tmp_path: Path) -> None:
    """Behind a TLS proxy the server sees plain HTTP; an https:// public URL is enough to make the
    cookies Secure (no separate setting to forget)."""
    async with desk_server(tmp_path, CTI_PUBLIC_URL="https://desk.example.test") as server:
        await add_staff(server.app, "zhangwei", "agent", "1001")
        async with from_address(server, "127.0.0.2") as browser:
            r = await browser.post(
                "/api/login", json={"username": "zhangwei", "password": PASSWORD}
            )
            assert r.status == 200
            assert "Secure" in r.headers["Set-Cookie"], r.headers["Set-Cookie"]
            r = await browser.post("/login", data={"username": "zhangwei", "password": PASSWORD},
                                   allow_redirects=False)  # fmt: skip
            assert "Secure" in r.headers["Set-Cookie"]
            r = await browser.get("/portal")
            assert "Secure" in r.headers["Set-Cookie"]


async def test_server_refuses_to_start_with_an_empty_signing_key(tmp_path: Path) -> None:
    """An empty secret.key (a full disk at first start, a careless copy) would sign take links
    with an empty key, which anyone can forge: `cti serve` stops with a message instead."""
    (tmp_path / "secret.key").write_text("\n")
    env = {**os.environ, **desk_env(tmp_path, CTI_AMI_PORT=str(free_port()),
           CTI_AGI_PORT=str(free_port()), CTI_HTTP_PORT=str(free_port()),
           CTI_MEDIA_DIR=str(tmp_path / "media"), CTI_REPORT_SCHEDULE="0")}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti", "serve", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail("cti serve started with an empty secret.key")
    assert proc.returncode != 0 and "secret.key" in err.decode(), err.decode()
    # A short key given by hand is refused the same way; a good one starts.
    short = desk_settings(tmp_path, CTI_SECRET_KEY="too short")
    with pytest.raises(ConfigError, match="secret_key"):
        create_app(short)
    (tmp_path / "secret.key").unlink()
    made = desk_settings(tmp_path).effective_secret_key()
    assert len(made) >= 32 and (tmp_path / "secret.key").stat().st_mode & 0o077 == 0


async def test_a_password_change_ends_the_old_sessions(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as thief:
        await add_staff(server.app, "zhangwei", "lead", "1001")
        await login(thief, "zhangwei")  # a session someone else got hold of
        assert (await thief.get("/api/agent/me")).status == 200
        # The same password again (a role change, say) keeps sessions...
        env = {**os.environ, **desk_env(tmp_path)}
        for password, expected in ((PASSWORD, 200), ("a brand new password", 401)):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "cti", "staff", "add", "zhangwei", "--role", "lead",
                "--extension", "1001", "--password-stdin", env=env,
                stdin=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            _, err = await proc.communicate(f"{password}\n".encode())
            assert proc.returncode == 0, err.decode()
            # ...a new one ends them.
            assert (await thief.get("/api/agent/me")).status == expected


@pytest.mark.parametrize(
    "target",
    ["/\t/evil.example/", "//evil.example/", "/\\evil.example", "\\\\evil.example",
     "https://evil.example/", "/\n/evil.example", " //evil.example", "/\x00/evil.example",
     "javascript:alert(1)"],
)  # fmt: skip
async def test_login_never_redirects_to_another_site(tmp_path: Path, target: str) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as browser:
        await add_staff(server.app, "zhangwei", "agent", "1001")
        r = await browser.post(
            "/login",
            data={"username": "zhangwei", "password": PASSWORD, "next": target},
            allow_redirects=False,
        )
        assert r.status == 302
        where = r.headers["Location"]
        # What a browser makes of it: tabs and newlines dropped, backslashes read as slashes.
        seen = where.replace("\t", "").replace("\n", "").replace("\r", "").replace("\\", "/")
        assert seen.startswith("/") and not seen.startswith("//"), where
        assert "evil" not in where and where == "/agent"


async def test_login_keeps_a_same_site_next_page(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as browser:
        await add_staff(server.app, "zhangwei", "agent", "1001")
        r = await browser.post(
            "/login",
            data={"username": "zhangwei", "password": PASSWORD, "next": "/calls?outcome=answered"},
            allow_redirects=False,
        )
        assert r.status == 302 and r.headers["Location"] == "/calls?outcome=answered"


async def test_websockets_refuse_other_sites(tmp_path: Path) -> None:
    """A page on another site (a sibling subdomain is "same-site" to the cookie) must not open
    an agent's or the wallboard's socket with the agent's cookie."""
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as browser:
        await add_staff(server.app, "lead1", "lead", "1001")
        await login(browser, "lead1")
        for path in ("/ws/agent", "/ws/wallboard"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await browser.ws_connect(path, origin="https://evil.example")
            assert refused.value.status == 403, path
            own = f"http://{server.host}:{server.port}"
            async with browser.ws_connect(path, origin=own) as ws:
                hello = await ws.receive_json(timeout=10)
                assert hello["type"] in ("hello", "wallboard")


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """True once the server closes the socket (messages it pushes meanwhile are skipped)."""
    while True:
        msg = await ws.receive(timeout=15)
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            return True


async def test_logout_closes_the_sessions_websockets(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as browser:
        await add_staff(server.app, "zhangwei", "agent", "1001")
        await login(browser, "zhangwei")
        async with browser.ws_connect("/ws/agent") as ws:
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
            r = await browser.post("/logout", allow_redirects=False)
            assert r.status == 302
            assert await _closed(ws)


async def test_a_password_change_closes_the_websockets(tmp_path: Path) -> None:
    app = create_app(desk_settings(tmp_path), with_core=False)
    app[HUB].recheck_seconds = 0.2  # how often an open socket's session is looked at again
    async with desk_server(tmp_path, app) as server, from_address(server, "127.0.0.2") as browser:
        await add_staff(server.app, "zhangwei", "agent", "1001")
        await login(browser, "zhangwei")
        async with browser.ws_connect("/ws/agent") as ws:
            assert (await ws.receive_json(timeout=10))["type"] == "hello"
            async with server.app[SESSIONS].begin() as s:
                fields = {"username": "zhangwei", "name": "zhangwei", "role": "agent",
                          "extension": "1001", "queues": "helpdesk"}  # fmt: skip
                await upsert_staff(s, fields, "a brand new password")
            assert await _closed(ws)


async def test_one_recheck_closes_the_sockets_of_ended_sessions_and_no_other(
    tmp_path: Path,
) -> None:
    """The hub asks about every open socket's session at once: a member made inactive and a
    session past its expiry lose their sockets; a third member's socket stays open."""
    app = create_app(desk_settings(tmp_path), with_core=False)
    app[HUB].recheck_seconds = 0.2
    async with (
        desk_server(tmp_path, app) as server,
        from_address(server, "127.0.0.2") as b1,
        from_address(server, "127.0.0.3") as b2,
        from_address(server, "127.0.0.4") as b3,
    ):
        for i, browser in enumerate((b1, b2, b3), 1):
            await add_staff(server.app, f"agent{i}", "agent", f"100{i}")
            await login(browser, f"agent{i}")
        async with (
            b1.ws_connect("/ws/agent") as ws1,
            b2.ws_connect("/ws/agent") as ws2,
            b3.ws_connect("/ws/agent") as ws3,
        ):
            for ws in (ws1, ws2, ws3):
                assert (await ws.receive_json(timeout=10))["type"] == "hello"
            async with server.app[SESSIONS].begin() as s:
                await s.execute(
                    update(Staff).where(Staff.username == "agent1").values(active=False)
                )
                staff2 = await s.scalar(select(Staff.id).where(Staff.username == "agent2"))
                past = datetime.now(UTC) - timedelta(minutes=1)
                await s.execute(
                    update(WebSession).where(WebSession.staff_id == staff2).values(expires_at=past)
                )
            assert await _closed(ws1) and await _closed(ws2)
            await asyncio.sleep(1)  # five more rechecks
            assert not ws3.closed
            server.app[HUB].publish("agent:1003", {"type": "probe"})
            assert (await ws3.receive_json(timeout=10))["type"] == "probe"


async def test_healthz_tells_strangers_only_whether_it_is_up(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as browser:
        r = await browser.get("/healthz")
        body = await r.json()
        # No Asterisk in this test: not up, 503, and nothing else.
        assert r.status == 503 and body == {"ok": False}, body
        await add_staff(server.app, "zhangwei", "agent", "1001")
        await login(browser, "zhangwei")
        r = await browser.get("/healthz")
        body = await r.json()
        assert r.status == 503 and body["ok"] is False and body["database"]["ok"] is True
