"""Call recordings in the browser: the list for a call, the audio (HTTP Range, so the player can
seek), and deletion by a lead. An agent hears only the calls they took; leads hear every one.
Every play and deletion is audited (who listened to which call is itself personal data)."""

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import InvalidInput, NotFound
from cti.journal.models import CallRecording
from cti.journal.recordings import delete_file
from desk.models import Role, Staff
from desk.staff import RANKS
from desk.validation import record_id
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import SESSIONS, SETTINGS
from desk.web.openapi import documented


def _me(request: web.Request) -> Staff:
    staff = current(request)
    assert staff is not None  # @requires ran first
    return staff


def may_hear(staff: Staff, rec: CallRecording) -> bool:
    """Leads hear every recording; an agent only those of the calls they took."""
    if RANKS[Role(staff.role)] >= RANKS[Role.LEAD]:
        return True
    return bool(staff.extension) and rec.agent == staff.extension


def recording_json(rec: CallRecording) -> dict[str, Any]:
    """A recording as the call log shows it."""
    return {
        "id": rec.id,
        "call_uniqueid": rec.call_uniqueid,
        "queue": rec.queue,
        "agent": rec.agent,
        "incident_number": rec.incident_number,
        "started_at": rec.started_at.isoformat(),
        "deleted": rec.deleted_at is not None,
        "url": f"/recordings/{rec.id}" if rec.deleted_at is None else None,
    }


async def playable(
    session: AsyncSession, staff: Staff, *, calls: list[str] | None = None, incident: str = ""
) -> dict[str, list[dict[str, Any]]]:
    """The recordings `staff` may hear (not deleted), by call uniqueid: of `calls`, or of the
    calls of `incident`. What the call log and the incident page put in their players."""
    stmt = select(CallRecording).where(CallRecording.deleted_at.is_(None))
    if calls is not None:
        stmt = stmt.where(CallRecording.call_uniqueid.in_(calls))
    else:
        stmt = stmt.where(CallRecording.incident_number == incident)
    out: dict[str, list[dict[str, Any]]] = {}
    for rec in (await session.scalars(stmt.order_by(CallRecording.started_at).limit(500))).all():
        if may_hear(staff, rec):
            out.setdefault(rec.call_uniqueid, []).append(recording_json(rec))
    return out


async def _load(request: web.Request) -> CallRecording:
    rid = record_id("recording id", request.match_info["id"])
    async with request.app[SESSIONS]() as s:
        rec = await s.get(CallRecording, rid)
    # Someone else's recording is "not found" too: its existence is not for this agent.
    if rec is None or not may_hear(_me(request), rec):
        raise NotFound(f"no recording {rid}")
    return rec


@documented(
    query={
        "call": {"type": "string", "maxLength": 150},
        "incident": {"type": "string", "maxLength": 20},
    }
)
@requires(Role.AGENT)
async def list_recordings(request: web.Request) -> web.Response:
    """GET /api/recordings?call=<uniqueid>|incident=<number>: the recordings I may hear."""
    call = request.query.get("call", "")
    incident = request.query.get("incident", "")
    if not (call or incident) or len(call) > 150 or len(incident) > 20:
        raise InvalidInput("give call (a uniqueid, 150 characters at most) or incident")
    stmt = select(CallRecording).order_by(CallRecording.started_at)
    if call:
        stmt = stmt.where(CallRecording.call_uniqueid == call)
    if incident:
        stmt = stmt.where(CallRecording.incident_number == incident)
    me = _me(request)
    async with request.app[SESSIONS]() as s:
        rows = [r for r in (await s.scalars(stmt.limit(200))).all() if may_hear(me, r)]
    return web.json_response({"recordings": [recording_json(r) for r in rows]})


@requires(Role.AGENT)
async def play(request: web.Request) -> web.StreamResponse:
    """GET /recordings/{id}: the audio (audio/wav; Range requests for seeking)."""
    rec = await _load(request)
    if rec.deleted_at is not None:
        raise NotFound(f"recording {rec.id} was deleted")
    media = request.app[SETTINGS].effective_media_dir
    path = (media / rec.file).resolve()
    if media.resolve() not in path.parents or not path.is_file():
        raise NotFound(f"recording {rec.id} has no audio (yet)")
    if "Range" not in request.headers or request.headers["Range"].startswith("bytes=0-"):
        async with request.app[SESSIONS].begin() as s:  # one entry per listening, not per seek
            console.record(request, s, "recording_play", rec.call_uniqueid, {"recording": rec.id})
    return web.FileResponse(
        path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, no-store"}
    )


@documented(responses=(404,))
@requires(Role.LEAD)
async def delete(request: web.Request) -> web.Response:
    """DELETE /api/recordings/{id}: delete the audio now (the row says who and when)."""
    rec = await _load(request)
    me = _me(request)
    now = datetime.now(UTC)
    async with request.app[SESSIONS].begin() as s:
        # One conditional UPDATE: of deletions at once, exactly one wins (and is audited).
        won = await s.execute(
            update(CallRecording)
            .where(CallRecording.id == rec.id, CallRecording.deleted_at.is_(None))
            .values(deleted_at=now, deleted_by=me.username)
        )
        if getattr(won, "rowcount", 0) == 1:
            delete_file(request.app[SETTINGS].effective_media_dir, rec)
            console.record(request, s, "recording_delete", rec.call_uniqueid, {"recording": rec.id})
        row = await s.get(CallRecording, rec.id, populate_existing=True)
        assert row is not None
        out = recording_json(row)
    return web.json_response(out)


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/recordings", list_recordings)
    app.router.add_get("/recordings/{id}", play)
    app.router.add_delete("/api/recordings/{id}", delete)
