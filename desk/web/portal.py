"""The self-service portal (4.2 i), open to every employee without a login: look up an incident by
its number and the phone it was reported from, read announcements and the knowledge base, and
submit a request (channel = web) that gets a number like a phoned-in one.

Lookups are rate-limited per address (a number and a phone must both match, and guessing is slow).
The HTML forms carry a double-submit token (cookie + hidden field); the JSON endpoints accept only
`application/json`, which a cross-site form cannot send without a CORS preflight we never grant.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import InvalidInput, NotFound
from cti.ivr.ports import NewIncident
from cti.phone import NumberPlan, digits, normalize
from desk import accounts, announcements, directory, incidents, sla
from desk.i18n import translate, translations
from desk.labels import REQUESTER_STATES
from desk.models import Incident, IncidentEvent, IncidentType
from desk.validation import email_address, text_field
from desk.web import published
from desk.web.auth import remote
from desk.web.i18n import language
from desk.web.keys import KNOWLEDGE, PLAN, PORTAL_LIMITER, SESSIONS, SETTINGS
from desk.web.limits import PORTAL_LOOKUP, PORTAL_SUBMIT, too_many
from desk.web.openapi import documented, obj, string
from desk.web.portal_forms import token_ok, token_page
from desk.web.validation import body_of

# What a portal request may be filed under: a fixed list, as the IVR's menu has. A free text here
# would let anyone write the subject line of the desk's e-mails.
CATEGORIES = (
    "故障报告",
    "密码重置",
    "账号开通与变更",
    "软件安装",
    "硬件",
    "网络",
    "邮件",
    "其他服务请求",
    "咨询",
)
# Requests about an account or its password must name the account (6.2).
ACCOUNT_CATEGORIES = ("密码重置", "账号开通与变更")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _plan(request: web.Request) -> NumberPlan:
    return request.config_dict[PLAN]


def public_incident(i: Incident, lang: str) -> dict[str, Any]:
    """What a requester may see of their incident (no notes, no other people's data)."""
    return {
        "number": i.number,
        "state": i.state,
        "state_text": (
            translate(lang, REQUESTER_STATES[i.state]) if i.state in REQUESTER_STATES else i.state
        ),
        "type": i.type,
        "category": i.category,
        "created_at": i.created_at.isoformat(),
        "updated_at": i.updated_at.isoformat(),
        "resolved_at": i.resolved_at.isoformat() if i.resolved_at else None,
    }


async def lookup(request: web.Request, session: AsyncSession, number: str, phone: str) -> Incident:
    """The incident with this number, if `phone` is one the incident was reported from (or one of
    its requester's phones). Failures count against the caller's address only."""
    number = number.strip()
    if not digits(number) or not 6 <= len(number) <= 20:
        raise InvalidInput("an incident number is 9 or more digits")
    key = normalize(phone, _plan(request)).key
    if not key:
        raise InvalidInput("give the phone number the incident was reported from")
    limiter = request.config_dict[PORTAL_LIMITER]
    # Counted before anything is awaited: parallel guesses cannot all pass the check.
    ticket = limiter.acquire([(f"lookup:{remote(request)}", PORTAL_LOOKUP)])
    if ticket is None:
        raise too_many("too many failed lookups; try again in ten minutes")
    try:
        inc = await incidents.get(session, number)
    except NotFound:
        inc = None
    keys = set()
    if inc is not None:
        keys = {inc.caller_key} | {
            normalize(p, _plan(request)).key
            for p in (inc.requester_mobile, inc.requester_office_phone)
            if p
        }
    if inc is None or key not in keys:
        raise NotFound("no incident with this number was reported from this phone")
    limiter.release(ticket)
    return inc


async def submit(request: web.Request, session: AsyncSession, fields: dict[str, str]) -> Incident:
    """A request from the portal. Nothing typed here proves who sent it: the requester's
    directory record is attached only when the phone given is one of its numbers (and, if an
    employee number was typed, that record's), notices go only to a directory address, and the
    incident's history says on what grounds (and what was typed but not believed)."""
    plan = _plan(request)
    kind = fields.get("type") or IncidentType.SERVICE_REQUEST.value
    if kind not in {t.value for t in IncidentType}:
        raise InvalidInput("type must be fault, service_request or consultation")
    symptom = fields.get("symptom", "").strip()
    if not symptom:
        raise InvalidInput("describe the problem or request")
    if len(symptom) > 5000:
        raise InvalidInput("the description is longer than 5000 characters")
    phone = fields.get("phone", "").strip()
    key = normalize(phone, plan).key if phone else None
    if not key:
        raise InvalidInput("give a phone number where the desk can reach you")
    account = fields.get("account", "").strip()
    if fields.get("category") in ACCOUNT_CATEGORIES and not account:
        raise InvalidInput("account: name the account this password or account request is about")
    # Counted before anything is awaited, like lookups: a flood from one address stops here.
    limiter = request.config_dict[PORTAL_LIMITER]
    if limiter.acquire([(f"submit:{remote(request)}", PORTAL_SUBMIT)]) is None:
        raise too_many("too many requests from your address; try again later")
    remarks = []
    at_phone = list(await directory.find_by_key(session, key))
    typed = fields.get("employee_no", "").strip()
    user = None
    if typed:
        named = await directory.find_by_employee(session, typed)
        if named is not None and any(u.id == named.id for u in at_phone):
            user = named
        else:
            remarks.append(
                f"employee number {typed} was typed on the web form, but the phone given is not "
                "in that directory record: not verified, no requester attached"
            )
    elif len(at_phone) == 1:
        user = at_phone[0]
    if user is not None:
        remarks.append(
            f"requester {user.name} ({user.employee_no}) attached because the phone given on the "
            "web form is in their directory record (not verified that they sent it)"
        )
    if fields.get("email"):
        remarks.append(
            f"e-mail typed on the web form (not verified; notices go only to the directory's "
            f"address): {fields['email']}"
        )
    requester = directory.requester_of(user) if user else None
    new = NewIncident(
        kind,
        fields.get("category", ""),
        symptom,
        "web",
        phone[:80],
        key,
        requester,
        "",
        fields.get("language", "zh"),
        "portal",
    )
    now = datetime.now(UTC)
    inc = await incidents.create(
        session,
        new,
        recorded_by="web",
        now=now,
        local_day=now.astimezone(request.config_dict[SETTINGS].tz).date(),
    )
    if requester is None:
        inc.requester_name = fields.get("name", "")[:120]
        inc.requester_mobile = phone[:60]
    inc.account = account or None
    for remark in ["submitted through the self-service portal", *remarks]:
        session.add(IncidentEvent(incident_id=inc.id, at=now, by="web", kind="note", text=remark))
    return inc


def _form_fields(body: dict[str, Any]) -> dict[str, str]:
    out = {}
    for key, limit in (
        ("type", 20),
        ("category", 200),
        ("symptom", 5000),
        ("phone", 40),
        ("employee_no", 40),
        ("name", 120),
        ("email", 200),
        ("language", 8),
        ("account", 120),
    ):
        value = text_field(body, key, limit)
        if value is not None:
            out[key] = value
    if out.get("email"):
        email_address("email", out["email"])
    if out.get("category") and out["category"] not in CATEGORIES:
        raise InvalidInput(f"category must be one of {', '.join(CATEGORIES)}")
    if out.get("language", "zh") not in ("zh", "en"):
        raise InvalidInput("language must be zh or en")
    return out


def _json_only(request: web.Request) -> None:
    if request.content_type != "application/json":
        raise web.HTTPUnsupportedMediaType(
            text='{"error":"send application/json"}', content_type="application/json"
        )


# -- JSON API ---------------------------------------------------------------------------------


@documented(responses=(429,), query={"phone": string(40)})
async def refusal_of(session: AsyncSession, inc: Incident, lang: str) -> str | None:
    """6.2: a request naming a privileged account is refused (the reason, in `lang`) and routed
    to the administrators' group."""
    reason = await accounts.guard(session, inc, await sla.load(session), datetime.now(UTC))
    return reason[lang] if reason else None


async def api_lookup(request: web.Request) -> web.Response:
    """GET /portal/api/incidents/{number}?phone=: the incident's state, for its requester."""
    lang = language(request)
    async with request.config_dict[SESSIONS]() as s:
        inc = await lookup(request, s, request.match_info["number"], request.query.get("phone", ""))
    return web.json_response(public_incident(inc, lang))


@documented(
    responses=(201, 415, 429),
    body=obj(
        {
            "type": {"enum": [t.value for t in IncidentType]},
            "symptom": string(5000),
            "phone": string(40),
            "category": {"enum": list(CATEGORIES)},
            "employee_no": string(40),
            "name": string(120),
            "email": string(200, format="email"),
            "language": {"enum": ["zh", "en"]},
            "account": string(120),
        },
        ("symptom", "phone"),
    ),
)
async def api_submit(request: web.Request) -> web.Response:
    """POST /portal/api/requests {type, symptom, phone, category?, employee_no?, name?, email?}:
    its number. The requester's record is attached only when the phone is in it."""
    _json_only(request)
    fields = _form_fields(await body_of(request))
    lang = language(request)
    async with request.config_dict[SESSIONS].begin() as s:
        inc = await submit(request, s, fields)
        refused = await refusal_of(s, inc, fields.get("language") or lang)
    return web.json_response({**public_incident(inc, lang), "refused": refused}, status=201)


async def api_announcements(request: web.Request) -> web.Response:
    """GET /portal/api/announcements: the ones in force now."""
    async with request.config_dict[SESSIONS]() as s:
        rows = await announcements.active(s, datetime.now(UTC))
    keep = ("id", "kind", "title", "text_zh", "text_en", "service", "starts_at", "ends_at")
    return web.json_response(
        {
            "announcements": [
                {k: v for k, v in announcements.as_json(a).items() if k in keep} for a in rows
            ]
        }
    )


@documented(query={"q": string(200, minLength=1)})
async def api_knowledge(request: web.Request) -> web.Response:
    """GET /portal/api/knowledge?q=: published articles, ranked."""
    q = request.query.get("q", "")
    if not q.strip() or len(q) > 200:
        raise InvalidInput("q: 1 to 200 characters")
    found = await request.config_dict[KNOWLEDGE].match(q, published_only=True)
    return web.json_response({"knowledge": found["knowledge"]})


# -- pages ------------------------------------------------------------------------------------


async def _page(request: web.Request, status: int = 200, **extra: Any) -> web.Response:
    async with request.config_dict[SESSIONS]() as s:
        active = await announcements.active(s, datetime.now(UTC))
    q = request.query.get("q", "").strip()[:200]
    knowledge = request.config_dict[KNOWLEDGE]
    articles = (await knowledge.match(q, published_only=True))["knowledge"] if q else []
    context: dict[str, Any] = {
        "announcements": active,
        "q": q,
        "articles": articles,
        "found": None,
        "created": None,
        "error": None,
        "refused": None,
        "categories": CATEGORIES,
        "form": {},
        "subscribed": None,
        "published": await published.publication(request.config_dict),
    }
    context.update(extra)
    return token_page(request, "portal.html", status, **context)


async def portal_page(request: web.Request) -> web.Response:
    """GET /portal."""
    return await _page(request)


async def portal_post(request: web.Request) -> web.Response:
    """POST /portal/lookup and /portal/requests (HTML forms)."""
    form = await request.post()
    lang = language(request)
    _ = translations(lang).gettext
    if not token_ok(request, form):
        return await _page(request, 403, error=_("This page expired; please submit again"))
    data = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    try:
        if request.path.endswith("/lookup"):
            async with request.config_dict[SESSIONS]() as s:
                inc = await lookup(request, s, data.get("number", ""), data.get("phone", ""))
            return await _page(request, found=public_incident(inc, lang))
        data["language"] = lang
        async with request.config_dict[SESSIONS].begin() as s:
            inc = await submit(request, s, _form_fields(data))
            refused = await refusal_of(s, inc, lang)
        return await _page(request, 201, created=public_incident(inc, lang), refused=refused)
    except (InvalidInput, NotFound) as exc:
        status = 404 if isinstance(exc, NotFound) else 400
        return await _page(request, status, error=str(exc), form=data)
    except web.HTTPTooManyRequests:
        error = (
            _("Too many failed lookups; try again in ten minutes")
            if request.path.endswith("/lookup")
            else _("Too many requests from this address; try again later")
        )
        return await _page(request, 429, error=error, form=data)


@web.middleware
async def portal_policy(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The portal's own rules (it has no staff sessions): nothing it answers is cached."""
    response = await handler(request)
    response.headers["Cache-Control"] = "no-store"
    return response


def setup(app: web.Application) -> None:
    """Mount the portal: a sub-application at /portal with its own policy (no staff session, no
    staff CSRF token: its forms carry their own token, its JSON API takes JSON only)."""
    portal = web.Application(middlewares=[portal_policy])  # reads the desk's keys by config_dict
    portal.router.add_get("", portal_page)
    portal.router.add_post("/lookup", portal_post)
    portal.router.add_post("/requests", portal_post)
    portal.router.add_get("/api/incidents/{number}", api_lookup)
    portal.router.add_post("/api/requests", api_submit)
    portal.router.add_get("/api/announcements", api_announcements)
    portal.router.add_get("/api/knowledge", api_knowledge)
    published.add_routes(portal)
    app.add_subapp("/portal", portal)
