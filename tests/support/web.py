"""A desk server without Asterisk for web tests, and clients that come from other loopback
addresses (127.0.0.2, 127.0.0.3, ...: on Linux the whole 127.0.0.0/8 is this machine), so a test
can be several people at once."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from cti.settings import Settings, load_settings
from desk.web.app import create_app
from tests.support.db import url_of


def desk_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a server (or `cti` command) on the test's own database (its SQLite
    file, or its PostgreSQL database when the suite runs on PostgreSQL) and data folder."""
    return {"CTI_DATABASE_URL": url_of(tmp_path),
            "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x",
            "CTI_DATA_DIR": str(tmp_path), **extra}  # fmt: skip


def desk_settings(tmp_path: Path, **extra: str) -> Settings:
    """Settings for a server with no Asterisk (no core is started)."""
    return load_settings(None, desk_env(tmp_path, **extra))


@asynccontextmanager
async def desk_server(
    tmp_path: Path, app: web.Application | None = None, **extra: str
) -> AsyncIterator[TestServer]:
    """A running server (in this process, on 127.0.0.1) until the block ends."""
    server = TestServer(app or create_app(desk_settings(tmp_path, **extra), with_core=False),
                        host="127.0.0.1")  # fmt: skip
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


def from_address(server: TestServer, address: str, **kw: Any) -> aiohttp.ClientSession:
    """A browser at another loopback address (its own cookies); close it yourself."""
    return aiohttp.ClientSession(
        base_url=str(server.make_url("/")),
        connector=aiohttp.TCPConnector(local_addr=(address, 0), limit=300),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        **kw,
    )


async def wait_healthy(port: int, timeout: float = 90) -> None:
    """Wait until the `cti serve` on `port` answers /healthz with 200 (its database reached, its
    AMI link up and the journal resumed), not a guessed number of seconds: under load a server
    once took longer than the 3 s a test gave it, was killed before its first start was written,
    and its successor rightly started from the end of queue_log."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with aiohttp.ClientSession() as http:
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise AssertionError(f"the server on port {port} was not healthy within {timeout:.0f} s")
