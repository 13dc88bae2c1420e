"""Supervision from the wallboard: a lead listens to, whispers to (coaches) or barges in on an
agent's call. The lead's own phone rings first (ChanSpy runs once it is answered); every use is
written to the audit log. The spy leg ends with the agent's part of the call (SpyReaper)."""

import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from cti.ami import actions
from cti.ami.actions import SpyMode
from cti.ami.client import AmiClient
from cti.errors import AmiActionFailed, Conflict, InvalidInput
from cti.live.bus import Bus, CallEvent, CallEventKind
from cti.phone import digits
from cti.tasks import Background
from desk.models import Role
from desk.validation import text_field
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import CORE, SESSIONS, SETTINGS
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of

logger = logging.getLogger(__name__)


class SpyReaper:
    """Ends the supervisors' ChanSpy legs on an agent once the agent's part of the call is over
    (the agent or the caller hung up, the call moved to a colleague): ChanSpy's own E option
    does not notice while the supervisor's phone sends nothing (see actions.end_spies). Only
    agents someone started to supervise are watched, so other calls cost no AMI request."""

    def __init__(self, bus: Bus, client: AmiClient, device: Callable[[str], str]) -> None:
        self.client = client
        self.device = device
        self.watched: set[str] = set()
        self.ended = 0  # spy legs hung up (for tests and /metrics)
        self.tasks = Background(logger)
        self._unsubscribe = bus.subscribe(CallEvent, self._call)

    def watch(self, agent: str) -> None:
        """A supervisor was just rung to spy on `agent`'s call."""
        self.watched.add(agent)

    def _call(self, event: CallEvent) -> None:
        agent = event.call.agent
        if (
            event.kind in (CallEventKind.TALK_ENDED, CallEventKind.CALL_ENDED)
            and agent in self.watched
        ):
            self.watched.discard(agent)
            self.tasks.spawn(self._reap(agent))

    async def _reap(self, agent: str) -> None:
        gone = await actions.end_spies(self.client, self.device(agent))
        self.ended += len(gone)
        if gone:
            logger.info("spy legs on agent %s ended with the call: %s", agent, ", ".join(gone))

    async def close(self) -> None:
        """Stop listening and cancel what is still running."""
        self._unsubscribe()
        await self.tasks.close()


REAPER = web.AppKey("spy_reaper", SpyReaper)


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
    if REAPER in request.app:
        request.app[REAPER].watch(agent)
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
