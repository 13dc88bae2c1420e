"""Announcements over HTTP (lead writes, agents read)."""

import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from cti.errors import NotFound
from desk import audit
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
from desk.web import console
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
        await session.flush()
        console.record(request, session, "announcement.create", f"{a.id} {a.title}", _plain(fields))
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
        before = {key: getattr(a, key) for key in fields}
        for key, value in fields.items():
            setattr(a, key, value)
        console.record(
            request,
            session,
            "announcement.update",
            f"{a.id} {a.title}",
            audit.diff(_plain(before), _plain(fields)),
        )
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
        console.record(request, session, "announcement.withdraw", f"{a.id} {a.title}")
    return web.json_response(as_json(a))


def _plain(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as JSON can hold them (times as ISO text), for the audit log."""
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in fields.items()}


# The audio files synthesis writes: ann-<id>-<lang>-<10 hex digits> (desk/announcements.py).
_AUDIO = re.compile(r"ann-(\d+)-(zh|en)-[0-9a-f]{10}")


@requires(Role.AGENT)
async def announcement_audio(request: web.Request) -> web.StreamResponse:
    """GET /announcements/{id}/audio/{lang}: what callers hear, as a WAV file (staff only)."""
    lang = request.match_info["lang"]
    if lang not in ("zh", "en"):
        raise NotFound("no such language")
    async with request.app[SESSIONS]() as session:
        a = await session.get(Announcement, _id(request))
    prompt = (a.prompts or {}).get(lang) if a is not None else None
    name = prompt.rsplit("/", 1)[-1] if isinstance(prompt, str) else ""
    match = _AUDIO.fullmatch(name)
    # Only a file this announcement's own synthesis made, in the announcements folder.
    if a is None or match is None or int(match.group(1)) != a.id or match.group(2) != lang:
        raise NotFound("no audio for this announcement in that language")
    folder = request.app[MEDIA].host / "announcements"
    path = folder / f"{name}.wav"
    if not path.is_file():
        raise NotFound("the audio file is missing")
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


@requires(Role.LEAD)
async def announcements_page(request: web.Request) -> web.Response:
    """GET /announcements: create, schedule, end and hear announcements."""
    tz = request.app[SETTINGS].tz
    async with request.app[SESSIONS]() as session:
        rows = (
            await session.scalars(select(Announcement).order_by(Announcement.id.desc()).limit(200))
        ).all()
    now = datetime.now(UTC)
    items = [
        {
            **as_json(a),
            "starts_local": a.starts_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
            "ends_local": a.ends_at.astimezone(tz).strftime("%Y-%m-%d %H:%M") if a.ends_at else "",
            "in_force": a.active and a.starts_at <= now and (a.ends_at is None or a.ends_at > now),
        }
        for a in rows
    ]
    return console.page(request, "announcements.html", items=items, kinds=KINDS)


def _id(request: web.Request) -> int:
    return record_id("announcement id", request.match_info["id"])


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/announcements", list_announcements)
    app.router.add_post("/api/announcements", create_announcement)
    app.router.add_patch("/api/announcements/{id}", update_announcement)
    app.router.add_delete("/api/announcements/{id}", delete_announcement)
    app.router.add_get("/announcements", announcements_page)
    app.router.add_get("/announcements/{id}/audio/{lang}", announcement_audio)
