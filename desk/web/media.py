"""Voicemail recordings in the browser, for staff only: by incident (the detail page) and by
call (the call log). aiohttp's FileResponse answers Range requests (206 with Content-Range), so
the player can seek without downloading the whole file first.

The file is found from the incident's `recording` (a path relative to the media folder that the
IVR wrote), never from the URL: the URL carries an incident number or a call's Uniqueid, and the
resolved path must stay inside the recordings folder."""

from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from sqlalchemy import or_, select

from cti.errors import InvalidInput, NotFound
from cti.journal.models import Call
from desk import incidents
from desk.models import Incident, Role
from desk.validation import incident_number
from desk.web.auth import requires
from desk.web.keys import MEDIA, SESSIONS


def incident_url(number: str) -> str:
    """Where an incident's voicemail plays."""
    return f"/media/incidents/{number}/voicemail"


def call_url(uniqueid: str) -> str:
    """Where the voicemail a call left plays."""
    return f"/media/calls/{quote(uniqueid, safe='')}/voicemail"


def _file(request: web.Request, recording: str | None) -> Path:
    if not recording:
        raise NotFound("no voicemail recording")
    root = (request.app[MEDIA].host / "recordings").resolve()
    path = (request.app[MEDIA].host / recording).resolve()
    if not path.is_relative_to(root) or path.suffix != ".wav" or not path.is_file():
        raise NotFound("the voicemail recording is not on this server")
    return path


def _respond(path: Path) -> web.FileResponse:
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "audio/wav",
            "Cache-Control": "private, no-store",
            "Content-Disposition": f'inline; filename="{path.name}"',
        },
    )


@requires(Role.AGENT)
async def incident_voicemail(request: web.Request) -> web.StreamResponse:
    """GET /media/incidents/{number}/voicemail: the recording (Range requests answered)."""
    number = incident_number(request.match_info["number"])
    async with request.app[SESSIONS]() as s:
        inc = await incidents.get(s, number)
    return _respond(_file(request, inc.recording))


@requires(Role.AGENT)
async def call_voicemail(request: web.Request) -> web.StreamResponse:
    """GET /media/calls/{uniqueid}/voicemail: the recording the call left on its incident."""
    uniqueid = request.match_info["uniqueid"]
    if not 1 <= len(uniqueid) <= 150:
        raise InvalidInput("not a call's Uniqueid")
    async with request.app[SESSIONS]() as s:
        call = await s.scalar(select(Call).where(Call.uniqueid == uniqueid))
        conds = [Incident.call_uniqueid == uniqueid]
        if call is not None and call.incident_number:
            conds.append(Incident.number == call.incident_number)
        inc = await s.scalar(
            select(Incident)
            .where(or_(*conds), Incident.recording.is_not(None))
            .order_by(Incident.id)
            .limit(1)
        )
    if inc is None:
        raise NotFound("this call left no voicemail")
    return _respond(_file(request, inc.recording))


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/media/incidents/{number}/voicemail", incident_voicemail)
    app.router.add_get("/media/calls/{uniqueid}/voicemail", call_voicemail)
