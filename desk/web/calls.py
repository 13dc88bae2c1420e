"""The call journal over HTTP: GET /api/calls, GET /api/calls/{uniqueid}, and the call-log page."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import or_, select

from cti.asterisks import NAME_PATTERN
from cti.errors import InvalidInput, NotFound
from cti.journal import repo
from cti.journal.models import Call
from cti.types import CallOutcome
from desk.labels import CALL_OUTCOMES
from desk.models import Incident, Role
from desk.validation import when
from desk.web import media, recordings
from desk.web.auth import current, requires
from desk.web.i18n import language
from desk.web.keys import CORE, SESSIONS, SETTINGS
from desk.web.openapi import documented, string
from desk.web.templating import render

MAX_LIMIT = 500


@dataclass(frozen=True)
class CallsQuery:
    """Validated filters of GET /api/calls."""

    since: datetime | None
    until: datetime | None
    outcome: str | None
    queue: str | None
    limit: int
    offset: int
    # One Asterisk's calls (cti/asterisks.py); None: every Asterisk's.
    asterisk: str | None = None


def _int(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name}: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise InvalidInput(f"{name}: must be between {low} and {high}")
    return value


def parse_calls_query(q: Mapping[str, str], tz: ZoneInfo) -> CallsQuery:
    """Validate the query string; dates without an offset are in the desk's time zone."""
    since = when("since", q["since"], tz, day_ok=True) if q.get("since") else None
    until = when("until", q["until"], tz, day_ok=True) if q.get("until") else None
    if since and until and until <= since:
        raise InvalidInput("until must be after since")
    outcome = q.get("outcome") or None
    if outcome and outcome != "live" and outcome not in CallOutcome.__members__.values():
        allowed = ", ".join(["live", *(o.value for o in CallOutcome)])
        raise InvalidInput(f"outcome: {outcome!r} is not one of {allowed}")
    return CallsQuery(
        since=since,
        until=until,
        outcome=outcome,
        queue=(q.get("queue") or None),
        limit=_int("limit", q.get("limit"), 50, 1, MAX_LIMIT),
        offset=_int("offset", q.get("offset"), 0, 0, 10**9),
        asterisk=_asterisk(q.get("asterisk")),
    )


def _asterisk(raw: str | None) -> str | None:
    """An Asterisk's name as a filter, or InvalidInput."""
    if not raw:
        return None
    if not NAME_PATTERN.match(raw):
        raise InvalidInput("asterisk: a name of lower-case letters, digits, - or _ is needed")
    return raw


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def call_json(c: Call) -> dict[str, Any]:
    """The public JSON form of a call record."""
    return {
        "asterisk": c.asterisk,
        "uniqueid": c.uniqueid,
        "linkedid": c.linkedid,
        "channel": c.channel,
        "caller_number": c.caller_number,
        "caller_name": c.caller_name,
        "dialled_number": c.dialled_number,
        "arrived_at": _iso(c.arrived_at),
        "ivr_entered_at": _iso(c.ivr_entered_at),
        "ivr_left_at": _iso(c.ivr_left_at),
        "queued_at": _iso(c.queued_at),
        "answered_at": _iso(c.answered_at),
        "talk_ended_at": _iso(c.talk_ended_at),
        "ended_at": _iso(c.ended_at),
        "queue": c.queue,
        "agent": c.agent,
        "offers": c.offers,
        "ring_no_answer": c.ring_no_answer,
        "outcome": c.outcome,
        "queue_status": c.queue_status,
        "complete_reason": c.complete_reason,
        "hangup_cause": c.hangup_cause,
        "wait_seconds": c.wait_seconds,
        "talk_seconds": c.talk_seconds,
        "hold_seconds": c.hold_seconds,
        "holds": c.holds,
        "incident_number": c.incident_number,
        "ivr_path": c.ivr_path,
        "language": c.language,
        "survey_score": c.survey_score,
        "source": c.source,
        "inferred": c.inferred,
        "overflows": c.overflows,
        "callback_of": c.callback_of,
        "acw_seconds": c.acw_seconds,
    }


