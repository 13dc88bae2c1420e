"""Announcements (6.4.1-6.4.4): known outages, planned changes and desk notices, managed over
HTTP, shown on pages and played at the start of every call (synthesised per language)."""

import asyncio
import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import CtiError, InvalidInput, NotFound
from cti.ivr.context import MediaPaths
from cti.ivr.ports import AnnouncementPrompt
from cti.ivr.prompts import Synthesizer
from desk.auth import requires
from desk.keys import MEDIA, SESSIONS, SETTINGS, SYNTH
from desk.models import Announcement, Role
from desk.validation import body_of, when

logger = logging.getLogger(__name__)

KINDS = ("outage", "change", "info")
ORDER = {"outage": 0, "change": 1, "info": 2}


def validate(body: Any, tz: Any, *, partial: bool = False) -> dict[str, Any]:
    """The fields of an announcement from a JSON body; InvalidInput names what is wrong."""
    if not isinstance(body, dict):
        raise InvalidInput("expected a JSON object")
    allowed = {"kind", "title", "text_zh", "text_en", "service", "starts_at", "ends_at", "active"}
    unknown = set(body) - allowed
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    if "kind" in body or not partial:
        if body.get("kind") not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
        out["kind"] = body["kind"]
    for key, limit in (("title", 200), ("text_zh", 1000), ("text_en", 1000), ("service", 120)):
        if key in body:
            if not isinstance(body[key], str) or len(body[key]) > limit:
                raise InvalidInput(f"{key} must be text of at most {limit} characters")
            out[key] = body[key].strip()
    if not partial:
        if not out.get("title"):
            raise InvalidInput("title is required")
        if not (out.get("text_zh") or out.get("text_en")):
            raise InvalidInput("text_zh or text_en is required (what callers hear)")
    if "starts_at" in body:
        out["starts_at"] = when("starts_at", body["starts_at"], tz)
    if body.get("ends_at") is not None:
        out["ends_at"] = when("ends_at", body["ends_at"], tz)
    if "active" in body:
        if not isinstance(body["active"], bool):
            raise InvalidInput("active must be true or false")
        out["active"] = body["active"]
    start = out.get("starts_at")
    if start and out.get("ends_at") and out["ends_at"] <= start:
        raise InvalidInput("ends_at must be after starts_at")
    return out


def as_json(a: Announcement) -> dict[str, Any]:
    """The public JSON form."""
    return {
        "id": a.id,
        "kind": a.kind,
        "title": a.title,
        "text_zh": a.text_zh,
        "text_en": a.text_en,
        "service": a.service,
        "starts_at": a.starts_at.isoformat(),
        "ends_at": a.ends_at.isoformat() if a.ends_at else None,
        "active": a.active,
        "audio": sorted(a.prompts),
    }


async def active(session: AsyncSession, now: datetime) -> list[Announcement]:
    """Announcements in force now, outages first."""
    rows = await session.scalars(
        select(Announcement).where(
            Announcement.active.is_(True),
            Announcement.starts_at <= now,
            or_(Announcement.ends_at.is_(None), Announcement.ends_at > now),
        )
    )
    return sorted(rows.all(), key=lambda a: (ORDER.get(a.kind, 9), a.starts_at))


def prompts_of(a: Announcement) -> AnnouncementPrompt:
    """The IVR's view."""
    return AnnouncementPrompt(a.id, a.kind, dict(a.prompts))


async def synthesise(
    a: Announcement, synth: Synthesizer | None, media: MediaPaths
) -> dict[str, str]:
    """Audio for each language that has text; {} when no text-to-speech is available."""
    if synth is None:
        return {}
    out = {}
    for lang, text in (("zh", a.text_zh), ("en", a.text_en)):
        if not text:
            continue
        digest = hashlib.sha256(text.encode()).hexdigest()[:10]
        name = f"ann-{a.id}-{lang}-{digest}"
        try:
            await asyncio.to_thread(
                synth.synth, text, lang, media.host / "announcements" / f"{name}.wav"
            )
        except CtiError as exc:
            logger.error("announcement %s (%s): no audio: %s", a.id, lang, exc)
            continue
        out[lang] = f"{media.asterisk}/announcements/{name}"
    return out


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
        a.prompts = await synthesise(a, request.app[SYNTH].synth, request.app[MEDIA])
    return web.json_response(as_json(a), status=201)


@requires(Role.LEAD)
async def update_announcement(request: web.Request) -> web.Response:
    """PATCH /api/announcements/{id}."""
    fields = validate(await body_of(request), request.app[SETTINGS].tz, partial=True)
    async with request.app[SESSIONS].begin() as session:
        a = await session.get(Announcement, _id(request))
        if a is None:
            raise NotFound(f"no announcement {request.match_info['id']}")
        texts = (a.text_zh, a.text_en)
        for key, value in fields.items():
            setattr(a, key, value)
        a.updated_at = datetime.now(UTC)
        if (a.text_zh, a.text_en) != texts:
            a.prompts = await synthesise(a, request.app[SYNTH].synth, request.app[MEDIA])
    return web.json_response(as_json(a))


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
    raw = request.match_info["id"]
    if not raw.isdigit():
        raise InvalidInput(f"announcement id {raw!r} is not a number")
    return int(raw)


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/announcements", list_announcements)
    app.router.add_post("/api/announcements", create_announcement)
    app.router.add_patch("/api/announcements/{id}", update_announcement)
    app.router.add_delete("/api/announcements/{id}", delete_announcement)
