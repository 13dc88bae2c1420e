"""Supervision from the wallboard: a lead listens to, whispers to (coaches) or barges in on an
agent's call. The lead's own phone rings first (ChanSpy runs once it is answered); every use is
written to the audit log."""

from typing import Any

from aiohttp import web

from cti.ami import actions
from cti.ami.actions import SpyMode
from cti.errors import AmiActionFailed, Conflict, InvalidInput
from cti.phone import digits
from desk.models import Role
from desk.validation import text_field
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import CORE, SESSIONS, SETTINGS
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of


def _mode(body: dict[str, Any]) -> SpyMode:
    raw = body.get("mode")
    if not isinstance(raw, str) or raw not in SpyMode.__members__.values():
        raise InvalidInput("mode: one of " + ", ".join(m.value for m in SpyMode))
    return SpyMode(raw)


@documented(
    responses=(202, 409, 503),
    body=obj(
        {
            "agent": string(20, pattern="^[0-9]+$"),
            "mode": string(10, enum=[m.value for m in SpyMode]),
        },
        ("agent", "mode"),
    ),
)
@requires(Role.LEAD)
async def supervise(request: web.Request) -> web.Response:
    """POST /api/supervise {agent, mode}: ring my phone, then listen/whisper/barge."""
    body = await body_of(request)
    me = current(request)
    assert me is not None  # @requires ran first
    agent = text_field(body, "agent", 20, required=True) or ""
    if not digits(agent):
        raise InvalidInput("agent: the agent's extension (digits)")
    mode = _mode(body)
    if not me.extension:
        raise InvalidInput("you have no desk phone (extension) to listen on")
    if agent == me.extension:
        raise InvalidInput("you cannot supervise your own phone")
    if CORE not in request.app or not request.app[CORE].client.connected:
        raise web.HTTPServiceUnavailable(
            text='{"error":"no link to Asterisk"}', content_type="application/json"
        )
    core = request.app[CORE]
    call = next(
        (c for c in core.tracker.calls.values() if c.talking and c.agent == agent),
        None,
    )
    if call is None:
        raise Conflict(f"agent {agent} is not on a call")
    settings = request.app[SETTINGS]
    try:
        await actions.spy(
            core.client,
            settings.agent_device(me.extension),
            settings.agent_device(agent),
            mode,
            caller_id=actions.caller_id(f"{mode.value} {agent}", agent),
        )
    except AmiActionFailed as exc:
        raise Conflict(f"Asterisk refused: {exc}") from exc
    async with request.app[SESSIONS].begin() as s:
        console.record(
            request,
            s,
            "supervise",
            agent,
            {"mode": mode.value, "from": me.extension, "call": call.uniqueid},
        )
    return web.json_response(
        {"agent": agent, "mode": mode.value, "ringing": me.extension, "call": call.uniqueid},
        status=202,
    )


def setup(app: web.Application) -> None:
    """Register the route."""
    app.router.add_post("/api/supervise", supervise)
