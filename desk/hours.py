"""The desk's opening hours, holidays and make-up working days (6.4.2 f) as data the lead edits.

They live in the database (`desk_settings`, name "hours"), seeded from hours.yaml on the first
start: every server node then reads the same hours, an edit is one transaction with its audit
entry, and the server never writes into its configuration folder (read-only in a container).
hours.yaml stays the seed and the fallback when the database has none.

The after-hours prompt states the hours from this same data: its text is made by
cti.ivr.hours.describe_hours and synthesised when the hours change, like an announcement."""

import asyncio
import hashlib
import logging
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import CtiError
from cti.ivr.context import MediaPaths
from cti.ivr.hours import OpeningHours, describe_hours, from_doc, to_doc
from cti.ivr.prompts import Synthesizer
from desk import settings_docs

logger = logging.getLogger(__name__)


def texts(hours: OpeningHours) -> dict[str, str]:
    """What the after-hours prompt says, per language."""
    return {lang: describe_hours(hours, lang) for lang in ("zh", "en")}


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


async def load(
    session: AsyncSession, fallback: OpeningHours
) -> tuple[OpeningHours, dict[str, str]]:
    """The hours in force and the after-hours prompt files that state them (language -> file as
    Asterisk sees it; only files made from the current texts)."""
    row = await settings_docs.get(session, settings_docs.HOURS)
    if row is None:
        return fallback, {}
    try:
        hours = from_doc(row.value.get("hours"))
    except CtiError as exc:  # cannot happen through the page; a hand edit of the row could
        logger.error("stored opening hours are invalid (%s): using hours.yaml", exc)
        return fallback, {}
    said = texts(hours)
    prompts = {
        lang: path
        for lang, path in (row.value.get("prompts") or {}).items()
        if isinstance(path, str) and lang in said and path.endswith(_digest(said[lang]))
    }
    return hours, prompts


async def seed(session: AsyncSession, hours: OpeningHours, now: datetime) -> bool:
    """On the first start: store hours.yaml's hours. True if it did."""
    if await settings_docs.get(session, settings_docs.HOURS) is not None:
        return False
    await settings_docs.put(
        session, settings_docs.HOURS, {"hours": to_doc(hours), "prompts": {}}, "hours.yaml", now
    )
    return True


async def save(
    session: AsyncSession, doc: Any, by: str, now: datetime
) -> tuple[OpeningHours, dict[str, Any]]:
    """Validate and store the lead's hours (InvalidInput names the field); the new hours and
    the previous document."""
    hours = from_doc(doc)
    row = await settings_docs.get(session, settings_docs.HOURS)
    before = dict(row.value.get("hours") or {}) if row is not None else {}
    old_prompts = dict(row.value.get("prompts") or {}) if row is not None else {}
    await settings_docs.put(
        session, settings_docs.HOURS, {"hours": to_doc(hours), "prompts": old_prompts}, by, now
    )
    return hours, before


async def synthesise(
    hours: OpeningHours, synth: Synthesizer | None, media: MediaPaths
) -> dict[str, str]:
    """The after-hours prompt stating `hours`, per language; {} without text-to-speech. Call it
    outside any transaction (it takes seconds)."""
    if synth is None:
        return {}
    out = {}
    for lang, text in texts(hours).items():
        name = f"hours-{lang}-{_digest(text)}"
        dest = media.host / "announcements" / f"{name}.wav"
        try:
            if not dest.exists():
                await asyncio.to_thread(synth.synth, text, lang, dest)
        except CtiError as exc:
            logger.error("after-hours prompt (%s): no audio: %s", lang, exc)
            continue
        out[lang] = f"{media.asterisk}/announcements/{name}"
    return out


async def attach_prompts(session: AsyncSession, prompts: dict[str, str]) -> None:
    """Store prompt files made for the stored hours (load() ignores any made for older ones)."""
    row = await settings_docs.get(session, settings_docs.HOURS)
    if row is not None and prompts:
        row.value = {**row.value, "prompts": {**(row.value.get("prompts") or {}), **prompts}}
