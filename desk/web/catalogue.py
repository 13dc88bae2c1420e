"""The service catalogue and the SLA on the lead's console (desk/sla.py): services with owners,
support groups and CMDB items, response and resolution targets per priority and their clock,
when a due date counts as "soon", and the days before a resolved incident closes by itself.
Saving stamps every open incident again with the new targets."""

from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import select

from cti.errors import InvalidInput
from desk import audit, settings_docs, sla
from desk.models import ConfigItem, Role
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import SESSIONS, WALLBOARD
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of

_TARGET = obj(
    {
        "priority": {"type": "integer", "minimum": 1, "maximum": 4},
        "response_minutes": {"type": "integer", "minimum": 1},
        "resolution_minutes": {"type": "integer", "minimum": 1},
        "clock": {"enum": list(sla.CLOCKS)},
    },
    ("priority", "response_minutes", "resolution_minutes"),
)
_DOC = obj(
    {
        "targets": {"type": "array", "maxItems": 4, "items": _TARGET},
        "due_soon_minutes": {"type": "integer", "minimum": 1},
        "autoclose_days": {"type": "integer", "minimum": 0},
        "admin_group": string(120),
        "groups": {
            "type": "array",
            "maxItems": 200,
            "items": obj({"name": string(120), "email": string(200)}, ("name",)),
        },
        "services": {
            "type": "array",
            "maxItems": 500,
            "items": obj(
                {
                    "name": string(120),
                    "owner": string(120),
                    "group": string(120),
                    "config_items": {"type": "array", "items": string(120)},
                    "description": string(500),
                },
                ("name",),
            ),
        },
    }
)


@requires(Role.AGENT)
async def get_sla(request: web.Request) -> web.Response:
    """GET /api/sla: the catalogue and targets in force (agents pick services and groups)."""
    async with request.app[SESSIONS]() as s:
        policy = await sla.load(s)
        items = (await s.scalars(select(ConfigItem.name).order_by(ConfigItem.name))).all()
    return web.json_response({**sla.to_doc(policy), "config_item_names": list(items)})


@documented(body=_DOC)
@requires(Role.LEAD)
async def put_sla(request: web.Request) -> web.Response:
    """PUT /api/sla: the new catalogue and targets; open incidents are stamped again."""
    policy = sla.policy_from_doc(await body_of(request))
    staff = current(request)
    assert staff is not None
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        names = set((await s.scalars(select(ConfigItem.name))).all())
        for i, service in enumerate(policy.services):
            for item in service.config_items:
                if item not in names:
                    raise InvalidInput(
                        f"services[{i + 1}].config_items: no configuration item {item!r} in the "
                        "CMDB"
                    )
        before = await sla.load(s)
        doc = sla.to_doc(policy)
        await settings_docs.put(s, sla.NAME, doc, staff.username, now)
        restamped = await sla.restamp_open(s)
        console.record(request, s, "sla.update", "sla", audit.diff(sla.to_doc(before), doc))
    if WALLBOARD in request.app:
        request.app[WALLBOARD].touch()
    return web.json_response({**doc, "restamped": restamped})


@requires(Role.LEAD)
async def sla_page(request: web.Request) -> web.Response:
    """GET /sla: the catalogue and targets, edited as a document with a table view."""
    async with request.app[SESSIONS]() as s:
        policy = await sla.load(s)
        row = await settings_docs.get(s, sla.NAME)
    return console.page(
        request,
        "sla.html",
        policy=policy,
        doc=sla.to_doc(policy),
        updated=(row.updated_by, row.updated_at.strftime("%Y-%m-%d %H:%M UTC"))
        if row is not None
        else None,
    )


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/sla", get_sla)
    app.router.add_put("/api/sla", put_sla)
    app.router.add_get("/sla", sla_page)