async def _query(request: web.Request) -> tuple[CallsQuery, list[Call], int]:
    q = parse_calls_query(request.query, request.app[SETTINGS].tz)
    async with request.app[SESSIONS]() as session:
        rows, total = await repo.list_calls(
            session,
            since=q.since,
            until=q.until,
            outcome=q.outcome,
            queue=q.queue,
            asterisk=q.asterisk,
            limit=q.limit,
            offset=q.offset,
        )
    return q, list(rows), total


@documented(
    query={
        "since": {"type": "string", "format": "date-time"},
        "until": {"type": "string", "format": "date-time"},
        "outcome": {"enum": ["live", *(o.value for o in CallOutcome)]},
        "queue": string(80),
        "asterisk": string(40, pattern="^[a-z0-9][a-z0-9_-]*$"),
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        "offset": {"type": "integer", "minimum": 0},
    }
)
@requires(Role.AGENT)
async def get_calls(request: web.Request) -> web.Response:
    """GET /api/calls: newest first; filters since, until, outcome, queue, asterisk; limit and
    offset."""
    q, rows, total = await _query(request)
    return web.json_response(
        {
            "total": total,
            "limit": q.limit,
            "offset": q.offset,
            "calls": [call_json(c) for c in rows],
        }
    )


@documented(responses=(404,), query={"asterisk": string(40, pattern="^[a-z0-9][a-z0-9_-]*$")})
@requires(Role.AGENT)
async def get_call(request: web.Request) -> web.Response:
    """GET /api/calls/{uniqueid}(?asterisk=): a Uniqueid is unique on one Asterisk only; without
    `asterisk`, the first Asterisk's call that has it."""
    uniqueid = request.match_info["uniqueid"]
    asterisk = _asterisk(request.query.get("asterisk"))
    stmt = select(Call).where(Call.uniqueid == uniqueid)
    if asterisk is not None:
        stmt = stmt.where(Call.asterisk == asterisk)
    async with request.app[SESSIONS]() as session:
        row = await session.scalar(stmt.order_by(Call.id).limit(1))
    if row is None:
        raise NotFound(f"no call with uniqueid {uniqueid!r}")
    return web.json_response(call_json(row))


@requires(Role.AGENT)
async def calls_page(request: web.Request) -> web.Response:
    """GET /calls: the call-log page."""
    lang = language(request)
    q, rows, total = await _query(request)
    tz = request.app[SETTINGS].tz

    def query(offset: int) -> str:
        params = {k: v for k, v in request.query.items() if k != "offset"}
        return urlencode({**params, "offset": offset, "lang": lang})

    # Calls that left a voicemail (on their incident) play it from the log.
    async with request.app[SESSIONS]() as s:
        left = await s.execute(
            select(Incident.call_uniqueid, Incident.number).where(
                Incident.recording.is_not(None),
                or_(
                    Incident.call_uniqueid.in_([c.uniqueid for c in rows]),
                    Incident.number.in_([c.incident_number for c in rows if c.incident_number]),
                ),
            )
        )
        with_voicemail = {u for pair in left.all() for u in pair if u}
        # The call recordings this member of staff may hear (an agent: their own calls').
        me = current(request)
        assert me is not None  # @requires ran first
        heard = await recordings.playable(s, me, calls=[c.uniqueid for c in rows])
    calls = []
    for c in rows:
        item = call_json(c)
        item["arrived_local"] = c.arrived_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        left_one = c.uniqueid in with_voicemail or c.incident_number in with_voicemail
        item["voicemail_url"] = media.call_url(c.uniqueid) if left_one else None
        item["recordings"] = heard.get(c.uniqueid, [])
        calls.append(item)
    response = render(
        "calls.html",
        lang=lang,
        calls=calls,
        total=total,
        outcome=q.outcome,
        queue=q.queue,
        outcomes=CALL_OUTCOMES,
        ami_up=request.app[CORE].client.connected if CORE in request.app else False,
        prev_offset=max(0, q.offset - q.limit) if q.offset else None,
        next_offset=q.offset + q.limit if q.offset + q.limit < total else None,
        query=query,
    )
    response.set_cookie("cti_lang", lang, httponly=True, samesite="Lax")
    return response


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/calls", get_calls)
    app.router.add_get("/api/calls/{uniqueid}", get_call)
    app.router.add_get("/calls", calls_page)
