"""Staff pages that are not the agent's own: the home redirect, the incident workbench and an
incident's detail page, the desk's WebSocket, and the static files the pages load (scripts are
files, never inline, so the CSP forbids injected ones)."""

from pathlib import Path

from aiohttp import web
from sqlalchemy import select

from cti.phone import digits
from desk import sla
from desk.i18n import translate
from desk.labels import INCIDENT_STATES, INCIDENT_TYPES
from desk.models import ConfigItem, Incident, Role, Staff
from desk.web.auth import WEB_SESSION, current, open_socket, requires
from desk.web.i18n import language, script_texts
from desk.web.keys import SESSIONS
from desk.web.messages import DESK, MessageType
from desk.web.templating import render

STATIC = Path(__file__).parent / "static"
HOME = {Role.AGENT.value: "/agent", Role.LEAD.value: "/incidents", Role.ADMIN.value: "/incidents"}


async def index(request: web.Request) -> web.Response:
    """GET /: staff go to their home page, everyone else to the self-service portal."""
    staff = current(request)
    raise web.HTTPFound(HOME.get(staff.role, "/agent") if staff else "/portal")


def _page(request: web.Request, template: str, **context: object) -> web.Response:
    lang = language(request)
    ws = request.get(WEB_SESSION)
    return render(
        template,
        lang=lang,
        texts=script_texts(lang),
        staff=current(request),
        csrf=ws.csrf if ws else "",
        **context,
    )


async def _choices(request: web.Request) -> dict[str, object]:
    lang = language(request)
    async with request.app[SESSIONS]() as s:
        policy = await sla.load(s)
        staff = (
            await s.scalars(select(Staff).where(Staff.active.is_(True)).order_by(Staff.username))
        ).all()
        items = (await s.scalars(select(ConfigItem.name).order_by(ConfigItem.name))).all()
    return {
        "states": [(k, translate(lang, v)) for k, v in INCIDENT_STATES.items()],
        "types": [(k, translate(lang, v)) for k, v in INCIDENT_TYPES.items()],
        "groups": [g.name for g in policy.groups],
        "services": [s.name for s in policy.services],
        "staff_list": staff,
        "config_items": items,
        "admin_group": policy.admin_group,
    }


@requires(Role.AGENT)
async def incidents_page(request: web.Request) -> web.Response:
    """GET /incidents: the workbench — every incident, filtered, sorted and paged, with its age
    and SLA standing (5.2.2 d); a form to open one by hand."""
    return _page(request, "incidents.html", **(await _choices(request)))


@requires(Role.AGENT)
async def incident_page(request: web.Request) -> web.Response:
    """GET /incidents/{number}: one incident, its whole history, calls, voicemail and every
    action."""
    number = request.match_info["number"]
    if not digits(number) or len(number) > 20:
        raise web.HTTPNotFound(text="no such incident")
    async with request.app[SESSIONS]() as s:
        found = await s.scalar(select(Incident.id).where(Incident.number == number))
    if found is None:
        raise web.HTTPNotFound(text="no such incident")
    return _page(request, "incident.html", number=number, **(await _choices(request)))


@requires(Role.AGENT)
async def desk_ws(request: web.Request) -> web.WebSocketResponse:
    """GET /ws/desk: news for the whole desk (a new voicemail, a breach)."""
    return await open_socket(request, {DESK}, {"type": MessageType.HELLO.value})


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/", index)
    app.router.add_get("/incidents", incidents_page)
    app.router.add_get("/incidents/{number}", incident_page)
    app.router.add_get("/ws/desk", desk_ws)
    app.router.add_static("/static", STATIC, append_version=True)
