"""Incidents over HTTP for agents: the open list with ages and SLA timers (5.2.2 d), classify,
note, take, resolve, escalate (group and reason), reopen, close with the user's confirmation,
progress notices by e-mail (5.2.2 e), new incidents, and click-to-call."""

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, or_, select, update

from cti.ami import actions
from cti.errors import Conflict, InvalidInput, NotFound
from cti.ivr.ports import NewIncident
from cti.journal.models import Call
from cti.phone import digits, normalize
from desk import accounts, directory, handoff, incidents, sla
from desk.i18n import Msg, translate
from desk.incidents import incident_json
from desk.mail.messages import list_messages
from desk.models import (
    ConfigItem,
    Incident,
    IncidentEvent,
    IncidentState,
    IncidentType,
    Role,
    Staff,
    User,
)
from desk.notify import NEWS_HEADLINE, STATE_HEADLINES
from desk.validation import incident_number, text_field, whole_number
from desk.web import alerts, console, media, recordings
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
    number = incident_number(request.match_info["number"])
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


def _sort_column(name: str) -> Any:
    """The column a sort key orders by (the SLA due time is computed per row)."""
    if name == "due":
        return sla.next_due_column()
    return {
        "created": Incident.created_at,
        "updated": Incident.updated_at,
        "priority": Incident.priority,
        "number": Incident.number,
        "state": Incident.state,
    }[name]


_SORTS = ("due", "created", "updated", "priority", "number", "state")
_SEARCHED = (
    "number",
    "symptom",
    "category",
    "requester_name",
    "requester_department",
    "caller_number",
    "assignee",
    "config_item",
    "service",
    "account",
    "escalated_to",
)


def _like(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _query_int(q: Any, key: str, default: int, low: int, high: int) -> int:
    raw = q.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{key} must be a whole number") from None
    if not low <= value <= high:
        raise InvalidInput(f"{key} must be from {low} to {high}")
    return value


@documented(
    query={
        "state": {"enum": ["open", "all", *(s.value for s in S)]},
        "mine": {"enum": ["0", "1", "true", "false"]},
        "assignee": string(60),
        "group": string(120),
        "priority": {"type": "integer", "minimum": 1, "maximum": 4},
        "sla": {"enum": ["breached", "due_soon", "ok"]},
        "q": string(200),
        "sort": {"enum": list(_SORTS)},
        "order": {"enum": ["asc", "desc"]},
        "page": {"type": "integer", "minimum": 1},
        "limit": {"type": "integer", "minimum": 1, "maximum": 500},
    }
)
@requires(Role.AGENT)
async def list_incidents(request: web.Request) -> web.Response:
    """GET /api/incidents?state=&mine=&assignee=&group=&priority=&sla=&q=&sort=&order=&page=
    &limit=: filtered, sorted and paged in the database over every matching incident (the SLA
    due time first by default: the most overdue lead)."""
    q = request.query
    state = q.get("state", "open")
    valid = {"open", "all", *(s.value for s in S)}
    if state not in valid:
        raise InvalidInput(f"state must be one of {', '.join(sorted(valid))}")
    limit = _query_int(q, "limit", 200, 1, 500)
    page = _query_int(q, "page", 1, 1, 100_000)
    priority = _query_int(q, "priority", 0, 1, 4) if q.get("priority") else None
    sort = q.get("sort", "due")
    if sort not in _SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(_SORTS)}")
    order = q.get("order", "asc")
    if order not in ("asc", "desc"):
        raise InvalidInput("order must be asc or desc")
    standing = q.get("sla", "")
    if standing not in ("", "breached", "due_soon", "ok"):
        raise InvalidInput("sla must be breached, due_soon or ok")
    text = q.get("q", "")
    if len(text) > 200 or "\x00" in text:
        raise InvalidInput("q: at most 200 characters of text")
    now = datetime.now(UTC)
    conds: list[Any] = []
    if state == "open":
        conds.append(Incident.state.in_([s.value for s in OPEN]))
    elif state != "all":
        conds.append(Incident.state == state)
    if q.get("mine") in ("1", "true"):
        conds.append(Incident.assignee == _me(request).username)
    assignee = q.get("assignee", "")
    if assignee == "-":
        conds.append(Incident.assignee.is_(None))
    elif assignee:
        conds.append(Incident.assignee == assignee[:60])
    if q.get("group"):
        conds.append(Incident.escalated_to == q["group"][:120])
    if priority is not None:
        conds.append(Incident.priority == priority)
    for term in text.split()[:8]:
        pattern = _like(term)
        conds.append(or_(*(getattr(Incident, c).ilike(pattern, escape="\\") for c in _SEARCHED)))
    async with request.app[SESSIONS]() as s:
        policy = await sla.load(s)
        if standing == "breached":
            conds.append(sla.breached_clause(now))
        elif standing == "due_soon":
            conds.append(sla.due_soon_clause(now, policy.due_soon_minutes))
        elif standing == "ok":
            conds.append(~sla.breached_clause(now))
            conds.append(~sla.due_soon_clause(now, policy.due_soon_minutes))
        total = await s.scalar(select(func.count()).select_from(Incident).where(*conds))
        column = _sort_column(sort)
        ordered = column.asc().nulls_last() if order == "asc" else column.desc().nulls_last()
        rows = (
            await s.scalars(
                select(Incident)
                .where(*conds)
                .order_by(ordered, Incident.id.desc() if order == "desc" else Incident.id)
                .limit(limit)
                .offset((page - 1) * limit)
            )
        ).all()
    return web.json_response(
        {
            "incidents": [incident_json(i, now, policy.due_soon_minutes) for i in rows],
            "total": total or 0,
            "page": page,
            "limit": limit,
        }
    )


