"""The "take this call" links IM responders click (signed, expiring; no login: the link is the key).

Opening a take link never takes the call (IM apps fetch links to preview them); the page it
opens has one button that does. A sub-application at /take with its own policy: no staff session
or CSRF token (the signed token is the credential), and a token in the URL is neither cached,
indexed nor sent on as a Referer.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cti.errors import CtiError
from cti.routing.models import OverflowOffer
from cti.routing.overflow import read_take_token, take_signer
from desk.web.i18n import language
from desk.web.keys import ROUTING, ROUTING_CONFIG, SESSIONS, SETTINGS
from desk.web.nodes import NODE
from desk.web.templating import render

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _offer_for(request: web.Request) -> tuple[OverflowOffer | None, str | None]:
    app, token = request.config_dict, request.match_info["token"]
    try:
        if ROUTING in app:
            offer_id, _ = app[ROUTING].overflow.read_token(token)
        elif NODE in app:  # another node owns overflow: any node reads the link
            signer = take_signer(app[SETTINGS].effective_secret_key())
            offer_id, _ = read_take_token(signer, app[ROUTING_CONFIG].current.take_expires, token)
        else:
            return None, "service unavailable"
    except ValueError as exc:
        return None, str(exc)
    async with request.config_dict[SESSIONS]() as s:
        return await s.get(OverflowOffer, offer_id), None


def _take_view(
    request: web.Request,
    offer: OverflowOffer | None,
    error: str | None,
    result: dict[str, Any] | None,
    status: int,
) -> web.Response:
    lang = language(request)
    resp = render(
        "take.html",
        lang=lang,
        offer=offer,
        error=error,
        result=result,
        token=request.match_info["token"],
    )
    resp.set_status(status)
    return resp


async def take_page(request: web.Request) -> web.Response:
    """GET /take/{token}: the waiting call, and one button to take it."""
    offer, error = await _offer_for(request)
    return _take_view(request, offer, error, None, 200 if offer else 410)


async def take_post(request: web.Request) -> web.Response:
    """POST /take/{token}: take the call (the first click wins)."""
    offer, error = await _offer_for(request)
    result = None
    if offer is not None:
        app, token = request.config_dict, request.match_info["token"]
        if ROUTING in app:
            result = (await app[ROUTING].overflow.take(token)).as_json()
        else:  # the node that owns overflow takes it (desk/web/nodes.py)
            try:
                result = await app[NODE].ask("take", {"token": token})
            except CtiError:
                offer, error = None, "service unavailable"
    if request.headers.get("Accept") == "application/json":
        return web.json_response(
            result or {"ok": False, "error": error}, status=200 if result else 410
        )
    status = 200 if result and result["ok"] else 409 if result else 410
    return _take_view(request, offer, error, result, status)


@web.middleware
async def take_policy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Keep the token private: no caching, no indexing, no Referer."""
    response = await handler(request)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def setup(app: web.Application) -> None:
    """Mount the take links: a sub-application at /take."""
    take = web.Application(middlewares=[take_policy])
    take.router.add_get("/{token}", take_page)
    take.router.add_post("/{token}", take_post)
    app.add_subapp("/take", take)
