"""Staff login: argon2 password hashes, server-side sessions in HttpOnly SameSite cookies, a CSRF
token per session, roles checked on every route and WebSocket, and a login rate limit."""

import hmac
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import InvalidInput
from desk.models import Role, Staff, WebSession

COOKIE = "cti_session"
STAFF = web.RequestKey("staff", Staff)
WEB_SESSION = web.RequestKey("web_session", WebSession)
SESSION_HOURS = 12
HASHER = PasswordHasher()
# The hash of a password nobody has: verifying an unknown user costs the same time.
_DUMMY = HASHER.hash(secrets.token_hex(16))
# Who may do what: a lead can do what an agent can; an admin everything.
RANKS = {Role.AGENT: 1, Role.LEAD: 2, Role.ADMIN: 3}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


class LoginLimiter:
    """At most `limit` failed logins per user name and per address in `window` seconds."""

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._fails: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, key: str) -> deque[float]:
        q = self._fails[key]
        cutoff = time.monotonic() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def blocked(self, username: str, address: str) -> bool:
        """True when either the name or the address has used up its attempts."""
        return any(len(self._recent(k)) >= self.limit for k in (f"u:{username}", f"a:{address}"))

    def failed(self, username: str, address: str) -> None:
        """Count a failure."""
        for key in (f"u:{username}", f"a:{address}"):
            self._recent(key).append(time.monotonic())

    def succeeded(self, username: str) -> None:
        """A good login clears the name's failures."""
        self._fails.pop(f"u:{username}", None)


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


async def load_session(session: AsyncSession, sid: str | None) -> tuple[Staff, WebSession] | None:
    """The staff member and session behind a cookie, if valid and not expired."""
    if not sid or len(sid) > 64:
        return None
    ws = await session.get(WebSession, sid)
    if ws is None or ws.expires_at < datetime.now(UTC):
        return None
    staff = await session.get(Staff, ws.staff_id)
    if staff is None or not staff.active:
        return None
    return staff, ws


def set_cookie(response: web.StreamResponse, sid: str, secure: bool) -> None:
    """HttpOnly, SameSite=Strict: script cannot read it and other sites cannot send it."""
    response.set_cookie(
        COOKIE,
        sid,
        httponly=True,
        samesite="Strict",
        secure=secure,
        max_age=SESSION_HOURS * 3600,
        path="/",
    )


def current(request: web.Request) -> Staff | None:
    """The logged-in staff member, set by the session middleware."""
    staff: Staff | None = request.get(STAFF)
    return staff


def requires(role: Role) -> Callable[[Handler], Handler]:
    """Only staff of at least `role`; pages redirect to the login, the API answers 401/403."""

    def wrap(handler: Handler) -> Handler:
        @wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            staff = current(request)
            wants_json = request.path.startswith("/api/") or request.path.startswith("/ws/")
            if staff is None:
                if wants_json:
                    raise web.HTTPUnauthorized(
                        text='{"error":"login required"}', content_type="application/json"
                    )
                raise web.HTTPFound(f"/login?next={request.path}")
            if RANKS[Role(staff.role)] < RANKS[role]:
                raise web.HTTPForbidden(
                    text='{"error":"your role may not do this"}'
                    if wants_json
                    else "403: not for your role",
                    content_type="application/json" if wants_json else "text/plain",
                )
            return await handler(request)

        checked.required_role = role  # type: ignore[attr-defined]
        return checked

    return wrap


def check_csrf(request: web.Request, supplied: str | None) -> None:
    """Unsafe methods must carry the session's CSRF token (form field or X-CSRF-Token)."""
    ws: WebSession | None = request.get(WEB_SESSION)
    if ws is None or not supplied or not hmac.compare_digest(ws.csrf, supplied):
        raise web.HTTPForbidden(
            text='{"error":"missing or wrong CSRF token"}', content_type="application/json"
        )


async def staff_by_username(session: AsyncSession, username: str) -> Staff | None:
    """A staff member by login name."""
    return await session.scalar(select(Staff).where(Staff.username == username))


def security_headers(response: web.StreamResponse) -> None:
    """No framing, no sniffing, scripts only from this site."""
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self' ws: wss:; img-src 'self' data:; frame-ancestors 'none'",
    )


def staff_json(staff: Staff) -> dict[str, Any]:
    """What the pages may know about a member of staff."""
    return {
        "username": staff.username,
        "name": staff.name,
        "role": staff.role,
        "extension": staff.extension,
        "queues": [q for q in staff.queues.split(",") if q],
    }
