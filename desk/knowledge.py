"""Knowledge articles and CMDB configuration items: records, search, HTTP API."""

from datetime import UTC, datetime
from typing import Any, cast

from aiohttp import web
from sqlalchemy import select

from cti.errors import InvalidInput, NotFound
from desk.auth import requires
from desk.keys import KNOWLEDGE, SESSIONS
from desk.models import ConfigItem, KnowledgeArticle, Role
from desk.search import article_json, item_json
from desk.validation import body_of, text_field

CI_STATUSES = ("operational", "degraded", "down", "maintenance", "retired")


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
    if "published" in body:
        if not isinstance(body["published"], bool):
            raise InvalidInput("published must be true or false")
        out["published"] = body["published"]
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


Record = KnowledgeArticle | ConfigItem


async def _save(
    request: web.Request, model: type[Record], fields: dict[str, Any], *, new: bool
) -> web.Response:
    """Create a record, or change the one in the path; the search index is rebuilt."""
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        if model is ConfigItem and "name" in fields:
            clash = await s.scalar(select(ConfigItem).where(ConfigItem.name == fields["name"]))
            if clash is not None and (new or clash.id != _id(request)):
                raise InvalidInput(f"a configuration item named {fields['name']!r} exists")
        if new:
            row: Record = (
                KnowledgeArticle(created_at=now, updated_at=now, **fields)
                if model is KnowledgeArticle
                else ConfigItem(updated_at=now, **fields)
            )
            s.add(row)
            await s.flush()
        else:
            found = cast(Record | None, await s.get(model, _id(request)))
            if found is None:
                what = "article" if model is KnowledgeArticle else "configuration item"
                raise NotFound(f"no such {what}")
            row = found
            for k, v in fields.items():
                setattr(row, k, v)
            row.updated_at = now
    request.app[KNOWLEDGE].invalidate()
    out = article_json(row) if isinstance(row, KnowledgeArticle) else item_json(row)
    return web.json_response(out, status=201 if new else 200)


@requires(Role.LEAD)
async def create_article(request: web.Request) -> web.Response:
    """POST /api/knowledge (lead)."""
    fields = _article_fields(await body_of(request), partial=False)
    return await _save(request, KnowledgeArticle, fields, new=True)


@requires(Role.LEAD)
async def update_article(request: web.Request) -> web.Response:
    """PATCH /api/knowledge/{id} (lead)."""
    fields = _article_fields(await body_of(request), partial=True)
    return await _save(request, KnowledgeArticle, fields, new=False)


@requires(Role.AGENT)
async def list_items(request: web.Request) -> web.Response:
    """GET /api/cmdb."""
    async with request.app[SESSIONS]() as s:
        rows = (await s.scalars(select(ConfigItem).order_by(ConfigItem.name))).all()
    return web.json_response({"items": [item_json(c) for c in rows]})


@requires(Role.LEAD)
async def create_item(request: web.Request) -> web.Response:
    """POST /api/cmdb (lead)."""
    return await _save(request, ConfigItem, _item_fields(await body_of(request), False), new=True)


@requires(Role.LEAD)
async def update_item(request: web.Request) -> web.Response:
    """PATCH /api/cmdb/{id} (lead): e.g. its status."""
    return await _save(request, ConfigItem, _item_fields(await body_of(request), True), new=False)


def _id(request: web.Request) -> int:
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise InvalidInput(f"id {raw!r} is not a number")
    return int(raw)


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/search", search)
    app.router.add_get("/api/knowledge", list_articles)
    app.router.add_post("/api/knowledge", create_article)
    app.router.add_patch("/api/knowledge/{id}", update_article)
    app.router.add_get("/api/cmdb", list_items)
    app.router.add_post("/api/cmdb", create_item)
    app.router.add_patch("/api/cmdb/{id}", update_item)
