"""Incidents over HTTP for agents: the open list with ages and SLA timers (5.2.2 d), classify,
note, take, resolve, escalate (group and reason), reopen, close with the user's confirmation,
progress notices by e-mail (5.2.2 e), new incidents, and click-to-call."""

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from cti.ami import actions
from cti.errors import Conflict, InvalidInput
from cti.ivr.ports import NewIncident
from cti.journal.models import Call
from cti.phone import normalize
from desk import directory, incidents
from desk.i18n import Msg, translate
from desk.incidents import incident_json, sla_due
from desk.models import Incident, IncidentEvent, IncidentState, IncidentType, Role, Staff, User
from desk.notify import NEWS_HEADLINE, STATE_HEADLINES
from desk.validation import text_field, whole_number
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import CORE, MAILER, PLAN, SESSIONS, SETTINGS
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of

S = IncidentState
# A state change's or a note's body.
_NOTE = obj({"text": string(5000), "notify": {"type": "boolean"}})
OPEN = [S.NEW, S.IN_PROGRESS, S.ESCALATED_INCIDENT, S.ESCALATED_PROBLEM, S.RESOLVED]


def _me(request: web.Request) -> Staff:
    staff = current(request)
    assert staff is not None  # @requires ran first
    return staff


def _by(staff: Staff) -> str:
    return f"{staff.name} ({staff.username})"


async def _load(session: Any, request: web.Request) -> Incident:
    number = request.match_info["number"]
    if not number.isdigit() or len(number) > 20:
        raise InvalidInput(f"{number!r} is not an incident number")
    return await incidents.get(session, number)


async def _notify(
    request: web.Request,
    session: Any,
    incident: Incident,
    headline: Msg,
    text: str,
    by: str,
) -> dict[str, Any]:
    """E-mail the requester and record the notice (or why it could not be sent)."""
    now = datetime.now(UTC)
    if not incident.requester_email:
        session.add(
            IncidentEvent(
                incident_id=incident.id,
                at=now,
                by=by,
                kind="notice_skipped",
                text="no e-mail address for the requester",
            )
        )
        return {"sent": False, "reason": "no e-mail address for the requester"}
    mailer = request.app[MAILER]
    try:
        error = await mailer.send(mailer.compose(incident, headline, text))
    except InvalidInput as exc:  # an address from before addresses were checked: no 500
        error = str(exc)
    session.add(
        IncidentEvent(
            incident_id=incident.id,
            at=now,
            by=by,
            kind="notice" if error is None else "notice_failed",
            text=f"to {incident.requester_email}: {error or translate('en', headline)}",
        )
    )
    return {"sent": error is None, "to": incident.requester_email, "error": error}


def _wants_notice(body: dict[str, Any], default: bool) -> bool:
    value = body.get("notify", default)
    if not isinstance(value, bool):
        raise InvalidInput("notify must be true or false")
    return value


