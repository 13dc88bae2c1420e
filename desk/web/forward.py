"""Requests only the holder of the AMI link can carry out, sent on to it by the node that
received them (several nodes behind one address, docs/nodes.md).

Click-to-call, transfers and supervision act on Asterisk through the AMI link, which one node
holds at a time. A browser behind the shared address reaches any node; the node that received
such a request, once it has checked the session and CSRF token like any other, asks the broker
for the holder's address and passes the request on unchanged (its cookie, CSRF token and body).
The holder checks them again against the shared database and answers; the answer goes back as
it came. A request already passed on is never passed on again (503 when the link moved on
meanwhile).
"""

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from cti.errors import CtiError
from desk.web.auth import STAFF
from desk.web.keys import CORE
from desk.web.nodes import NODE

logger = logging.getLogger(__name__)

# POST routes carried out by the holder of the AMI link.
OWNER_ROUTES = frozenset(
    {
        "/api/click-to-call",
        "/api/agent/me/transfer",
        "/api/agent/me/transfer/attended",
        "/api/supervise",
    }
)
# Marks a request one node passed on to another.
FORWARDED = "X-CTI-Forwarded-By"
# What of the browser's request the holder needs to check and answer it.
PASSED_HEADERS = ("Cookie", "X-CSRF-Token", "Content-Type", "Accept-Language", "Origin")
TIMEOUT = aiohttp.ClientTimeout(total=20)


def _no_link() -> web.HTTPServiceUnavailable:
    return web.HTTPServiceUnavailable(
        text='{"error":"no link to Asterisk"}', content_type="application/json"
    )


def valid_address(url: object) -> str | None:
    """A node's address as the broker gave it: http(s)://host:port and nothing else."""
    if not isinstance(url, str) or len(url) > 200:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    return f"{parts.scheme}://{parts.netloc}"


@web.middleware
async def owner_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Pass an AMI-link request on to the node that holds the link (see the module's text)."""
    app = request.app
    if (
        request.method != "POST"
        or request.path not in OWNER_ROUTES
        or CORE in app
        or NODE not in app
        or request.get(STAFF) is None  # the handler answers 401 here
    ):
        return await handler(request)
    node = app[NODE]
    if FORWARDED in request.headers:
        raise _no_link()  # passed on to us, and we no longer hold the link either
    try:
        address = valid_address(await node.ask("address", {}, 3.0))
    except CtiError:
        raise _no_link() from None
    if address is None:
        logger.error("the holder of the AMI link gave no usable address")
        raise _no_link()
    headers = {h: request.headers[h] for h in PASSED_HEADERS if h in request.headers}
    headers[FORWARDED] = node.name
    headers["Host"] = request.host
    body = await request.read()
    try:
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as http,
            http.post(
                address + request.path_qs, data=body, headers=headers, allow_redirects=False
            ) as resp,
        ):
            answer = await resp.read()
            return web.Response(
                body=answer,
                status=resp.status,
                content_type=resp.content_type or "application/json",
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        logger.warning("passing %s on to %s failed: %s", request.path, address, exc)
        raise _no_link() from None
