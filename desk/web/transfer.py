"""Transfer from the agent page: blind to a colleague's phone, to another queue (the second
line) or to an outside number; attended to a colleague (the agent talks to them first while the
caller waits, then completes or cancels). The caller keeps their incident; the colleague's page
pops with it as soon as their phone rings; the journal keeps one row for the call with each
agent's part (legs)."""

from typing import Any

from aiohttp import web
from sqlalchemy import select

from cti.ami import actions
from cti.errors import AmiActionFailed, Conflict, InvalidInput
from cti.live.model import LiveCall
from cti.phone import digits, normalize
from cti.runtime import CtiCore
from desk.models import Role, Staff
from desk.validation import queue_name, text_field
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import CORE, PLAN, SESSIONS, SETTINGS
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of

KINDS = ("agent", "queue", "outside")


async def _target(
    request: web.Request, me: Staff, body: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    """(exten in [cti-transfer], channel variables) for the body's kind and target."""
    kind = body.get("kind")
    if kind not in KINDS:
        raise InvalidInput("kind: one of " + ", ".join(KINDS))
    to = text_field(body, "to", 80, required=True) or ""
    settings = request.app[SETTINGS]
    if kind == "agent":
        if not digits(to) or len(to) > 20:
            raise InvalidInput("to: a colleague's extension (digits)")
        if to == me.extension:
            raise InvalidInput("to: that is your own phone")
        async with request.app[SESSIONS]() as s:
            known = await s.scalar(select(Staff.id).where(Staff.extension == to))
        if known is None:
            raise InvalidInput(f"to: nobody has extension {to}")
        return "agent", {"CTI_TRANSFER_AGENT": to, "CTI_TRANSFER_DEVICE": settings.agent_device(to)}
    if kind == "queue":
        name = queue_name("to", to)
        if CORE in request.app and name not in request.app[CORE].queues.queues():
            raise InvalidInput(f"to: no queue {name!r}")
        return "queue", {"CTI_TRANSFER_QUEUE": name}
    number = normalize(to, request.app[PLAN])
    if not number.usable or number.key is None or number.key.startswith("ext:"):
        raise InvalidInput(f"to: {to!r} is not an outside number")
    dial = number.key.removeprefix("+86")
    dial = dial if dial.startswith("1") else "0" + dial
    return "outside", {"CTI_TRANSFER_NUMBER": dial}


@documented(
    responses=(202, 409, 503),
    body=obj(
        {
            "kind": string(10, enum=list(KINDS)),
            "to": string(80),
            "mode": string(10, enum=["blind", "attended"]),
        },
        ("kind", "to"),
    ),
)
@requires(Role.AGENT)
async def transfer(request: web.Request) -> web.Response:
    """POST /api/agent/me/transfer {kind, to, mode?}: transfer my current call, blind (the
    default) or attended (I talk to the colleague first, then complete or cancel)."""
    body = await body_of(request)
    me = current(request)
    assert me is not None  # @requires ran first
    if not me.extension:
        raise InvalidInput("you have no desk phone (extension)")
    exten, variables = await _target(request, me, body)
    attended = body.get("mode", "blind")
    if attended not in ("blind", "attended"):
        raise InvalidInput("mode: blind or attended")
    if attended == "attended" and exten != "agent":
        raise InvalidInput("mode: an attended transfer goes to a colleague (kind agent)")
    core = _core(request)
    call, leg = await _my_call(request, me.extension)
    if call.consulting:
        raise Conflict(f"a transfer to {call.consulting} is under way: complete or cancel it")
    try:
        if attended == "attended":
            # The consultation call starts on the agent's side (Atxfer keys the feature code
            # into the agent's leg): it inherits what [cti-atxfer] needs.
            await actions.set_var(core.client, leg, "__CTI_CALLER_UID", call.uniqueid)
            await actions.set_var(
                core.client, leg, "__CTI_TRANSFER_DEVICE", variables["CTI_TRANSFER_DEVICE"]
            )
            await actions.attended_transfer(
                core.client, leg, "cti-atxfer", variables["CTI_TRANSFER_AGENT"]
            )
        else:
            for name, value in variables.items():
                await actions.set_var(core.client, call.channel, name, value)
            await actions.blind_transfer(core.client, leg, "cti-transfer", exten)
    except AmiActionFailed as exc:
        # Asterisk refused (the leg went away meanwhile, a transfer already under way …).
        raise Conflict(f"Asterisk refused the transfer: {exc}") from exc
    async with request.app[SESSIONS].begin() as s:
        console.record(
            request,
            s,
            "transfer",
            call.uniqueid,
            {"kind": exten, "mode": attended, "to": body.get("to"), "from": me.extension},
        )
    return web.json_response(
        {"call": call.uniqueid, "kind": exten, "to": body.get("to")}, status=202
    )


def _core(request: web.Request) -> CtiCore:
    if CORE not in request.app or not request.app[CORE].client.connected:
        raise web.HTTPServiceUnavailable(
            text='{"error":"no link to Asterisk"}', content_type="application/json"
        )
    return request.app[CORE]


async def _my_call(request: web.Request, ext: str) -> tuple[LiveCall, str]:
    """(my current call, my phone's leg of it: the channel Asterisk transfers from)."""
    core = request.app[CORE]
    call = next((c for c in core.tracker.calls.values() if c.talking and c.agent == ext), None)
    if call is None:
        raise Conflict("you are not on a call")
    prefix = actions.spy_prefix(request.app[SETTINGS].agent_device(ext))
    legs = sorted(
        c.channel
        for c in await actions.core_show_channels(core.client)
        if c.linkedid == call.linkedid and c.channel.startswith(prefix)
    )
    if not legs:
        raise Conflict("your phone's leg of the call is gone")
    return call, legs[0]


@documented(
    responses=(202, 409, 503),
    body=obj({"action": string(10, enum=["complete", "cancel"])}, ("action",)),
)
@requires(Role.AGENT)
async def finish_attended(request: web.Request) -> web.Response:
    """POST /api/agent/me/transfer/attended {action}: complete my attended transfer (my phone
    hangs up; the caller now talks to the colleague) or cancel it (back to the caller)."""
    body = await body_of(request)
    me = current(request)
    assert me is not None  # @requires ran first
    action = body.get("action")
    if action not in ("complete", "cancel"):
        raise InvalidInput("action: complete or cancel")
    if not me.extension:
        raise InvalidInput("you have no desk phone (extension)")
    core = _core(request)
    call, leg = await _my_call(request, me.extension)
    if not call.consulting:
        raise Conflict("no attended transfer of yours is under way")
    to = call.consulting
    try:
        if action == "complete":
            # The transferer hanging up completes an attended transfer (features.conf).
            await actions.hangup(core.client, leg)
        else:
            await actions.cancel_attended_transfer(core.client, leg)
    except AmiActionFailed as exc:
        raise Conflict(f"Asterisk refused: {exc}") from exc
    async with request.app[SESSIONS].begin() as s:
        console.record(
            request, s, f"transfer_{action}", call.uniqueid, {"to": to, "from": me.extension}
        )
    return web.json_response({"call": call.uniqueid, "action": action, "to": to}, status=202)


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_post("/api/agent/me/transfer", transfer)
    app.router.add_post("/api/agent/me/transfer/attended", finish_attended)
