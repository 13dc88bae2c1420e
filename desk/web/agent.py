"""Login, the agent's own state and screen pop (REST + WebSocket), and caller details edits."""

import time
from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import web
from sqlalchemy import String, select

from cti.asterisks import NAME_PATTERN
from cti.errors import InvalidInput, NotFound
from cti.live.model import AgentState
from cti.phone import normalize
from cti.runtime import CtiCore
from desk import audit, directory
from desk.i18n import translations
from desk.models import Role, Staff, User, WebSession
from desk.staff import staff_by_username, staff_json, start_session
from desk.validation import email_address, record_id, text_field
from desk.web.auth import (
    COOKIE,
    WEB_SESSION,
    checks_own_credentials,
    current,
    open_socket,
    remote,
    requires,
    same_site_path,
    set_cookie,
)
from desk.web.i18n import language, script_texts
from desk.web.keys import (
    CORE,
    CORES,
    HUB,
    LDAP_LOGIN,
    LIMITER,
    PASSWORDS,
    PLAN,
    POP,
    SESSIONS,
    SETTINGS,
)
from desk.web.limits import login_keys, too_many
from desk.web.messages import DESK, MessageType, agent_topic
from desk.web.nodes import NODE, NotOwned
from desk.web.notifier import agent_json
from desk.web.openapi import documented, obj, string
from desk.web.pages import HOME
from desk.web.templating import render
from desk.web.validation import body_of, check_text

# An agent page's hello on a node without the AMI link: the owner is asked for the agent's live
# state for up to LIVE_ASK_SECONDS, each ask waiting LIVE_ASK_EACH for its answer.
LIVE_ASK_SECONDS = 3.0
LIVE_ASK_EACH = 0.5

# As long as the directory's columns hold (PostgreSQL refuses longer text with an error).
USER_FIELD_LENGTHS: dict[str, int] = {
    key: cast(String, User.__table__.c[key].type).length or 200 for key in directory.FIELDS[1:]
}


async def _login(request: web.Request, username: str, password: str) -> tuple[Staff, WebSession]:
    address = remote(request)
    limiter = request.app[LIMITER]
    keys = login_keys(username, address)
    # Counted before anything is awaited: parallel guesses cannot all pass the check.
    ticket = limiter.acquire(keys)
    if ticket is None:
        raise too_many("too many failed logins; wait a few minutes")
    async with request.app[SESSIONS]() as s:
        staff = await staff_by_username(s, username)
    ok = await request.app[PASSWORDS].verify(staff.password_hash if staff else None, password)
    if not ok and staff is not None and staff.active and LDAP_LOGIN in request.app:
        ok = await request.app[LDAP_LOGIN].verify(username, password)
    if not ok or staff is None or not staff.active:
        async with request.app[SESSIONS].begin() as s:
            audit.record(s, username, "login.fail", username, address=address)
        raise web.HTTPUnauthorized(
            text='{"error":"wrong user name or password"}', content_type="application/json"
        )
    limiter.release(ticket)
    limiter.forget(keys[0][0])  # this pair's earlier failures
    async with request.app[SESSIONS].begin() as s:
        ws = await start_session(s, staff, datetime.now(UTC))
        audit.record(s, username, "login", username, address=address)
    return staff, ws


@documented(
    responses=(401, 429),
    body=obj({"username": string(60), "password": string(200)}, ("username", "password")),
)
@checks_own_credentials
async def api_login(request: web.Request) -> web.Response:
    """POST /api/login {username, password} -> {staff, csrf} and the session cookie."""
    body = await body_of(request)
    username = text_field(body, "username", 60, required=True) or ""
    password = body.get("password")
    if not isinstance(password, str) or not password:
        raise InvalidInput("password is required")
    staff, ws = await _login(request, username, password)
    resp = web.json_response({"staff": staff_json(staff), "csrf": ws.csrf})
    set_cookie(resp, ws.id, request.secure or request.app[SETTINGS].effective_secure_cookies)
    return resp


async def login_page(request: web.Request) -> web.Response:
    """GET /login."""
    lang = language(request)
    return render("login.html", lang=lang, error=None, next=request.query.get("next", ""))


@checks_own_credentials
async def login_form(request: web.Request) -> web.Response:
    """POST /login (form)."""
    lang = language(request)
    form = await request.post()
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    nxt = str(form.get("next", ""))
    check_text("username", username)
    try:
        staff, ws = await _login(request, username[:60], password[:200])
    except (web.HTTPUnauthorized, web.HTTPTooManyRequests) as exc:
        _ = translations(lang).gettext
        error = (
            _("Too many failed logins; try again in a few minutes")
            if isinstance(exc, web.HTTPTooManyRequests)
            else _("Wrong user name or password")
        )
        resp = render("login.html", lang=lang, error=error, next=nxt)
        resp.set_status(exc.status)
        return resp
    target = same_site_path(nxt) or HOME.get(staff.role, "/agent")
    resp = web.HTTPFound(target)
    set_cookie(resp, ws.id, request.secure or request.app[SETTINGS].effective_secure_cookies)
    raise resp


