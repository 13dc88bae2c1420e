"""Announcements over HTTP (lead writes, agents read)."""

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from cti.errors import NotFound
from desk.announcements import (
    KINDS,
    active,
    as_json,
    attach_audio,
    synthesise,
    texts_of,
    validate,
)
from desk.models import Announcement, Role
from desk.validation import record_id
from desk.web.auth import requires
from desk.web.keys import MEDIA, SESSIONS, SETTINGS, SYNTH
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of


def _body(required: tuple[str, ...]) -> dict[str, Any]:
    """An announcement's JSON body, for the API document."""
    return obj(
        {
            "kind": {"enum": list(KINDS)},
            "title": string(200),
            "text_zh": string(1000),
            "text_en": string(1000),
            "service": string(120),
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": ["string", "null"], "format": "date-time"},
            "active": {"type": "boolean"},
        },
        required,
    )


@documented(query={"active": {"enum": ["0", "1", "true", "false"]}})
@requires(Role.AGENT)
async def list_announcements(request: web.Request) -> web.Response:
    """GET /api/announcements[?active=1]."""
    async with request.app[SESSIONS]() as session:
        if request.query.get("active") in ("1", "true"):
            rows = await active(session, datetime.now(UTC))
        else:
            rows = list(
                (await session.scalars(select(Announcement).order_by(Announcement.id.desc()))).all()
            )
    return web.json_response({"announcements": [as_json(a) for a in rows]})


@documented(responses=(201,), body=_body(("kind", "title")))
@requires(Role.LEAD)
async def create_announcement(request: web.Request) -> web.Response:
    """POST /api/announcements."""
    fields = validate(await body_of(request), request.app[SETTINGS].tz)
    now = datetime.now(UTC)
    fields.setdefault("starts_at", now)
    async with request.app[SESSIONS].begin() as session:
        a = Announcement(created_at=now, updated_at=now, prompts={}, **fields)
        session.add(a)
    # Committed first: synthesis runs outside any transaction (see _with_audio).
    return web.json_response(as_json(await _with_audio(request, a)), status=201)


@documented(body=_body(()))
@requires(Role.LEAD)
async def update_announcement(request: web.Request) -> web.Response:
    """PATCH /api/announcements/{id}."""
    fields = validate(await body_of(request), request.app[SETTINGS].tz, partial=True)
    async with request.app[SESSIONS].begin() as session:
        a = await session.get(Announcement, _id(request))
        if a is None:
            raise NotFound(f"no announcement {request.match_info['id']}")
        texts = texts_of(a)
        for key, value in fields.items():
            setattr(a, key, value)
        a.updated_at = datetime.now(UTC)
        spoken_changed = texts_of(a) != texts
        if spoken_changed:
            a.prompts = {}  # the old audio says something else
    if spoken_changed:
        a = await _with_audio(request, a)
    return web.json_response(as_json(a))


async def _with_audio(request: web.Request, a: Announcement) -> Announcement:
    """Synthesise a committed announcement's texts, then store the audio in a transaction of its
    own: synthesis takes up to CTI_TTS_TIMEOUT seconds, and an open write transaction would hold
    every other writer of the database (SQLite) all that time."""
    texts = texts_of(a)
    prompts = await synthesise(a, request.app[SYNTH].synth, request.app[MEDIA])
    if not prompts:
        return a
    async with request.app[SESSIONS].begin() as session:
        stored = await attach_audio(session, a.id, texts, prompts)
    return stored or a


@requires(Role.LEAD)
async def delete_announcement(request: web.Request) -> web.Response:
    """DELETE /api/announcements/{id}: withdraw it (kept for the record)."""
    async with request.app[SESSIONS].begin() as session:
        a = await session.get(Announcement, _id(request))
        if a is None:
            raise NotFound(f"no announcement {request.match_info['id']}")
        a.active = False
        a.updated_at = datetime.now(UTC)
    return web.json_response(as_json(a))


def _id(request: web.Request) -> int:
    return record_id("announcement id", request.match_info["id"])


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/announcements", list_announcements)
    app.router.add_post("/api/announcements", create_announcement)
    app.router.add_patch("/api/announcements/{id}", update_announcement)
    app.router.add_delete("/api/announcements/{id}", delete_announcement)
