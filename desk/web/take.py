"""The "take this call" links IM responders click (signed, expiring; no login: the link is the key).

Opening a take link never takes the call (IM apps fetch links to preview them); the page it
opens has one button that does. A sub-application at /take with its own policy: no staff session
or CSRF token (the signed token is the credential), and a token in the URL is neither cached,
indexed nor sent on as a Referer.
"""

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cti.routing.models import OverflowOffer
from desk.web.i18n import language
from desk.web.keys import ROUTING, SESSIONS
from desk.web.templating import render

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def _offer_for(request: web.Request) -> tuple[OverflowOffer | None, str | None]:
    if ROUTING not in request.config_dict:
        return None, "service unavailable"
    try:
        offer_id, _ = request.config_dict[ROUTING].overflow.read_token(request.match_info["token"])
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
        taken = await request.config_dict[ROUTING].overflow.take(request.match_info["token"])
        result = taken.as_json()
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
