"""The agent page's WebRTC softphone: the logged-in agent's own SIP credentials.

Only agents opted in (CTI_SOFTPHONE_EXTENSIONS) get any, each only their own extension's (the
session says who they are; nothing in the request can name another), and each fetch is audited.
The password is derived from the softphone key (cti/softphone.py), never stored in the database.
"""

from urllib.parse import urlsplit

from aiohttp import web

from cti import softphone
from cti.errors import NotFound
from desk import audit
from desk.models import Role
from desk.web.auth import current, remote, requires
from desk.web.keys import SESSIONS, SETTINGS
from desk.web.openapi import documented


@documented(responses=(404,))
@requires(Role.AGENT)
async def credentials(request: web.Request) -> web.Response:
    """GET /api/agent/me/softphone: the WebSocket address and this agent's SIP login."""
    staff = current(request)
    assert staff is not None
    settings = request.app[SETTINGS]
    ext = staff.extension
    if ext is None or not settings.softphone_for(ext):
        raise NotFound("you have no softphone: your calls ring your desk phone")
    host = urlsplit(settings.softphone_url).hostname or "localhost"
    async with request.app[SESSIONS].begin() as s:
        audit.record(s, staff.username, "softphone.credentials", ext, address=remote(request))
    body = {
        "ws_url": settings.softphone_url,
        "uri": f"sip:{ext}@{host}",
        "username": ext,
        "password": softphone.password(settings.softphone_key, ext),
        "display_name": staff.name,
    }
    # A password: never kept by a cache or proxy on the way.
    return web.json_response(body, headers={"Cache-Control": "no-store"})


def setup(app: web.Application) -> None:
    """Register the route."""
    app.router.add_get("/api/agent/me/softphone", credentials)
