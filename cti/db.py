"""The database engine, sessions and schema migrations (Alembic)."""

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

logger = logging.getLogger(__name__)

SessionMaker = async_sessionmaker[AsyncSession]
T = TypeVar("T")
# How long an SQLite writer waits for the one write lock before "database is locked".
BUSY_TIMEOUT_MS = 10000
# How many times a transaction that ran out of that time is run (see retry_locked).
LOCKED_ATTEMPTS = 3
# The advisory lock key that serialises migrations on PostgreSQL ("cti-migrate").
MIGRATE_LOCK = 0x6374692D6D696772


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL: readers (reports, the API) never block the journal writer, and the writer never
    # blocks them. NORMAL sync is durable across a process kill (-9); only an OS crash can lose
    # the last transactions, which queue_log reconciliation recovers.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_MS)}")
    cur.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; SQLite gets WAL and a created parent folder."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
    engine = create_async_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def locked(exc: BaseException) -> bool:
    """Whether `exc` is SQLite's "database is locked": the busy timeout ran out."""
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


async def retry_locked(work: Callable[[], Awaitable[T]], what: str) -> T:
    """Run `work` (one whole transaction) again when SQLite's busy timeout ran out, up to
    LOCKED_ATTEMPTS times: on a saturated machine a write can wait its turn past the timeout
    (seen at 200 concurrent calls at a load average of 94), and a caller's incident or IVR steps
    are worth a second wait rather than lost. Any other error, and the last attempt's, is raised."""
    for attempt in range(1, LOCKED_ATTEMPTS + 1):
        try:
            return await work()
        except OperationalError as exc:
            if attempt == LOCKED_ATTEMPTS or not locked(exc):
                raise
            logger.warning("%s: the database was locked (attempt %d); trying again", what, attempt)
    raise AssertionError("unreachable")


def session_maker(engine: AsyncEngine) -> SessionMaker:
    """The one session factory of the process."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str, script_location: Path) -> Config:
    """An Alembic config pointing at the migrations in `script_location` and `url`."""
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def migrate(engine: AsyncEngine, script_location: Path) -> None:
    """Bring the schema to the newest revision of `script_location` (idempotent)."""

    def upgrade(conn: Connection) -> None:
        cfg = alembic_config(engine.url.render_as_string(hide_password=False), script_location)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")

    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Several nodes starting at once migrate one after the other (PostgreSQL's DDL is
            # transactional: the lock is held until the migration commits).
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK})
        await conn.run_sync(upgrade)
