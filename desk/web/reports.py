"""Reports on the web (lead): on demand in any format, the archive (6.5.5), and a page to ask for
them. The same code as `cti report`."""

from datetime import date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from cti.asterisks import sites_of
from cti.errors import InvalidInput, NotFound
from desk.i18n import NC_, Msg
from desk.models import Role
from desk.validation import day, queue_name
from desk.web import console
from desk.web.auth import WEB_SESSION, current, requires
from desk.web.i18n import language
from desk.web.keys import ARCHIVE, SESSIONS, SETTINGS
from desk.web.openapi import documented, obj, string
from desk.web.templating import render
from desk.web.validation import body_of
from reports.build import KINDS
from reports.render import FORMATS
from reports.service import generate
from reports.tables import A1, A2, request_log, staff_list, table_bytes

CONTENT_TYPES = {
    "html": "text/html; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pdf": "application/pdf",
}
# The kinds as the form and the archive list name them (a report's title: reports/render.py).
KIND_NAMES: dict[str, Msg] = {
    "daily": NC_("report kind", "Daily"),
    "weekly": NC_("report kind", "Weekly"),
    "monthly": NC_("report kind", "Monthly"),
    "forward": NC_("report kind", "Forward-looking"),
    "custom": NC_("report kind", "Custom"),
}


def _day(raw: Any, name: str) -> date:
    return day(name, raw)


def _params(data: dict[str, Any]) -> dict[str, Any]:
    kind = data.get("kind")
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
    formats = data.get("formats", data.get("format", "html"))
    formats = formats.split(",") if isinstance(formats, str) else formats
    if not isinstance(formats, list) or not formats or any(f not in FORMATS for f in formats):
        raise InvalidInput(f"format must be among {', '.join(FORMATS)}")
    lang = data.get("lang", "zh")
    if lang not in ("zh", "en"):
        raise InvalidInput("lang must be zh or en")
    queue = queue_name("queue", data["queue"]) if data.get("queue") else None
    brief = data.get("brief") in (True, "1", "true", "on")
    end = _day(data["end"], "end") if data.get("end") else None
    site = data.get("site") or None
    if site is not None and not isinstance(site, str):
        raise InvalidInput("site must be text")
    return {
        "site": site,
        "kind": kind,
        "day": _day(data.get("date"), "date"),
        "formats": formats,
        "lang": lang,
        "queue": queue,
        "brief": brief,
        "end_day": end,
    }


def _site(request: web.Request, site: str | None) -> str | None:
    """A site this desk has (cti/asterisks.py), or InvalidInput naming the ones it has."""
    if site is None:
        return None
    sites = sites_of(request.app[SETTINGS].asterisk_servers)
    if site not in sites:
        raise InvalidInput(f"site must be one of {', '.join(sites)}")
    return site


async def _generate(request: web.Request, p: dict[str, Any]) -> list[Any]:
    try:
        return await generate(
            request.app[SESSIONS],
            request.app[SETTINGS],
            request.app[ARCHIVE],
            p["kind"],
            p["day"],
            p["formats"],
            p["lang"],
            p["queue"],
            p["brief"],
            p["end_day"],
            _site(request, p["site"]),
        )
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None


@requires(Role.LEAD)
async def reports_page(request: web.Request) -> web.Response:
    """GET /reports: the archive and a form."""
    lang = language(request)
    ws = request.get(WEB_SESSION)
    return render(
        "reports.html",
        lang=lang,
        staff=current(request),
        csrf=ws.csrf if ws else "",
        files=request.app[ARCHIVE].listing(),
        kinds=KIND_NAMES,
        formats=FORMATS,
    )