@documented(
    query={
        "state": {"enum": ["open", "all", *(s.value for s in S)]},
        "mine": {"enum": ["0", "1", "true", "false"]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
    }
)
@requires(Role.AGENT)
async def list_incidents(request: web.Request) -> web.Response:
    """GET /api/incidents?state=open|all|<state>&mine=1&limit=: by SLA due time."""
    q = request.query
    state = q.get("state", "open")
    valid = {"open", "all", *(s.value for s in S)}
    if state not in valid:
        raise InvalidInput(f"state must be one of {', '.join(sorted(valid))}")
    try:
        limit = min(500, max(1, int(q.get("limit", "200"))))
    except ValueError:
        raise InvalidInput("limit must be a whole number") from None
    stmt = select(Incident)
    if state == "open":
        stmt = stmt.where(Incident.state.in_([s.value for s in OPEN]))
    elif state != "all":
        stmt = stmt.where(Incident.state == state)
    if q.get("mine") in ("1", "true"):
        stmt = stmt.where(Incident.assignee == _me(request).username)
    async with request.app[SESSIONS]() as s:
        rows = (await s.scalars(stmt.order_by(Incident.created_at.desc()).limit(limit))).all()
    now = datetime.now(UTC)
    items = sorted(rows, key=sla_due)
    return web.json_response({"incidents": [incident_json(i, now) for i in items]})


@requires(Role.AGENT)
async def get_incident(request: web.Request) -> web.Response:
    """GET /api/incidents/{number}: the incident, its history and its calls."""
    async with request.app[SESSIONS]() as s:
        inc = await _load(s, request)
        events = (
            await s.scalars(
                select(IncidentEvent)
                .where(IncidentEvent.incident_id == inc.id)
                .order_by(IncidentEvent.id)
            )
        ).all()
        calls = (await s.scalars(select(Call).where(Call.incident_number == inc.number))).all()
    body = incident_json(inc)
    body["history"] = [
        {
            "at": e.at.isoformat(),
            "by": e.by,
            "kind": e.kind,
            "from": e.from_state,
            "to": e.to_state,
            "text": e.text,
        }
        for e in events
    ]
    body["calls"] = [
        {
            "uniqueid": c.uniqueid,
            "arrived_at": c.arrived_at.isoformat(),
            "agent": c.agent,
            "outcome": c.outcome,
        }
        for c in calls
    ]
    return web.json_response(body)


@documented(
    responses=(201,),
    body=obj(
        {
            "type": {"enum": [t.value for t in IncidentType]},
            "symptom": string(5000),
            "category": string(200),
            "channel": {"enum": ["phone", "email", "web", "voicemail"]},
            "user_id": {"type": "integer", "minimum": 1},
            "caller_number": string(40),
            "call_uniqueid": string(150),
        },
        ("type", "symptom"),
    ),
)
@requires(Role.AGENT)
async def create_incident(request: web.Request) -> web.Response:
    """POST /api/incidents: an agent records a request (a call without IVR, a walk-in...)."""
    body = await body_of(request)
    me = _me(request)
    kind = text_field(body, "type", 20, required=True)
    if kind not in {t.value for t in IncidentType}:
        raise InvalidInput(f"type must be one of {', '.join(t.value for t in IncidentType)}")
    symptom = text_field(body, "symptom", 5000, required=True) or ""
    category = text_field(body, "category", 200) or ""
    channel = text_field(body, "channel", 20) or "phone"
    if channel not in ("phone", "email", "web", "voicemail"):
        raise InvalidInput("channel must be phone, email, web or voicemail")
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        requester = None
        user_id = whole_number(body, "user_id", 1, 2**63 - 1)
        if user_id is not None:
            user = await s.get(User, user_id)
            if user is None:
                raise InvalidInput(f"user_id: no user {user_id}")
            requester = directory.requester_of(user)
        caller = text_field(body, "caller_number", 40) or ""
        key = normalize(caller, request.app[PLAN]).key if caller else None
        new = NewIncident(
            kind,
            category,
            symptom,
            channel,
            caller,
            key,
            requester,
            text_field(body, "call_uniqueid", 150) or "",
            "zh",
            "",
        )
        inc = await incidents.create(
            s,
            new,
            recorded_by=_by(me),
            now=now,
            local_day=now.astimezone(request.app[SETTINGS].tz).date(),
        )
        inc.assignee = me.username
    return web.json_response(incident_json(inc), status=201)


@documented(
    responses=(409,),
    body=obj(
        {
            "type": {"enum": [t.value for t in IncidentType]},
            "priority": {"type": "integer", "minimum": 1, "maximum": 4},
            "category": string(200),
            "symptom": string(5000),
            "config_item": string(120),
        }
    ),
)
@requires(Role.AGENT)
async def classify(request: web.Request) -> web.Response:
    """PATCH /api/incidents/{number}: type, category, priority, symptom, configuration item."""
    body = await body_of(request)
    me = _me(request)
    changes: dict[str, Any] = {}
    if "type" in body:
        if not isinstance(body["type"], str) or body["type"] not in set(IncidentType):
            raise InvalidInput(f"type must be one of {', '.join(t.value for t in IncidentType)}")
        changes["type"] = body["type"]
    if "priority" in body:
        if type(body["priority"]) is not int or body["priority"] not in (1, 2, 3, 4):
            raise InvalidInput("priority must be 1 (highest) to 4")
        changes["priority"] = body["priority"]
    for key, limit in (("category", 200), ("symptom", 5000), ("config_item", 120)):
        value = text_field(body, key, limit)
        if value is not None:
            changes[key] = value
    if not changes:
        raise InvalidInput("nothing to change (type, category, priority, symptom, config_item)")
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        inc = await _load(s, request)
        if inc.state == S.CLOSED:
            raise Conflict(f"incident {inc.number} is closed")
        for key, value in changes.items():
            if getattr(inc, key) != value:
                s.add(
                    IncidentEvent(
                        incident_id=inc.id,
                        at=now,
                        by=_by(me),
                        kind="classify",
                        text=f"{key}: {getattr(inc, key)} → {value}",
                    )
                )
                setattr(inc, key, value)
        inc.updated_at = now
    return web.json_response(incident_json(inc))


async def _transition(
    request: web.Request,
    to: IncidentState,
    *,
    note_required: bool,
    default_notice: bool,
    extra: Any = None,
) -> web.Response:
    body = await body_of(request)
    me = _me(request)
    text = text_field(body, "text", 5000, required=note_required) or ""
    notice = _wants_notice(body, default_notice)
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        inc = await _load(s, request)
        if extra is not None:
            text = extra(inc, body, text)
        await incidents.change_state(s, inc, to, by=_by(me), now=now, text=text)
        inc.assignee = inc.assignee or me.username
        sent = None
        if notice and to in STATE_HEADLINES:
            sent = await _notify(request, s, inc, STATE_HEADLINES[to], text, _by(me))
    out = incident_json(inc)
    out["notice"] = sent
    return web.json_response(out)


@documented(responses=(409,))
@requires(Role.AGENT)
async def take(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/take: mine, in progress."""
    me = _me(request)
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        inc = await _load(s, request)
        if inc.state == S.NEW:
            await incidents.change_state(s, inc, S.IN_PROGRESS, by=_by(me), now=now)
        inc.assignee = me.username
        inc.updated_at = now
    return web.json_response(incident_json(inc))


@documented(responses=(409,), body=_NOTE)
@requires(Role.AGENT)
async def resolve(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/resolve {text, notify}: solved (first line unless escalated)."""

    def mark(inc: Incident, _body: dict[str, Any], text: str) -> str:
        inc.first_line_resolved = inc.escalated_to is None
        return text

    return await _transition(
        request, S.RESOLVED, note_required=True, default_notice=True, extra=mark
    )


@documented(
    responses=(409,),
    body=obj(
        {
            "to": {"enum": ["incident", "problem"]},
            "group": string(120),
            "reason": string(2000),
            "notify": {"type": "boolean"},
        },
        ("group", "reason"),
    ),
)
@requires(Role.AGENT)
async def escalate(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/escalate {to: incident|problem, group, reason, notify}."""
    body = await body_of(request)
    to = body.get("to", "incident")
    if to not in ("incident", "problem"):
        raise InvalidInput("to must be incident (management) or problem (management)")
    group = text_field(body, "group", 120, required=True) or ""
    reason = text_field(body, "reason", 2000, required=True) or ""

    def mark(inc: Incident, _body: dict[str, Any], _text: str) -> str:
        inc.escalated_to = group
        return f"→ {group}: {reason}"

    target = S.ESCALATED_INCIDENT if to == "incident" else S.ESCALATED_PROBLEM
    return await _transition(request, target, note_required=False, default_notice=True, extra=mark)


@documented(responses=(409,), body=_NOTE)
@requires(Role.AGENT)
async def reopen(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/reopen {text}: back to in progress."""
    return await _transition(request, S.IN_PROGRESS, note_required=True, default_notice=False)


@documented(
    responses=(409,),
    body=obj({"confirmed": {"const": True}, "text": string(5000), "notify": {"type": "boolean"}}),
)
@requires(Role.AGENT)
async def close(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/close {confirmed: true, text}: only with the user's
    confirmation that the solution works (6.3.3)."""
    body = await body_of(request)
    if body.get("confirmed") is not True:
        raise InvalidInput("closing needs the user's confirmation: confirmed must be true")
    return await _transition(request, S.CLOSED, note_required=False, default_notice=True)


@documented(responses=(201,), body=_NOTE)
@requires(Role.AGENT)
async def add_note(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/notes {text, notify}: a note (optionally sent to the user)."""
    body = await body_of(request)
    me = _me(request)
    text = text_field(body, "text", 5000, required=True) or ""
    notice = _wants_notice(body, False)
    async with request.app[SESSIONS].begin() as s:
        inc = await _load(s, request)
        s.add(
            IncidentEvent(
                incident_id=inc.id, at=datetime.now(UTC), by=_by(me), kind="note", text=text
            )
        )
        sent = await _notify(request, s, inc, NEWS_HEADLINE, text, _by(me)) if notice else None
    return web.json_response({"number": inc.number, "notice": sent}, status=201)


@documented(
    responses=(202, 503),
    body=obj({"number": string(40), "incident": string(20, pattern="^[0-9]*$")}, ("number",)),
)
@requires(Role.AGENT)
async def click_to_call(request: web.Request) -> web.Response:
    """POST /api/click-to-call {number, incident?}: ring the agent's own phone, then the user."""
    body = await body_of(request)
    me = _me(request)
    raw = text_field(body, "number", 40, required=True) or ""
    number = normalize(raw, request.app[PLAN])
    if not number.usable or number.key is None:
        raise InvalidInput(f"{raw!r} is not a number that can be called")
    if not me.extension:
        raise InvalidInput("you have no desk phone (extension) to call from")
    incident = text_field(body, "incident", 20) or ""
    if incident and not incident.isdigit():
        raise InvalidInput("incident must be an incident number")
    if CORE not in request.app or not request.app[CORE].client.connected:
        raise web.HTTPServiceUnavailable(
            text='{"error":"no link to Asterisk"}', content_type="application/json"
        )
    dial = number.key[4:] if number.key.startswith("ext:") else _national(number.key)
    settings = request.app[SETTINGS]
    await actions.originate(
        request.app[CORE].client,
        actions.Originate(
            channel=settings.agent_device(me.extension),
            context="cti-click2call",
            exten=dial,
            caller_id=actions.caller_id(me.name, me.extension),
            timeout_ms=30_000,
            variables={"CTI_AGENT": me.extension, "CTI_INCIDENT": incident},
        ),
    )
    async with request.app[SESSIONS].begin() as s:
        console.record(
            request, s, "click_to_call", dial, {"from": me.extension, "incident": incident}
        )
    return web.json_response({"calling": dial, "from": me.extension}, status=202)


def _national(e164: str) -> str:
    """+8613800138000 -> 13800138000; +861062345678 -> 01062345678; others keep 00 + digits."""
    if e164.startswith("+861"):
        return e164[3:]
    if e164.startswith("+86"):
        return "0" + e164[3:]
    return "00" + e164[1:]


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/incidents", list_incidents)
    app.router.add_post("/api/incidents", create_incident)
    app.router.add_get("/api/incidents/{number}", get_incident)
    app.router.add_patch("/api/incidents/{number}", classify)
    app.router.add_post("/api/incidents/{number}/take", take)
    app.router.add_post("/api/incidents/{number}/notes", add_note)
    app.router.add_post("/api/incidents/{number}/resolve", resolve)
    app.router.add_post("/api/incidents/{number}/escalate", escalate)
    app.router.add_post("/api/incidents/{number}/reopen", reopen)
    app.router.add_post("/api/incidents/{number}/close", close)
    app.router.add_post("/api/click-to-call", click_to_call)
