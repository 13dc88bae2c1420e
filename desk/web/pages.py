"""Staff pages that are not the agent's own: the home redirect, the open-incident list, and the
static files the pages load (scripts are files, never inline, so the CSP forbids injected ones)."""

from pathlib import Path

from aiohttp import web

from desk.models import Role
from desk.web.auth import WEB_SESSION, current, requires
from desk.web.i18n import language, script_texts
from desk.web.templating import render

STATIC = Path(__file__).parent / "static"
HOME = {Role.AGENT.value: "/agent", Role.LEAD.value: "/incidents", Role.ADMIN.value: "/incidents"}


async def index(request: web.Request) -> web.Response:
    """GET /: staff go to their home page, everyone else to the self-service portal."""
    staff = current(request)
    raise web.HTTPFound(HOME.get(staff.role, "/agent") if staff else "/portal")


@requires(Role.AGENT)
async def incidents_page(request: web.Request) -> web.Response:
    """GET /incidents: every open incident with its age and SLA timer (5.2.2 d)."""
    lang = language(request)
    staff = current(request)
    ws = request.get(WEB_SESSION)
    return render(
        "incidents.html",
        lang=lang,
        texts=script_texts(lang),
        staff=staff,
        csrf=ws.csrf if ws else "",
    )


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/", index)
    app.router.add_get("/incidents", incidents_page)
    app.router.add_static("/static", STATIC, append_version=True)