async def detail(session: Any, inc: Incident, now: datetime) -> dict[str, Any]:
    """The incident with its history, its calls (and those of duplicates merged into it), its
    parent, children and duplicates, and where its voicemail plays."""
    policy = await sla.load(session)
    events = (
        await session.scalars(
            select(IncidentEvent)
            .where(IncidentEvent.incident_id == inc.id)
            .order_by(IncidentEvent.id)
        )
    ).all()
    merged = (
        await session.scalars(
            select(Incident).where(Incident.merged_into == inc.number).order_by(Incident.id)
        )
    ).all()
    numbers = [inc.number, *(m.number for m in merged)]
    calls = (
        await session.scalars(
            select(Call).where(Call.incident_number.in_(numbers)).order_by(Call.arrived_at)
        )
    ).all()
    children = (
        await session.scalars(
            select(Incident).where(Incident.parent_id == inc.id).order_by(Incident.id)
        )
    ).all()
    parent = await session.get(Incident, inc.parent_id) if inc.parent_id else None
    body = incident_json(inc, now, policy.due_soon_minutes)
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
    recordings = {m.number: m.recording for m in (inc, *merged) if m.recording}
    body["calls"] = [
        {
            "uniqueid": c.uniqueid,
            "arrived_at": c.arrived_at.isoformat(),
            "caller_number": c.caller_number,
            "queue": c.queue,
            "agent": c.agent,
            "outcome": c.outcome,
            "talk_seconds": c.talk_seconds,
            "incident_number": c.incident_number,
            "recording_url": media.call_url(c.uniqueid)
            if c.incident_number in recordings
            else None,
        }
        for c in calls
    ]
    body["recording_url"] = media.incident_url(inc.number) if inc.recording else None
    # E-mails sent and received about it (and about duplicates merged into it), oldest first.
    body["emails"] = sorted(
        [m for i in (inc, *merged) for m in await list_messages(session, i.id)],
        key=lambda m: str(m["at"]),
    )
    body["parent"] = _brief(parent) if parent else None
    body["children"] = [_brief(c) for c in children]
    body["duplicates"] = [_brief(m) for m in merged]
    return body


def _brief(i: Incident) -> dict[str, Any]:
    return {
        "number": i.number,
        "state": i.state,
        "category": i.category,
        "requester": i.requester_name or i.caller_number,
    }


@requires(Role.AGENT)
async def get_incident(request: web.Request) -> web.Response:
    """GET /api/incidents/{number}: the incident, its history, calls, parent and children."""
    async with request.app[SESSIONS]() as s:
        inc = await _load(s, request)
        body = await detail(s, inc, datetime.now(UTC))
        # Each call's recordings this member of staff may hear (an agent: their own calls').
        me = current(request)
        assert me is not None  # @requires ran first
        heard = await recordings.playable(s, me, calls=[c["uniqueid"] for c in body["calls"]])
        for c in body["calls"]:
            c["recordings"] = heard.get(c["uniqueid"], [])
    return web.json_response(body)


