"""Desk staff for tests: create them in the app's database and log a client in over HTTP."""

from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from desk.staff import upsert_staff
from desk.web.keys import SESSIONS

PASSWORD = "correct horse 42"


async def add_staff(
    app: web.Application,
    username: str,
    role: str = "agent",
    extension: str | None = None,
    *,
    name: str | None = None,
    queues: str = "helpdesk",
    password: str = PASSWORD,
) -> None:
    """A member of staff with a known password."""
    fields = {"username": username, "name": name or username, "role": role,
              "extension": extension, "queues": queues}  # fmt: skip
    async with app[SESSIONS].begin() as s:
        await upsert_staff(s, fields, password)


def browser_like(client: TestClient) -> aiohttp.ClientSession:
    """A second browser on the same test server (its own cookies); close it yourself."""
    return aiohttp.ClientSession(
        base_url=str(client.make_url("/")), cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def login(client: Any, username: str, password: str = PASSWORD) -> str:
    """Log in through the API; the client keeps the cookie and sends the CSRF header from now on."""
    resp = await client.post("/api/login", json={"username": username, "password": password})
    assert resp.status == 200, await resp.text()
    csrf: str = (await resp.json())["csrf"]
    session = client.session if isinstance(client, TestClient) else client
    session.headers["X-CSRF-Token"] = csrf
    return csrf


async def logged_in(
    client: Any, role: str = "lead", username: str | None = None, app: web.Application | None = None
) -> str:
    """Create a member of staff with `role` and log the client in as them."""
    username = username or f"{role}1"
    await add_staff(app or client.server.app, username, role)
    return await login(client, username)
