"""`cti user import`: the user directory from a CSV file."""

from datetime import UTC, datetime
from pathlib import Path

from cti.db import create_engine, migrate, session_maker
from cti.errors import InvalidInput
from cti.phone import NumberPlan
from cti.settings import Settings
from desk.directory import import_users
from desk.migrations import MIGRATIONS


def read(path: Path) -> bytes:
    """The file's bytes, or a clear error."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"{path}: {exc.strerror}") from None


async def import_file(settings: Settings, path: Path, data: bytes, by: str) -> int:
    """Import and print what happened; exit status 1 (and no change) on any error."""
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine, MIGRATIONS)
        async with session_maker(engine).begin() as session:
            result = await import_users(
                session,
                data,
                by=by,
                now=datetime.now(UTC),
                plan=NumberPlan(area_code=settings.area_code),
            )
            if result.errors:
                await session.rollback()
    finally:
        await engine.dispose()
    if result.errors:
        for error in result.errors:
            print(f"{path}: {error}")
        print("nothing was imported")
        return 1
    print(f"{result.created} created, {result.updated} updated, {result.unchanged} unchanged")
    return 0
