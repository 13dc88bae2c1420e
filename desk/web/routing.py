"""Queue back-up rules, overflow and IM channels from the lead's page: routing.yaml's text in an
editor, checked by the same validation as at start (errors name the line), stored in the
database and put in force at once; a test message to a channel of the configuration in force."""

from datetime import UTC, datetime

from aiohttp import web

from cti.errors import ConfigError, InvalidInput
from cti.routing.config import parse_routing
from cti.routing.delivery import ImDelivery
from cti.routing.im import Message
from desk import settings_docs
from desk.models import Role
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import ROUTING_CONFIG, SESSIONS
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of

MAX_TEXT = 100_000


@requires(Role.LEAD)
async def get_routing(request: web.Request) -> web.Response:
    """GET /api/routing: the configuration in force, as YAML text, and where it came from."""
    live = request.app[ROUTING_CONFIG]
    return web.json_response(
        {"text": live.text, "origin": live.origin, "channels": sorted(live.current.channels)}
    )


@documented(body=obj({"text": string(MAX_TEXT)}, ("text",)))
@requires(Role.LEAD)
async def save_routing(request: web.Request) -> web.Response:
    """PUT /api/routing {text}: check routing.yaml's new text (errors name the line), store it
    and put it in force for the next evaluation."""
    body = await body_of(request)
    text = body.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise InvalidInput(f"text: routing.yaml's text, at most {MAX_TEXT} characters")
    try:
        config = parse_routing(text, "routing.yaml")
    except ConfigError as exc:
        raise InvalidInput(f"text: {exc}") from None
    staff = current(request)
    assert staff is not None
    live = request.app[ROUTING_CONFIG]
    async with request.app[SESSIONS].begin() as s:
        await settings_docs.put(
            s, settings_docs.ROUTING, {"text": text}, staff.username, datetime.now(UTC)
        )
        console.record(
            request,
            s,
            "routing.update",
            "routing.yaml",
            {"lines": [len(live.text.splitlines()), len(text.splitlines())]},
        )
    live.replace(config, text, "database")
    return web.json_response(
        {"text": text, "origin": "database", "channels": sorted(config.channels)}
    )


@documented(body=obj({"channel": string(40)}, ("channel",)))
@requires(Role.LEAD)
async def test_channel(request: web.Request) -> web.Response:
    """POST /api/routing/test {channel}: send a test message to an IM channel of the
    configuration in force; the delivery's status or error."""
    body = await body_of(request)
    name = body.get("channel")
    config = request.app[ROUTING_CONFIG].current
    if not isinstance(name, str) or name not in config.channels:
        raise InvalidInput(f"channel: no IM channel {name!r} in the configuration in force")
    staff = current(request)
    assert staff is not None
    delivery = ImDelivery(config)
    await delivery.start()
    try:
        record = await delivery.send_one(
            config.channels[name],
            Message(
                "test",
                "服务台测试消息 / Service desk test message",
                (f"来自 from: {staff.name} ({staff.username})",),
            ),
        )
    finally:
        await delivery.close()
    async with request.app[SESSIONS].begin() as s:
        console.record(request, s, "routing.test", name, {"result": record})
    return web.json_response(record)


@requires(Role.LEAD)
async def routing_page(request: web.Request) -> web.Response:
    """GET /routing: the editor."""
    live = request.app[ROUTING_CONFIG]
    return console.page(
        request,
        "routing.html",
        text=live.text,
        origin=live.origin,
        channels=sorted(live.current.channels),
    )


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/routing", get_routing)
    app.router.add_put("/api/routing", save_routing)
    app.router.add_post("/api/routing/test", test_channel)
    app.router.add_get("/routing", routing_page)
