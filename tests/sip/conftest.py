"""The SIP tier's server: the CTI server on the session's sandbox with agents on real SIP phones
(CTI_AGENT_INTERFACE=PJSIP/{ext}, the production default), and a page's WebSocket per agent."""

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState
from desk.web.app import create_app
from tests.browser.conftest import browser  # noqa: F401  (Chromium, for the agent page)
from tests.conftest import own_sandbox, server_settings
from tests.support import db
from tests.support.staff import add_staff, browser_like, login


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Instance]:
    """The SIP tier's own Asterisk per test module (it overrides the worker's session sandbox):
    real phones register to it from a clean start, whatever earlier tests on the worker's
    sandbox left behind (in a full run a phone never came ready on the shared one)."""
    yield from own_sandbox("sip")


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# The known caller of tests/fixtures/users.csv: recognised by number, no employee number asked.
ZHANG = ("13800138000", "张三")
# Press 1 (report a fault) again and again for a while: a key during the welcome interrupts it,
# the next one answers the main menu, and the rest fall on prompts that take only *.
KEEP_PRESSING_1 = [(1.0 + 1.5 * i, "1") for i in range(10)]


async def sip_server(st: InstanceState, tmp_path: Path, **extra: str) -> TestClient:
    """A CTI server whose agents answer on PJSIP phones."""
    # The product's AMI ping (5 s / 5 s), not the suite's 1 s / 2 s: these calls run in real
    # time beside the compose build, and a link dropped for a slow Pong loses the call's events.
    pings = {"CTI_AMI_PING_INTERVAL": "5", "CTI_AMI_PING_TIMEOUT": "5"}
    settings = server_settings(
        st, tmp_path, CTI_AGENT_INTERFACE="PJSIP/{ext}", **{**pings, **extra}
    )
    http = TestClient(TestServer(create_app(settings)))
    await http.start_server()
    await db.import_users(tmp_path, FIXTURES / "users.csv")
    return http


class AgentPage:
    """An agent logged in over HTTP with the agent page's WebSocket open (what the page gets)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.messages: list[dict[str, Any]] = []
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def open(self) -> None:
        """Open /ws/agent and keep reading it."""
        self._ws = await self.session.ws_connect("/ws/agent")
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
                self._changed.set()

    async def wait(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 120
    ) -> dict[str, Any]:
        """The first message (already seen or to come) that `pred` accepts."""
        async with asyncio.timeout(timeout):
            while True:
                for m in self.messages:
                    if pred(m):
                        return m
                self._changed.clear()
                await self._changed.wait()

    async def ready(self) -> None:
        """Ready for calls (queue member PJSIP/<ext>), and wait until the queue says so."""
        r = await self.session.post("/api/agent/me/state", json={"state": "ready"})
        assert r.status == 202, await r.text()
        await self.wait(
            lambda m: m.get("type") == "agent_state" and m["agent"]["state"] == "ready", 90
        )

    async def close(self) -> None:
        """Close the socket and the session."""
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            self._task.cancel()
        await self.session.close()


async def agent_page(http: TestClient, username: str, ext: str, name: str) -> AgentPage:
    """Staff `username` at extension `ext`, logged in with the page open."""
    await add_staff(http.server.app, username, "agent", ext, name=name)
    session = browser_like(http)
    await login(session, username)
    page = AgentPage(session)
    await page.open()
    return page