_CREATE = obj(
    {
        "type": {"enum": [t.value for t in IncidentType]},
        "symptom": string(5000),
        "category": string(200),
        "channel": {"enum": ["phone", "email", "web", "voicemail", "walk_in"]},
        "priority": {"type": "integer", "minimum": 1, "maximum": 4},
        "user_id": {"type": "integer", "minimum": 1},
        "caller_number": string(40),
        "call_uniqueid": string(150),
        "service": string(120),
        "config_item": string(120),
        "account": string(120),
    },
    ("type", "symptom"),
)
CHANNELS = ("phone", "email", "web", "voicemail", "walk_in")


async def _config_item(session: Any, value: str | None) -> str | None:
    """A configuration item named on an incident must be one of the CMDB's ("" clears it)."""
    if not value:
        return value
    if await session.scalar(select(ConfigItem.id).where(ConfigItem.name == value)) is None:
        raise InvalidInput(f"config_item: no configuration item {value!r} in the CMDB")
    return value


def _service(policy: sla.Policy, value: str | None) -> str | None:
    if value and not any(sv.name == value for sv in policy.services):
        raise InvalidInput(f"service: no service {value!r} in the catalogue")
    return value


@documented(responses=(201,), body=_CREATE)
@requires(Role.AGENT)
async def create_incident(request: web.Request) -> web.Response:
    """POST /api/incidents: an agent records a request by hand (a walk-in, a call that came
    before the system, a call without IVR)."""
    body = await body_of(request)
    me = _me(request)
    kind = text_field(body, "type", 20, required=True)
    if kind not in {t.value for t in IncidentType}:
        raise InvalidInput(f"type must be one of {', '.join(t.value for t in IncidentType)}")
    symptom = text_field(body, "symptom", 5000, required=True) or ""
    category = text_field(body, "category", 200) or ""
    channel = text_field(body, "channel", 20) or "phone"
    if channel not in CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}")
    priority = whole_number(body, "priority", 1, 4)
    account = text_field(body, "account", 120) or None
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        policy = await sla.load(s)
        service = _service(policy, text_field(body, "service", 120)) or None
        item = await _config_item(s, text_field(body, "config_item", 120)) or None
        requester = None
        user_id = whole_number(body, "user_id", 1, 2**63 - 1)
        user = None
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
        inc.service, inc.config_item, inc.account = service, item, account
        if priority is not None and priority != inc.priority:
            inc.priority = priority
            sla.stamp(inc, policy, await sla.load_hours(s))
        incidents.responded(inc, now)
        refusal = await accounts.guard(s, inc, policy, now)
    out = incident_json(inc)
    out["refused"] = refusal
    return web.json_response(out, status=201)


@documented(
    responses=(409,),
    body=obj(
        {
            "type": {"enum": [t.value for t in IncidentType]},
            "priority": {"type": "integer", "minimum": 1, "maximum": 4},
            "category": string(200),
            "symptom": string(5000),
            "config_item": string(120),
            "service": string(120),
            "account": string(120),
        }
    ),
)
@requires(Role.AGENT)
async def classify(request: web.Request) -> web.Response:
    """PATCH /api/incidents/{number}: type, category, priority, symptom, configuration item
    (from the CMDB), service (from the catalogue), the account a request is about."""
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
    for key, limit in (
        ("category", 200),
        ("symptom", 5000),
        ("config_item", 120),
        ("service", 120),
        ("account", 120),
    ):
        value = text_field(body, key, limit)
        if value is not None:
            changes[key] = value
    if not changes:
        raise InvalidInput(
            "nothing to change (type, category, priority, symptom, config_item, service, account)"
        )
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        policy = await sla.load(s)
        if "config_item" in changes:
            changes["config_item"] = await _config_item(s, changes["config_item"]) or None
        if "service" in changes:
            changes["service"] = _service(policy, changes["service"]) or None
        if "account" in changes:
            changes["account"] = changes["account"] or None
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
                        text=f"{key}: {getattr(inc, key) or ''} → {value or ''}",
                    )
                )
                setattr(inc, key, value)
                if key == "priority":
                    sla.stamp(inc, policy, await sla.load_hours(s))
        inc.updated_at = now
        refusal = await accounts.guard(s, inc, policy, now)
    out = incident_json(inc, now, policy.due_soon_minutes)
    out["refused"] = refusal
    return web.json_response(out)


