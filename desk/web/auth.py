"""Staff login on the web: server-side sessions in HttpOnly SameSite cookies, the CSRF check,
roles checked on every route and WebSocket, who the client is, and the security headers."""

import hmac
from collections.abc import Awaitable, Callable, Collection
from functools import wraps
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from desk.models import Role, Staff, WebSession
from desk.staff import RANKS, SESSION_HOURS, live_sessions
from desk.web.hub import SessionCheck
from desk.web.keys import HUB, SESSIONS, SETTINGS
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
                raise web.HTTPFound("/login?" + urlencode({"next": request.path_qs}))
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


def same_site_path(target: str) -> str | None:
    """`target` if it is a path on this site (where to go after the login), else None.

    Browsers drop tabs and newlines inside a URL and read a backslash as a slash, so "/", a tab,
    "/evil.example" would take the user to //evil.example: any control character, space or
    backslash refuses the target instead of being interpreted."""
    if not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def check_csrf(request: web.Request, supplied: str | None) -> None:
    """Unsafe methods must carry the session's CSRF token (form field or X-CSRF-Token)."""
    ws: WebSession | None = request.get(WEB_SESSION)
    if ws is None or not supplied or not hmac.compare_digest(ws.csrf, supplied):
        raise web.HTTPForbidden(
            text='{"error":"missing or wrong CSRF token"}', content_type="application/json"
        )


_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def _origin_of(url: str) -> tuple[str, int] | None:
    """(host, port) of a URL, lower case, the port spelled out."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.hostname.lower(), port


def check_origin(request: web.Request) -> None:
    """A WebSocket opened by a page must come from a page of this server: the Origin a browser
    sends must be this server as the request reached it (Host) or as people reach it
    (CTI_PUBLIC_URL). SameSite cookies alone let a sibling subdomain's page open it. A client
    that sends no Origin is not a browser, and carries no browser's cookie without being told."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    seen = _origin_of(origin)
    own = {
        _origin_of(f"{request.scheme}://{request.host}"),
        _origin_of(request.config_dict[SETTINGS].effective_public_url),
    }
    if seen is None or seen not in own:
        raise web.HTTPForbidden(
            text='{"error":"WebSocket from another site"}', content_type="application/json"
        )


async def open_socket(
    request: web.Request, topics: set[str], hello: dict[str, object]
) -> web.WebSocketResponse:
    """Serve a staff WebSocket (after @requires): from our own pages only, and for as long as
    the login session it was opened with lasts."""
    check_origin(request)
    ws_session: WebSession = request[WEB_SESSION]
    return await request.app[HUB].serve(request, topics, dict(hello), session_id=ws_session.id)


def session_check(app: web.Application) -> SessionCheck:
    """The hub's recheck of its sockets' login sessions: those that still hold."""

    async def live(sids: Collection[str]) -> set[str]:
        async with app[SESSIONS]() as s:
            return await live_sessions(s, sids)

    return live


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