async def logout(request: web.Request) -> web.Response:
    """POST /logout: end the session."""
    ws: WebSession | None = request.get(WEB_SESSION)
    if ws is not None:
        async with request.app[SESSIONS].begin() as s:
            row = await s.get(WebSession, ws.id)
            if row is not None:
                await s.delete(row)
        await request.app[HUB].end_session(ws.id)
    resp = web.HTTPFound("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


def _ext(request: web.Request) -> str:
    staff = current(request)
    assert staff is not None
    if not staff.extension:
        raise InvalidInput("you have no desk phone (extension)")
    return staff.extension


def agent_core(app: web.Application, ext: str, asterisk: Any = None) -> CtiCore:
    """The core of the Asterisk whose phone the agent works at: the one named (`asterisk`, when
    logging in), else the one the agent is logged in at, else the default one. An agent logs in
    at one site's phone; another Asterisk's agent of the same extension is another agent."""
    cores = app.get(CORES, {})
    if asterisk is not None:
        if not isinstance(asterisk, str) or not NAME_PATTERN.match(asterisk):
            raise InvalidInput("asterisk: a name of lower-case letters, digits, - or _ is needed")
        if asterisk not in cores:
            raise InvalidInput(f"asterisk must be one of {', '.join(cores) or 'main'}")
        return cores[asterisk]
    for core in cores.values():
        if core.agents.agents.get(ext) is not None and core.agents.agents[ext].queues:
            return core
    return app[CORE]


async def _me_body(request: web.Request) -> dict[str, Any]:
    staff = current(request)
    assert staff is not None
    body: dict[str, Any] = {"staff": staff_json(staff), "agent": None, "pop": None}
    if staff.extension and CORE in request.app:
        body.update(await live_of(request.app, staff.extension))
    elif staff.extension and NODE in request.app:  # the owner of the AMI link knows
        # Asked again every half second for up to 3 s: an ask published while no node holds
        # the link (a takeover) is heard by nobody, and the new owner answers only the asks it
        # receives once its job runs (read-only: asking twice is harmless).
        node, deadline = request.app[NODE], time.monotonic() + LIVE_ASK_SECONDS
        while True:
            try:
                live = await node.ask("agent_live", {"ext": staff.extension}, LIVE_ASK_EACH)
            except NotOwned:
                if time.monotonic() < deadline:
                    continue
                break
            if isinstance(live, dict):
                body.update({k: live.get(k) for k in ("agent", "pop", "asterisk")})
            break
    return body


async def live_of(app: web.Application, ext: str) -> dict[str, Any]:
    """Agent `ext`'s state, the Asterisk they work at and the pop of the call ringing or
    answered at their phone, from the live state of the node that holds the AMI links."""
    core = agent_core(app, ext)
    out: dict[str, Any] = {
        "agent": agent_json(core.agents.agent(ext).view()),
        "asterisk": core.server.name,
        "pop": None,
    }
    found = app[POP].current(core.tracker, ext)
    if found is not None:
        call, phase = found
        out["pop"] = {"type": MessageType.POP.value, **await app[POP].build(call, phase)}
    return out


@requires(Role.AGENT)
async def me(request: web.Request) -> web.Response:
    """GET /api/agent/me: who I am, my state, and the call ringing or answered at my phone."""
    return web.json_response(await _me_body(request))


@documented(
    responses=(202, 503),
    body=obj(
        {
            "state": {"enum": [s.value for s in AgentState]},
            "reason": string(60),
            "seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
            "asterisk": string(40, pattern="^[a-z0-9][a-z0-9_-]*$"),
        },
        ("state",),
    ),
)
@requires(Role.AGENT)
async def set_state(request: web.Request) -> web.Response:
    """POST /api/agent/me/state {state: ready|paused|wrap_up|logged_out, reason, asterisk}
    (asterisk: the Asterisk whose phone to log in at, with several; default: where the agent
    is logged in, else the default one)."""
    body = await body_of(request)
    ext = _ext(request)
    staff = current(request)
    assert staff is not None
    queues = [q for q in staff.queues.split(",") if q]
    if CORE in request.app:
        changed = await apply_state(request.app, ext, queues, body)
    elif NODE in request.app:  # another node holds the AMI link (desk/web/nodes.py)
        try:
            changed = await request.app[NODE].ask(
                "agent_state", {"ext": ext, "queues": queues, "body": body}
            )
        except NotOwned:
            changed = None
    else:
        changed = None
    if changed is None:
        raise web.HTTPServiceUnavailable(
            text='{"error":"no link to Asterisk"}', content_type="application/json"
        )
    return web.json_response(changed, status=202)


async def apply_state(
    app: web.Application, ext: str, queues: list[str], body: dict[str, Any]
) -> dict[str, Any]:
    """Change agent `ext`'s state as `body` asks, on the node that holds the AMI links."""
    core = agent_core(app, ext, body.get("asterisk"))
    agents = core.agents
    state = body.get("state")
    if state == AgentState.READY:
        if not agents.agent(ext).queues:
            await agents.login(ext, queues)
        else:
            await agents.set_paused(ext, False)
    elif state == AgentState.PAUSED:
        await agents.set_paused(ext, True, text_field(body, "reason", 60, required=True) or "")
    elif state == AgentState.WRAP_UP:
        seconds = body.get("seconds", app[SETTINGS].wrapup_seconds)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise InvalidInput("seconds must be between 1 and 3600")
        if not 0 < seconds <= 3600:
            raise InvalidInput("seconds must be between 1 and 3600")
        await agents.start_wrapup(ext, float(seconds))
    elif state == AgentState.LOGGED_OUT:
        await agents.logout(ext)
    else:
        raise InvalidInput("state must be ready, paused, wrap_up or logged_out")
    return {
        "requested": state,
        "agent": agent_json(agents.agent(ext).view()),
        "asterisk": core.server.name,
    }


@requires(Role.AGENT)
async def agent_ws(request: web.Request) -> web.WebSocketResponse:
    """GET /ws/agent: this agent's pops and state changes, nobody else's."""
    ext = _ext(request)
    hello = {"type": MessageType.HELLO.value, **(await _me_body(request))}
    return await open_socket(request, {agent_topic(ext), DESK}, hello)


@requires(Role.AGENT)
async def agent_page(request: web.Request) -> web.Response:
    """GET /agent: the agent's screen-pop page."""
    lang = language(request)
    staff = current(request)
    assert staff is not None
    ws = request.get(WEB_SESSION)
    return render(
        "agent.html",
        lang=lang,
        texts=script_texts(lang),
        staff=staff,
        csrf=ws.csrf if ws else "",
        softphone=request.app[SETTINGS].softphone_for(staff.extension),
    )


@documented(query={"q": string(60, minLength=1)})
@requires(Role.AGENT)
async def find_users(request: web.Request) -> web.Response:
    """GET /api/users?q=: by employee number, name or phone."""
    q = request.query.get("q", "").strip()
    if not q or len(q) > 60:
        raise InvalidInput("q: 1 to 60 characters")
    async with request.app[SESSIONS]() as s:
        found: list[User] = []
        key = normalize(q, request.app[PLAN]).key
        if key:
            found += list(await directory.find_by_key(s, key))
        like = f"%{q}%"
        rows = await s.scalars(
            select(User).where((User.employee_no == q) | (User.name.like(like))).limit(20)
        )
        found += [u for u in rows.all() if u not in found]
    return web.json_response({"users": [directory.user_json(u) for u in found[:20]]})


@documented(body=obj({k: string(USER_FIELD_LENGTHS[k]) for k in directory.FIELDS[1:]}))
@requires(Role.AGENT)
async def update_user(request: web.Request) -> web.Response:
    """PATCH /api/users/{id}: the agent confirms or corrects the caller's details (6.3.1.3)."""
    body = await body_of(request)
    staff = current(request)
    assert staff is not None
    user_id = record_id("user id", request.match_info["id"])
    async with request.app[SESSIONS].begin() as s:
        user = await s.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        data = {k: getattr(user, k) for k in directory.FIELDS}
        for key in directory.FIELDS[1:]:
            value = text_field(body, key, USER_FIELD_LENGTHS[key])
            if value is not None:
                data[key] = value
        if body.get("email"):  # one mailbox: the directory's own check lets "a@b.c,d" by
            email_address("email", data["email"])
        plan = request.app[PLAN]
        user, changed = await directory.upsert_user(
            s, data, by=f"{staff.name} ({staff.username})", now=datetime.now(UTC), plan=plan
        )
        if changed:
            audit.record(
                s,
                staff.username,
                "user.update",
                f"{user.employee_no} {user.name}",
                {"fields": changed},
                remote(request),
            )
    return web.json_response({"user": directory.user_json(user), "changed": changed})


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_post("/api/login", api_login)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_form)
    app.router.add_post("/logout", logout)
    app.router.add_get("/api/agent/me", me)
    app.router.add_post("/api/agent/me/state", set_state)
    app.router.add_get("/ws/agent", agent_ws)
    app.router.add_get("/agent", agent_page)
    app.router.add_get("/api/users", find_users)
    app.router.add_patch("/api/users/{id}", update_user)
