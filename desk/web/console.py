"""The lead's console: what its pages share (rendering with the login and CSRF token, writing an
audit entry for the request's member of staff) and the index of its pages."""

from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from desk import audit
from desk.i18n import N_, Msg
from desk.models import Role
from desk.web.auth import WEB_SESSION, current, remote, requires

__all__ = ["PAGES", "page", "record", "remote", "setup"]
from desk.web.i18n import language, script_texts
from desk.web.templating import render

# The console's pages, in the order of its menu: (path, the link's text).
PAGES: tuple[tuple[str, Msg], ...] = (
    ("/announcements", N_("Announcements")),
    ("/oncall", N_("On-call roster")),
    ("/knowledge", N_("Knowledge and CMDB")),
    ("/staff", N_("Staff")),
    ("/directory", N_("User directory")),
    ("/hours", N_("Opening hours")),
    ("/sla", N_("Service catalogue and SLA")),
    ("/routing", N_("Back-up and overflow")),
    ("/audit", N_("Audit log")),
)


def page(request: web.Request, template: str, **context: Any) -> web.Response:
    """Render a console page for the logged-in member of staff."""
    lang = language(request)
    ws = request.get(WEB_SESSION)
    return render(
        template,
        lang=lang,
        texts=script_texts(lang),
        staff=current(request),
        csrf=ws.csrf if ws else "",
        console_pages=PAGES,
        here=request.path,
        **context,
    )


def record(
    request: web.Request,
    session: AsyncSession,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """Audit a write made by the request's member of staff, in `session`'s transaction."""
    staff = current(request)
    actor = staff.username if staff is not None else "-"
    audit.record(session, actor, action, target, detail, remote(request))


@requires(Role.LEAD)
async def console_index(request: web.Request) -> web.Response:
    """GET /console: the lead's settings, one page each."""
    return page(request, "console.html")


def setup(app: web.Application) -> None:
    """Register the route."""
    app.router.add_get("/console", console_index)
