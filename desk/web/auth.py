"""Staff login on the web: server-side sessions in HttpOnly SameSite cookies, the CSRF check,
roles checked on every route and WebSocket, who the client is, and the security headers."""

import hmac
from collections.abc import Awaitable, Callable
from functools import wraps

from aiohttp import web

from desk.models import Role, Staff, WebSession
from desk.staff import RANKS, SESSION_HOURS
from desk.web.keys import SETTINGS
from desk.web.limits import client_address

COOKIE = "cti_session"
STAFF = web.RequestKey("staff", Staff)
WEB_SESSION = web.RequestKey("web_session", WebSession)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def remote(request: web.Request) -> str:
    """The client's address as rate limits count it (see desk/web/limits.py)."""
    return client_address(request, request.config_dict[SETTINGS].trusted_proxies)


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


def checks_own_credentials(handler: Handler) -> Handler:
    """Mark a handler that takes unsafe requests without a session's CSRF token because it checks
    credentials itself (the login form and API)."""
    handler.csrf_exempt = True  # type: ignore[attr-defined]
    return handler
