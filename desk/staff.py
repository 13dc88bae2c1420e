"""Desk staff records (Table A.2) and `cti staff add|passwd|list`."""

import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.db import create_engine, migrate, session_maker
from cti.errors import InvalidInput
from cti.settings import Settings
from desk.auth import hash_password
from desk.migrations import MIGRATIONS
from desk.models import Role, Staff

QUEUE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_,")


def validate(fields: dict[str, Any]) -> None:
    """Clear messages for a bad staff record."""
    username = fields.get("username", "")
    if (
        not username
        or len(username) > 60
        or not username.replace(".", "").replace("-", "").replace("_", "").isalnum()
    ):
        raise InvalidInput("username: 1 to 60 letters, digits, '.', '-' or '_'")
    if fields.get("role") not in {r.value for r in Role}:
        raise InvalidInput(f"role must be one of {', '.join(r.value for r in Role)}")
    ext = fields.get("extension")
    if ext is not None and (not ext.isdigit() or not 2 <= len(ext) <= 8):
        raise InvalidInput("extension: 2 to 8 digits")
    queues = fields.get("queues", "helpdesk")
    if not queues or set(queues) - QUEUE_CHARS:
        raise InvalidInput("queues: comma-separated queue names")


async def upsert_staff(
    session: AsyncSession, fields: dict[str, Any], password: str | None
) -> Staff:
    """Create a member of staff, or update one (by username); the password is hashed here."""
    validate(fields)
    now = datetime.now(UTC)
    staff = await session.scalar(select(Staff).where(Staff.username == fields["username"]))
    if staff is None:
        if not password:
            raise InvalidInput("a new member of staff needs a password")
        staff = Staff(
            created_at=now, updated_at=now, password_hash=hash_password(password), **fields
        )
        session.add(staff)
    else:
        for key, value in fields.items():
            setattr(staff, key, value)
        if password:
            staff.password_hash = hash_password(password)
        staff.updated_at = now
    if staff.extension:
        other = await session.scalar(
            select(Staff).where(
                Staff.extension == staff.extension, Staff.username != staff.username
            )
        )
        if other is not None:
            raise InvalidInput(f"extension {staff.extension} belongs to {other.username}")
    await session.flush()
    return staff


async def run(settings: Settings, action: str, fields: dict[str, Any], password_stdin: bool) -> int:
    """The CLI: add (or update) a member of staff, or list them."""
    engine = create_engine(settings.effective_database_url)
    try:
        await migrate(engine, MIGRATIONS)
        async with session_maker(engine).begin() as session:
            if action == "list":
                for s in (await session.scalars(select(Staff).order_by(Staff.username))).all():
                    print(f"{s.username}\t{s.role}\t{s.extension or '-'}\t{s.queues}\t{s.name}")
                return 0
            if password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass(f"password for {fields['username']}: ")
            staff = await upsert_staff(
                session, {k: v for k, v in fields.items() if v is not None}, password
            )
            print(
                f"{staff.username}: {staff.role}, extension {staff.extension or '-'}, "
                f"queues {staff.queues}"
            )
            return 0
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
