"""Knowledge articles and CMDB configuration items: records, search, HTTP API."""

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import InvalidInput, NotFound
from desk import audit
from desk.knowledge import RETIRED, article_json, item_json
from desk.models import ConfigItem, KnowledgeArticle, Role
from desk.validation import record_id, text_field
from desk.web import console
from desk.web.auth import requires
from desk.web.keys import KNOWLEDGE, SESSIONS
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of

CI_STATUSES = ("operational", "degraded", "down", "maintenance", "retired")


def _article(required: tuple[str, ...]) -> dict[str, Any]:
    """An article's JSON body, for the API document."""
    return obj(
        {
            "title": string(200),
            "body": string(20000),
            "tags": string(300),
            "service": string(120),
            "language": string(8),
            "published": {"type": "boolean"},
            "retired": {"type": "boolean"},
        },
        required,
    )


def _item(required: tuple[str, ...]) -> dict[str, Any]:
    """A configuration item's JSON body, for the API document."""
    return obj(
        {
            "name": string(120),
            "type": string(40),
            "service": string(120),
            "owner": string(120),
            "status": {"enum": list(CI_STATUSES)},
            "location": string(200),
            "description": string(5000),
        },
        required,
    )


def _article_fields(body: dict[str, Any], partial: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, limit, required in (
        ("title", 200, True),
        ("body", 20000, True),
        ("tags", 300, False),
        ("service", 120, False),
        ("language", 8, False),
    ):
        value = text_field(body, key, limit, required=required and not partial)
        if value is not None:
            out[key] = value
    for flag in ("published", "retired"):
        if flag in body:
            if not isinstance(body[flag], bool):
                raise InvalidInput(f"{flag} must be true or false")
            out[flag] = body[flag]
    return out


def _item_fields(body: dict[str, Any], partial: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, limit, required in (
        ("name", 120, True),
        ("type", 40, False),
        ("service", 120, False),
        ("owner", 120, False),
        ("status", 20, False),
        ("location", 200, False),
        ("description", 5000, False),
    ):
        value = text_field(body, key, limit, required=required and not partial)
        if value is not None:
            out["ci_type" if key == "type" else key] = value
    if "status" in out and out["status"] not in CI_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(CI_STATUSES)}")
    return out


@documented(query={"q": string(500, minLength=1)})
@requires(Role.AGENT)
async def search(request: web.Request) -> web.Response:
    """GET /api/search?q=: knowledge and CMDB matches."""
    q = request.query.get("q", "")
    if not q.strip() or len(q) > 500:
        raise InvalidInput("q: 1 to 500 characters")
    return web.json_response(await request.app[KNOWLEDGE].match(q))


@requires(Role.AGENT)
async def list_articles(request: web.Request) -> web.Response:
    """GET /api/knowledge."""
    async with request.app[SESSIONS]() as s:
        rows = (await s.scalars(select(KnowledgeArticle).order_by(KnowledgeArticle.id))).all()
    return web.json_response({"articles": [article_json(a) for a in rows]})


@documented(responses=(201,), body=_article(("title", "body")))
@requires(Role.LEAD)
async def create_article(request: web.Request) -> web.Response:
    """POST /api/knowledge (lead)."""
    fields = _article_fields(await body_of(request), partial=False)
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        a = KnowledgeArticle(created_at=now, updated_at=now, **fields)
        s.add(a)
        await s.flush()
        console.record(request, s, "article.create", f"{a.id} {a.title}", fields)
    request.app[KNOWLEDGE].invalidate()
    return web.json_response(article_json(a), status=201)


@documented(body=_article(()))
@requires(Role.LEAD)
async def update_article(request: web.Request) -> web.Response:
    """PATCH /api/knowledge/{id} (lead)."""
    fields = _article_fields(await body_of(request), partial=True)
    async with request.app[SESSIONS].begin() as s:
        a = await s.get(KnowledgeArticle, _id(request))
        if a is None:
            raise NotFound("no such article")
        before = {k: getattr(a, k) for k in fields}
        action = "article.retire" if fields.get("retired") and not a.retired else "article.update"
        for k, v in fields.items():
            setattr(a, k, v)
        console.record(request, s, action, f"{a.id} {a.title}", audit.diff(before, fields))
        a.updated_at = datetime.now(UTC)
    request.app[KNOWLEDGE].invalidate()
    return web.json_response(article_json(a))


@requires(Role.AGENT)
async def list_items(request: web.Request) -> web.Response:
    """GET /api/cmdb."""
    async with request.app[SESSIONS]() as s:
        rows = (await s.scalars(select(ConfigItem).order_by(ConfigItem.name))).all()
    return web.json_response({"items": [item_json(c) for c in rows]})


async def _check_name_free(s: AsyncSession, name: str, item_id: int | None = None) -> None:
    """Configuration item names are unique: refuse one another item has."""
    other = await s.scalar(select(ConfigItem.id).where(ConfigItem.name == name))
    if other is not None and other != item_id:
        raise InvalidInput(f"a configuration item named {name!r} exists")


@documented(responses=(201,), body=_item(("name",)))
@requires(Role.LEAD)
async def create_item(request: web.Request) -> web.Response:
    """POST /api/cmdb (lead)."""
    fields = _item_fields(await body_of(request), partial=False)
    async with request.app[SESSIONS].begin() as s:
        await _check_name_free(s, fields["name"])
        c = ConfigItem(updated_at=datetime.now(UTC), **fields)
        s.add(c)
        await s.flush()
        console.record(request, s, "ci.create", f"{c.id} {c.name}", fields)
    request.app[KNOWLEDGE].invalidate()
    return web.json_response(item_json(c), status=201)


@documented(body=_item(()))
@requires(Role.LEAD)
async def update_item(request: web.Request) -> web.Response:
    """PATCH /api/cmdb/{id} (lead): e.g. its status."""
    fields = _item_fields(await body_of(request), partial=True)
    async with request.app[SESSIONS].begin() as s:
        c = await s.get(ConfigItem, _id(request))
        if c is None:
            raise NotFound("no such configuration item")
        if "name" in fields:
            await _check_name_free(s, fields["name"], c.id)
        before = {k: getattr(c, k) for k in fields}
        retiring = fields.get("status") == RETIRED and c.status != RETIRED
        for k, v in fields.items():
            setattr(c, k, v)
        console.record(
            request,
            s,
            "ci.retire" if retiring else "ci.update",
            f"{c.id} {c.name}",
            audit.diff(before, fields),
        )
        c.updated_at = datetime.now(UTC)
    request.app[KNOWLEDGE].invalidate()
    return web.json_response(item_json(c))


@requires(Role.LEAD)
async def knowledge_page(request: web.Request) -> web.Response:
    """GET /knowledge: edit and retire articles and configuration items."""
    async with request.app[SESSIONS]() as s:
        articles = (await s.scalars(select(KnowledgeArticle).order_by(KnowledgeArticle.id))).all()
        items = (await s.scalars(select(ConfigItem).order_by(ConfigItem.name))).all()
    return console.page(
        request,
        "knowledge.html",
        articles=[article_json(a) for a in articles],
        items=[item_json(c) for c in items],
        statuses=CI_STATUSES,
    )


def _id(request: web.Request) -> int:
    return record_id("id", request.match_info["id"])


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/search", search)
    app.router.add_get("/api/knowledge", list_articles)
    app.router.add_post("/api/knowledge", create_article)
    app.router.add_patch("/api/knowledge/{id}", update_article)
    app.router.add_get("/api/cmdb", list_items)
    app.router.add_post("/api/cmdb", create_item)
    app.router.add_patch("/api/cmdb/{id}", update_item)
    app.router.add_get("/knowledge", knowledge_page)
