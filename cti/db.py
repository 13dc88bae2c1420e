"""The database engine, sessions and schema migrations (Alembic)."""

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionMaker = async_sessionmaker[AsyncSession]
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
    cur.execute("PRAGMA busy_timeout=10000")
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