async def _transition(
    request: web.Request,
    to: IncidentState,
    *,
    note_required: bool,
    default_notice: bool,
    extra: Any = None,
    after: Any = None,
) -> web.Response:
    body = await body_of(request)
    me = _me(request)
    text = text_field(body, "text", 5000, required=note_required) or ""
    notice = _wants_notice(body, default_notice)
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        inc = await _load(s, request)
        if inc.merged_into:
            raise Conflict(f"incident {inc.number} was merged into {inc.merged_into}")
        if extra is not None:
            text = extra(inc, body, text)
        await incidents.change_state(s, inc, to, by=_by(me), now=now, text=text)
        inc.assignee = inc.assignee or me.username
        incidents.responded(inc, now)
        sent = None
        if notice and to in STATE_HEADLINES:
            sent = await _notify(request, s, inc, STATE_HEADLINES[to], text, _by(me))
        more = await after(s, inc, text, notice) if after is not None else None
    out = incident_json(inc)
    out["notice"] = sent
    if more is not None:
        out.update(more)
    return web.json_response(out)


async def _start(s: Any, inc: Incident, by: str, now: datetime) -> None:
    """New -> in progress, unless someone else just did it."""
    try:
        await incidents.change_state(s, inc, S.IN_PROGRESS, by=by, now=now)
    except Conflict:
        await s.refresh(inc)


def _reassign(s: Any, inc: Incident, username: str, by: str, now: datetime) -> None:
    """Hand the incident to `username`, with an "assign" event in its history (none when it is
    theirs already)."""
    if inc.assignee == username:
        return
    s.add(
        IncidentEvent(
            incident_id=inc.id,
            at=now,
            by=by,
            kind="assign",
            text=f"{inc.assignee or '-'} → {username}",
        )
    )
    inc.assignee = username
    inc.updated_at = now