@requires(Role.LEAD)
async def view_report(request: web.Request) -> web.StreamResponse:
    """GET /reports/view?kind=&date=&format=&lang=&queue=&brief=&end=&site=: made now, as a
    file (site: one site's figures; none: every site's)."""
    p = _params(dict(request.query))
    if len(p["formats"]) != 1:
        raise InvalidInput("one format at a time")
    path = (await _generate(request, p))[0]
    return web.FileResponse(path, headers={"Content-Type": CONTENT_TYPES[p["formats"][0]]})


@documented(
    responses=(201,),
    body=obj(
        {
            "kind": {"enum": list(KINDS)},
            "date": {"type": "string", "format": "date"},
            "end": {"type": "string", "format": "date"},
            "formats": {"type": "array", "items": {"enum": list(FORMATS)}, "minItems": 1},
            "lang": {"enum": ["zh", "en"]},
            "queue": string(80, pattern="^[a-z0-9_-]+$"),
            "brief": {"type": "boolean"},
            "site": string(80),
        },
        ("kind", "date"),
    ),
)
@requires(Role.LEAD)
async def create_reports(request: web.Request) -> web.Response:
    """POST /api/reports {kind, date, end?, formats, lang, queue?, brief?}: into the archive."""
    paths = await _generate(request, _params(await body_of(request)))
    return web.json_response(
        {"files": [f"/reports/files/{p.parent.name}/{p.name}" for p in paths]}, status=201
    )


@requires(Role.LEAD)
async def list_reports(request: web.Request) -> web.Response:
    """GET /api/reports: the archive, newest first."""
    return web.json_response({"files": request.app[ARCHIVE].listing()})


@requires(Role.LEAD)
async def archived(request: web.Request) -> web.StreamResponse:
    """GET /reports/files/{kind}/{name}: an archived report."""
    kind, name = request.match_info["kind"], request.match_info["name"]
    path = request.app[ARCHIVE].file(kind, name)
    if path is None:
        raise NotFound("no such report")
    fmt = path.suffix.lstrip(".")
    return web.FileResponse(
        path, headers={"Content-Type": CONTENT_TYPES.get(fmt, "application/octet-stream")}
    )


@documented(
    query={
        "since": {"type": "string", "format": "date"},
        "until": {"type": "string", "format": "date"},
        "format": {"enum": ["csv", "xlsx"]},
    },
)
@requires(Role.LEAD)
async def export_table(request: web.Request) -> web.StreamResponse:
    """GET /api/exports/requests?since=&until=&format=csv|xlsx (Table A.1, the user request log),
    GET /api/exports/staff?format= (Table A.2, the staff contact list)."""
    fmt = request.query.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise InvalidInput("format must be csv or xlsx")
    tz = request.app[SETTINGS].tz
    async with request.app[SESSIONS]() as s:
        if request.match_info["table"] == "requests":
            since = _day(request.query.get("since"), "since")
            until = _day(request.query.get("until", request.query.get("since")), "until")
            if until < since:
                raise InvalidInput("until must not be before since")
            start = datetime.combine(since, time(), tz)
            end = datetime.combine(until + timedelta(days=1), time(), tz)
            header, rows, name = (
                A1,
                await request_log(s, start, end, tz),
                f"requests_{since}_{until}",
            )
        else:
            header, rows, name = A2, await staff_list(s), "staff"
    async with request.app[SESSIONS].begin() as s:  # personal data left the desk: by whom
        console.record(request, s, "export", f"{name}.{fmt}", {"rows": len(rows)})
    # Built in memory: nothing is left behind on disk per download.
    return web.Response(
        body=table_bytes(header, rows, fmt),
        headers={
            "Content-Type": CONTENT_TYPES[fmt],
            "Content-Disposition": f'attachment; filename="{name}.{fmt}"',
        },
    )


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/reports", reports_page)
    app.router.add_get("/reports/view", view_report)
    app.router.add_get("/reports/files/{kind}/{name}", archived)
    app.router.add_get("/api/reports", list_reports)
    app.router.add_post("/api/reports", create_reports)
    app.router.add_get("/api/exports/{table:requests|staff}", export_table)
