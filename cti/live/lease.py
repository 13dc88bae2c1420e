"""Leases in PostgreSQL: which node owns a job (an Asterisk's AMI link and overflow, the report
scheduler) when several server nodes share one database.

A lease is a session-level advisory lock (`pg_try_advisory_lock`) held on a connection of its
own. The holder checks that connection every `interval` seconds (the heartbeat); the lock lives
exactly as long as the connection, so a holder killed with -9 loses it as soon as PostgreSQL sees
the socket close, and a waiting node takes it at its next attempt. A holder that cannot reach the
database for `interval` x MISSES stops its job first (fencing itself) and only then drops the
connection; PostgreSQL's own keepalives on that connection (set below) release the lock of a
holder that vanished from the network in about KEEPALIVE_RELEASE seconds, after the holder has
stopped on its side.

The connection's `application_name` says which lease and which node
(`cti-lease ami node-a`), so `pg_stat_activity` shows the owners; `holders()` reads them.
"""

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

logger = logging.getLogger(__name__)

# Heartbeats a holder may miss before it stops its job.
MISSES = 3
# PostgreSQL drops a silent holder's connection after idle + interval x count seconds.
KEEPALIVE = {"tcp_keepalives_idle": "4", "tcp_keepalives_interval": "2",
             "tcp_keepalives_count": "3"}  # fmt: skip
KEEPALIVE_RELEASE = 4 + 2 * 3
APP_PREFIX = "cti-lease "


def lock_key(name: str) -> int:
    """The advisory lock's 64-bit key for a lease name (stable across nodes and versions)."""
    digest = hashlib.sha256(f"cti-lease:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy postgresql+asyncpg:// URL as asyncpg takes it."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


@dataclass
class LeaseState:
    """What a lease did, for /healthz and the tests."""

    held: bool = False
    acquired_at: float | None = None
    acquisitions: int = 0
    losses: int = 0
    last_error: str = ""


class Lease:
    """Hold the lease `name` whenever possible; run `on_acquired` on taking it and `on_lost`
    when it is lost (both awaited; they start and stop the job). `run()` is the loop."""

    def __init__(
        self,
        dsn: str,
        name: str,
        node: str,
        on_acquired: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
        interval: float = 1.0,
    ) -> None:
        self.dsn = asyncpg_dsn(dsn)
        self.name = name
        self.node = node
        self.key = lock_key(name)
        self.interval = interval
        self.on_acquired = on_acquired
        self.on_lost = on_lost
        self.state = LeaseState()
        self._con: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        """True while this node owns the lease (its job runs)."""
        return self.state.held

    def start(self) -> None:
        """Begin trying to take the lease."""
        self._task = asyncio.create_task(self.run(), name=f"lease-{self.name}")

    async def close(self) -> None:
        """Stop the job if it runs here and give the lease back."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._release()

    async def _connect(self) -> asyncpg.Connection:
        app = re.sub(r"[^A-Za-z0-9:._ -]", "_", f"{APP_PREFIX}{self.name} {self.node}")[:63]
        con: asyncpg.Connection = await asyncpg.connect(
            self.dsn,
            timeout=max(2.0, self.interval * MISSES),
            server_settings={"application_name": app, **KEEPALIVE},
        )
        return con

    async def run(self) -> None:
        """Try every `interval` s; hold with a heartbeat; on a lost connection, stop the job."""
        try:
            while True:
                try:
                    if await self._try_take():
                        await self._hold()
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    self.state.last_error = f"{type(exc).__name__}: {exc}"
                    logger.warning("lease %s: %s", self.name, self.state.last_error)
                except Exception as exc:  # the job failed to start: give the lease back, retry
                    self.state.last_error = f"{type(exc).__name__}: {exc}"
                    logger.exception("lease %s: the job failed", self.name)
                await self._release()
                await asyncio.sleep(self.interval)
        finally:
            await self._release()

    async def _try_take(self) -> bool:
        if self._con is None or self._con.is_closed():
            self._con = await self._connect()
        got = await self._con.fetchval(
            "SELECT pg_try_advisory_lock($1)", self.key, timeout=self.interval * MISSES
        )
        if not got:
            return False
        self.state.held = True
        self.state.acquired_at = time.time()
        self.state.acquisitions += 1
        logger.warning("lease %s: taken by node %s", self.name, self.node)
        try:
            await self.on_acquired()
        except BaseException:
            await self._release()
            raise
        return True

    async def _hold(self) -> None:
        """Return when the connection fails `MISSES` heartbeats in a row."""
        assert self._con is not None
        misses = 0
        while misses < MISSES:
            await asyncio.sleep(self.interval)
            try:
                # The lock lives exactly as long as this session: a live session holds it.
                await self._con.fetchval("SELECT 1", timeout=self.interval)
                misses = 0
            except (OSError, asyncpg.PostgresError, TimeoutError,
                    asyncpg.InterfaceError) as exc:  # fmt: skip
                misses += 1
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("lease %s: heartbeat failed (%d): %s", self.name, misses, exc)
                if self._con.is_closed():
                    break
        logger.error("lease %s: lost by node %s; stopping its job", self.name, self.node)

    async def _release(self) -> None:
        """Stop the job (if it ran here), then drop the connection (and with it the lock)."""
        if self.state.held:
            self.state.held = False
            self.state.losses += 1
            try:
                await self.on_lost()
            except Exception:
                logger.exception("lease %s: stopping the job failed", self.name)
        con, self._con = self._con, None
        if con is not None and not con.is_closed():
            # Closing the session releases its advisory locks; a dead link: terminate.
            try:
                async with asyncio.timeout(self.interval * MISSES):
                    await con.close()
            except Exception:
                con.terminate()


async def holders(dsn: str) -> dict[str, str]:
    """Lease name -> node holding it, as PostgreSQL sees the holders' connections now."""
    con = await asyncpg.connect(asyncpg_dsn(dsn))
    try:
        rows = await con.fetch(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE $1",
            APP_PREFIX + "%",
        )
    finally:
        await con.close()
    out: dict[str, str] = {}
    for row in rows:
        _, name, node = str(row["application_name"]).split(" ", 2)
        out[name] = node
    return out
