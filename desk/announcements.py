"""Announcements (6.4.1-6.4.4): known outages, planned changes and desk notices, managed over
the lead, shown on pages and played at the start of every call (synthesised per language)."""

import asyncio
import hashlib
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import CtiError, InvalidInput
from cti.ivr.context import MediaPaths
from cti.ivr.ports import AnnouncementPrompt
from cti.ivr.prompts import Synthesizer
from desk.models import Announcement
from desk.validation import when

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


def texts_of(a: Announcement) -> tuple[str, str]:
    """What callers hear (the texts the audio is made from)."""
    return a.text_zh, a.text_en


async def synthesise(
    a: Announcement, synth: Synthesizer | None, media: MediaPaths
) -> dict[str, str]:
    """Audio for each language that has text; {} when no text-to-speech is available.

    Call it outside any transaction: synthesis takes up to the synthesizer's time limit, and
    an open write transaction would hold every other writer (SQLite) meanwhile."""
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


async def attach_audio(
    session: AsyncSession, announcement_id: int, texts: tuple[str, str], prompts: dict[str, str]
) -> Announcement | None:
    """Store the audio made from `texts`, unless the texts changed meanwhile (that edit makes
    audio of its own); the announcement, or None if it is gone."""
    a = await session.get(Announcement, announcement_id)
    if a is not None and texts_of(a) == texts:
        a.prompts = prompts
    return a
