"""The wallboard's page, snapshot API and WebSocket (lead role); desk/web/pusher.py pushes it."""

from typing import Any

from aiohttp import web

from cti.asterisks import sites_of
from cti.errors import InvalidInput
from desk.models import Role
from desk.web.auth import WEB_SESSION, current, open_socket, requires
from desk.web.i18n import language, script_texts
from desk.web.keys import SETTINGS, WALLBOARD
from desk.web.messages import WALLBOARD as TOPIC
from desk.web.messages import MessageType
from desk.web.openapi import documented
from desk.web.templating import render


@requires(Role.LEAD)
async def wallboard_page(request: web.Request) -> web.Response:
    """GET /wallboard (?mode=tv for the big screen)."""
    lang = language(request)
    ws = request.get(WEB_SESSION)
    mode = "tv" if request.query.get("mode") == "tv" else "desk"
    sites = list(sites_of(request.app[SETTINGS].asterisk_servers))
    return render(
        "wallboard.html",
        lang=lang,
        texts=script_texts(lang),
        staff=current(request),
        csrf=ws.csrf if ws else "",
        mode=mode,
        sites=sites if len(sites) > 1 else [],
    )


@documented(responses=(503,), query={"site": {"type": "string", "maxLength": 80}})
@requires(Role.LEAD)
async def wallboard_json(request: web.Request) -> web.Response:
    """GET /api/wallboard(?site=): the current snapshot, across every site or of one."""
    site = request.query.get("site") or None
    if site is not None:
        sites = sites_of(request.app[SETTINGS].asterisk_servers)
        if site not in sites:
            raise InvalidInput(f"site must be one of {', '.join(sites)}")
    if WALLBOARD not in request.app:
        raise web.HTTPServiceUnavailable(
            text='{"error":"no link to Asterisk"}', content_type="application/json"
        )
    return web.json_response(await request.app[WALLBOARD].snapshot(site))


@requires(Role.LEAD)
async def wallboard_ws(request: web.Request) -> web.WebSocketResponse:
    """GET /ws/wallboard: snapshots as they change (the first one at once)."""
    hello: dict[str, Any] = {"type": MessageType.WALLBOARD.value}
    if WALLBOARD in request.app:
        hello.update(await request.app[WALLBOARD].snapshot())
    return await open_socket(request, {TOPIC}, hello)


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/wallboard", wallboard_page)
    app.router.add_get("/api/wallboard", wallboard_json)
    app.router.add_get("/ws/wallboard", wallboard_ws)