@documented(responses=(409,))
@requires(Role.AGENT)
async def take(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/take: mine, in progress."""
    me = _me(request)
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        inc = await _load(s, request)
        if inc.state == S.CLOSED:
            raise Conflict(f"incident {inc.number} is closed")
        if inc.state == S.NEW:
            await _start(s, inc, _by(me), now)
        _reassign(s, inc, me.username, _by(me), now)
        inc.updated_at = now
        incidents.responded(inc, now)
    return web.json_response(incident_json(inc))


@documented(responses=(409,), body=obj({"assignee": string(60)}, ("assignee",)))
@requires(Role.AGENT)
async def assign(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/assign {assignee}: hand it to a member of staff (told on
    their agent page)."""
    body = await body_of(request)
    me = _me(request)
    username = text_field(body, "assignee", 60, required=True) or ""
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        staff = await s.scalar(select(Staff).where(Staff.username == username))
        if staff is None or not staff.active:
            raise InvalidInput(f"assignee: no active member of staff {username!r}")
        inc = await _load(s, request)
        if inc.state == S.CLOSED:
            raise Conflict(f"incident {inc.number} is closed")
        _reassign(s, inc, username, _by(me), now)
        if inc.state == S.NEW:
            await _start(s, inc, _by(me), now)
        incidents.responded(inc, now)
        ext = staff.extension
    if ext:
        alerts.to_agent(request.app, ext, "assigned", inc.number, inc.category)
    return web.json_response(incident_json(inc))


async def _resolve_children(
    request: web.Request, s: Any, parent: Incident, text: str, by: str, now: datetime
) -> dict[str, Any]:
    """Resolving an outage resolves its open children and tells each child's requester."""
    children = (
        await s.scalars(
            select(Incident)
            .where(Incident.parent_id == parent.id, Incident.state.in_(list(sla.UNRESOLVED)))
            .order_by(Incident.id)
        )
    ).all()
    out = []
    for child in children:
        note = f"{text} (→ {parent.number})"
        await incidents.change_state(s, child, S.RESOLVED, by=by, now=now, text=note)
        child.first_line_resolved = child.escalated_to is None
        sent = await _notify(request, s, child, STATE_HEADLINES[S.RESOLVED], note, by)
        out.append({"number": child.number, "notice": sent})
    return {"children_resolved": out}


@documented(responses=(409,), body=_NOTE)
@requires(Role.AGENT)
async def resolve(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/resolve {text, notify}: solved (first line unless
    escalated); an outage's open children are resolved with it, each requester told."""

    def mark(inc: Incident, _body: dict[str, Any], text: str) -> str:
        inc.first_line_resolved = inc.escalated_to is None
        return text

    me = _me(request)

    async def children(s: Any, inc: Incident, text: str, _notice: bool) -> dict[str, Any]:
        return await _resolve_children(request, s, inc, text, _by(me), datetime.now(UTC))

    return await _transition(
        request, S.RESOLVED, note_required=True, default_notice=True, extra=mark, after=children
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
    """POST /api/incidents/{number}/escalate {to: incident|problem, group, reason, notify}: the
    group's mailbox (the service catalogue) gets the hand-off."""
    body = await body_of(request)
    to = body.get("to", "incident")
    if to not in ("incident", "problem"):
        raise InvalidInput("to must be incident (management) or problem (management)")
    group = text_field(body, "group", 120, required=True) or ""
    reason = text_field(body, "reason", 2000, required=True) or ""
    me = _me(request)

    def mark(inc: Incident, _body: dict[str, Any], _text: str) -> str:
        inc.escalated_to = group
        return f"→ {group}: {reason}"

    async def hand_off(s: Any, inc: Incident, _text: str, _notice: bool) -> dict[str, Any]:
        return {"handoff": await _hand_off(request, s, inc, group, reason, _by(me))}

    target = S.ESCALATED_INCIDENT if to == "incident" else S.ESCALATED_PROBLEM
    return await _transition(
        request, target, note_required=False, default_notice=True, extra=mark, after=hand_off
    )


async def _hand_off(
    request: web.Request, s: Any, inc: Incident, group: str, reason: str, by: str
) -> dict[str, Any]:
    """E-mail the escalated incident to its group's mailbox, and record it (or why not)."""
    now = datetime.now(UTC)
    found = (await sla.load(s)).group(group)
    mailer = request.app[MAILER]
    if found is None or not found.email:
        s.add(
            IncidentEvent(
                incident_id=inc.id,
                at=now,
                by=by,
                kind="handoff_skipped",
                text=f"no mailbox for {group} in the service catalogue",
            )
        )
        return {"sent": False, "reason": "no mailbox for the group in the service catalogue"}
    try:
        error = await mailer.send(
            handoff.compose_handoff(inc, group, found.email, reason, mailer.smtp.sender)
        )
    except InvalidInput as exc:
        error = str(exc)
    s.add(
        IncidentEvent(
            incident_id=inc.id,
            at=now,
            by=by,
            kind="handoff" if error is None else "handoff_failed",
            text=f"to {found.email}: {error or group}",
        )
    )
    return {"sent": error is None, "to": found.email, "error": error}


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
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        inc = await _load(s, request)
        s.add(IncidentEvent(incident_id=inc.id, at=now, by=_by(me), kind="note", text=text))
        incidents.responded(inc, now)
        inc.updated_at = now
        sent = await _notify(request, s, inc, NEWS_HEADLINE, text, _by(me)) if notice else None
    return web.json_response({"number": inc.number, "notice": sent}, status=201)


@documented(responses=(409,), body=obj({"into": string(20, pattern="^[0-9]+$")}, ("into",)))
@requires(Role.AGENT)
async def merge(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/merge {into}: this one is a duplicate of `into`: closed,
    pointing at it; its calls and voicemail show on the one kept."""
    body = await body_of(request)
    me = _me(request)
    into = text_field(body, "into", 20, required=True) or ""
    if not digits(into):
        raise InvalidInput("into must be an incident number")
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        dup = await _load(s, request)
        try:
            kept = await incidents.get(s, into)
        except NotFound:
            raise InvalidInput(f"into: no incident {into}") from None
        if kept.id == dup.id:
            raise InvalidInput("an incident cannot be merged into itself")
        if dup.state == S.CLOSED:
            raise Conflict(f"incident {dup.number} is closed")
        if kept.state == S.CLOSED or kept.merged_into:
            raise Conflict(f"incident {kept.number} is closed: merge into an open one")
        # Merging is a closure by the desk, outside the requester's confirmation (6.3.3): the
        # request lives on in the incident kept. One conditional UPDATE, so two merges of the
        # same duplicate at once cannot both win.
        from_state = dup.state
        done = await s.execute(
            update(Incident)
            .where(Incident.id == dup.id, Incident.state != S.CLOSED.value)
            .values(state=S.CLOSED.value, closed_at=now, updated_at=now, merged_into=kept.number)
            .returning(Incident.id)
            .execution_options(synchronize_session=False)
        )
        if done.scalar_one_or_none() is None:
            raise Conflict(f"incident {dup.number} is closed")
        await s.refresh(dup)
        s.add(
            IncidentEvent(
                incident_id=dup.id,
                at=now,
                by=_by(me),
                kind="merged",
                from_state=from_state,
                to_state=S.CLOSED.value,
                text=f"duplicate of {kept.number}",
            )
        )
        s.add(
            IncidentEvent(
                incident_id=kept.id,
                at=now,
                by=_by(me),
                kind="merged",
                text=f"{dup.number} merged into this incident: {dup.symptom[:500]}",
            )
        )
        kept.updated_at = now
        for child in (await s.scalars(select(Incident).where(Incident.parent_id == dup.id))).all():
            child.parent_id = kept.id
    return web.json_response(incident_json(dup))


@documented(responses=(409,), body=obj({"parent": {"type": ["string", "null"], "maxLength": 20}}))
@requires(Role.AGENT)
async def set_parent(request: web.Request) -> web.Response:
    """POST /api/incidents/{number}/parent {parent}: a child of an outage incident (null: no
    longer). One level: a parent is no one's child."""
    body = await body_of(request)
    me = _me(request)
    raw = body.get("parent")
    if raw is not None and (not isinstance(raw, str) or not digits(raw) or len(raw) > 20):
        raise InvalidInput("parent must be an incident number or null")
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        child = await _load(s, request)
        if raw is None:
            if child.parent_id is not None:
                s.add(
                    IncidentEvent(
                        incident_id=child.id, at=now, by=_by(me), kind="parent", text="no parent"
                    )
                )
            child.parent_id = None
        else:
            try:
                parent = await incidents.get(s, raw)
            except NotFound:
                raise InvalidInput(f"parent: no incident {raw}") from None
            if parent.id == child.id:
                raise InvalidInput("an incident cannot be its own parent")
            if parent.parent_id is not None:
                raise Conflict(f"incident {parent.number} is itself a child")
            if await s.scalar(select(Incident.id).where(Incident.parent_id == child.id).limit(1)):
                raise Conflict(f"incident {child.number} has children: it cannot be a child")
            if parent.state == S.CLOSED or child.state == S.CLOSED:
                raise Conflict("closed incidents cannot be linked")
            child.parent_id = parent.id
            for inc, text in (
                (child, f"child of {parent.number}"),
                (parent, f"{child.number} is a child"),
            ):
                s.add(
                    IncidentEvent(incident_id=inc.id, at=now, by=_by(me), kind="parent", text=text)
                )
        child.updated_at = now
    return web.json_response(incident_json(child))


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
    if incident and not digits(incident):
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
    app.router.add_post("/api/incidents/{number}/assign", assign)
    app.router.add_post("/api/incidents/{number}/merge", merge)
    app.router.add_post("/api/incidents/{number}/parent", set_parent)
    app.router.add_post("/api/incidents/{number}/notes", add_note)
    app.router.add_post("/api/incidents/{number}/resolve", resolve)
    app.router.add_post("/api/incidents/{number}/escalate", escalate)
    app.router.add_post("/api/incidents/{number}/reopen", reopen)
    app.router.add_post("/api/incidents/{number}/close", close)
    app.router.add_post("/api/click-to-call", click_to_call)
