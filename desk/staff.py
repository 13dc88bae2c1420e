"""Desk staff (Table A.2): records, argon2 password hashes, login sessions with a CSRF token
each, roles; and `cti staff add|list`."""

import asyncio
import getpass
import secrets
import sys
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.db import create_engine, migrate, session_maker
from cti.errors import InvalidInput
from cti.phone import digits
from cti.settings import Settings
from desk.migrations import MIGRATIONS
from desk.models import Role, Staff, WebSession
from desk.validation import QUEUE_CHARS, is_email

SESSION_HOURS = 12
HASHER = PasswordHasher()
# The hash of a password nobody has: verifying an unknown user costs the same time.
_DUMMY = HASHER.hash(secrets.token_hex(16))
# Who may do what: a lead can do what an agent can; an admin everything.
RANKS = {Role.AGENT: 1, Role.LEAD: 2, Role.ADMIN: 3}


def hash_password(password: str) -> str:
    """An argon2id hash."""
    if len(password) < 8:
        raise InvalidInput("a password needs at least 8 characters")
    return HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Constant-effort check (an unknown user is checked against a dummy hash)."""
    try:
        return HASHER.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


class PasswordVerifier:
    """argon2 checks off the event loop, at most `workers` at once: each takes a core and
    64 MiB for a good fraction of a second, which on the loop would stall every other request
    (pops, the wallboard) meanwhile."""

    def __init__(self, workers: int = 2) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="argon2")

    async def verify(self, stored: str | None, password: str) -> bool:
        """verify_password, in the pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, verify_password, stored, password)

    def close(self) -> None:
        """Stop the pool (checks still queued are dropped)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


async def start_session(session: AsyncSession, staff: Staff, now: datetime) -> WebSession:
    """A new session (and CSRF token) for a member of staff; expired ones are swept."""
    await session.execute(delete(WebSession).where(WebSession.expires_at < now))
    ws = WebSession(
        id=secrets.token_urlsafe(32),
        staff_id=staff.id,
        csrf=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + timedelta(hours=SESSION_HOURS),
    )
    session.add(ws)
    return ws


def _holds(now: datetime) -> tuple[Any, ...]:
    """What a login session needs to hold: not expired, its staff member active."""
    return WebSession.expires_at >= now, Staff.active.is_(True)


async def load_session(session: AsyncSession, sid: str | None) -> tuple[Staff, WebSession] | None:
    """The staff member and session behind a cookie, if valid and not expired."""
    if not sid or len(sid) > 64:
        return None
    row = (
        await session.execute(
            select(Staff, WebSession)
            .join(WebSession, WebSession.staff_id == Staff.id)
            .where(WebSession.id == sid, *_holds(datetime.now(UTC)))
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def live_sessions(session: AsyncSession, sids: Collection[str]) -> set[str]:
    """Which of these sessions `load_session` would still accept, in one query per 500."""
    now, ids = datetime.now(UTC), list(sids)
    live: set[str] = set()
    for i in range(0, len(ids), 500):
        live.update(
            await session.scalars(
                select(WebSession.id)
                .join(Staff, Staff.id == WebSession.staff_id)
                .where(WebSession.id.in_(ids[i : i + 500]), *_holds(now))
            )
        )
    return live


async def staff_by_username(session: AsyncSession, username: str) -> Staff | None:
    """A staff member by login name."""
    return await session.scalar(select(Staff).where(Staff.username == username))


def staff_json(staff: Staff) -> dict[str, Any]:
    """What the pages may know about a member of staff."""
    return {
        "username": staff.username,
        "name": staff.name,
        "role": staff.role,
        "extension": staff.extension,
        "queues": [q for q in staff.queues.split(",") if q],
    }


# Table A.2's contact fields and their column sizes.
A2_FIELDS = {
    "name": 120,
    "position": 120,
    "services": 300,
    "office_phone": 60,
    "mobile": 60,
    "email": 200,
    "im_handle": 120,
}


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
    if ext is not None and (not digits(ext) or not 2 <= len(ext) <= 8):
        raise InvalidInput("extension: 2 to 8 digits")
    queues = fields.get("queues", "helpdesk")
    if not queues or set(queues) - QUEUE_CHARS or len(queues) > 200:
        raise InvalidInput("queues: comma-separated queue names")
    for key, limit in A2_FIELDS.items():
        value = fields.get(key, "")
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidInput(f"{key}: text of at most {limit} characters")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise InvalidInput(f"{key}: a line break or control character")
    if "name" in fields and not fields["name"].strip():
        raise InvalidInput("name is required")
    if fields.get("email") and not is_email(fields["email"]):
        raise InvalidInput(f"email: {fields['email']!r} is not an e-mail address")
    for key in ("office_phone", "mobile"):
        value = fields.get(key) or ""
        if value and not digits(value.replace("+", "").replace("-", "").replace(" ", "")):
            raise InvalidInput(f"{key}: {value!r} is not a phone number")


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
        if password and not verify_password(staff.password_hash, password):
            staff.password_hash = hash_password(password)
            # A new password ends every session made with the old one (a stolen cookie too).
            await session.execute(delete(WebSession).where(WebSession.staff_id == staff.id))
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


def staff_record(staff: Staff) -> dict[str, Any]:
    """Everything the lead's staff page shows and edits (Table A.2 and the login's state)."""
    return {
        **staff_json(staff),
        "id": staff.id,
        **{key: getattr(staff, key) for key in A2_FIELDS},
        "active": staff.active,
    }


async def set_password_hash(session: AsyncSession, staff: Staff, password_hash: str) -> None:
    """A new password (hashed by the caller, off the event loop); it ends every session made
    with the old one."""
    staff.password_hash = password_hash
    staff.updated_at = datetime.now(UTC)
    await session.execute(delete(WebSession).where(WebSession.staff_id == staff.id))


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
