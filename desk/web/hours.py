"""Opening hours, holidays and make-up working days (调休) from the lead's page, previewed as a
calendar; saving synthesises the after-hours prompt that states them (desk/hours.py)."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from cti.ivr.hours import DAYS, OpeningHours, calendar, from_doc, to_doc
from desk import audit
from desk import hours as desk_hours
from desk.models import Role
from desk.settings_docs import HOURS, get
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import HOURS_SEED, MEDIA, SESSIONS, SETTINGS, SYNTH
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of

PREVIEW_DAYS = 92  # about three months

_SPANS = {"type": "array", "maxItems": 8, "items": string(20)}
_DOC = obj(
    {
        "timezone": string(60),
        "weekly": obj({d: _SPANS for d in DAYS}),
        "holidays": {
            "type": "array",
            "maxItems": 500,
            "items": obj({"from": string(10), "to": string(10), "name": string(60)}, ("from",)),
        },
        "workdays": {
            "type": "array",
            "maxItems": 500,
            "items": obj({"date": string(10), "as": {"enum": list(DAYS)}}, ("date", "as")),
        },
        "oncall_number": string(20),
    }
)


def _view(hours: OpeningHours, start: date) -> dict[str, Any]:
    return {
        "hours": to_doc(hours),
        "calendar": calendar(hours, start.replace(day=1), PREVIEW_DAYS),
        "said": desk_hours.texts(hours),
    }


def _today(request: web.Request) -> date:
    return datetime.now(UTC).astimezone(request.app[SETTINGS].tz).date()


async def _current(request: web.Request) -> tuple[OpeningHours, dict[str, str]]:
    async with request.app[SESSIONS]() as s:
        return await desk_hours.load(s, request.app[HOURS_SEED])


@requires(Role.AGENT)
async def get_hours(request: web.Request) -> web.Response:
    """GET /api/hours: the hours in force, the next three months as a calendar, and what the
    after-hours prompt says."""
    hours, prompts = await _current(request)
    return web.json_response({**_view(hours, _today(request)), "audio": sorted(prompts)})


@documented(body=_DOC)
@requires(Role.LEAD)
async def preview_hours(request: web.Request) -> web.Response:
    """POST /api/hours/preview: what these hours would look like (nothing is saved)."""
    hours = from_doc(await body_of(request))
    return web.json_response(_view(hours, _today(request)))


@documented(body=_DOC)
@requires(Role.LEAD)
async def save_hours(request: web.Request) -> web.Response:
    """PUT /api/hours: the new hours, in force for the next call; the after-hours prompt is
    synthesised to state them."""
    doc = await body_of(request)
    staff = current(request)
    assert staff is not None
    async with request.app[SESSIONS].begin() as s:
        hours, before = await desk_hours.save(s, doc, staff.username, datetime.now(UTC))
        console.record(request, s, "hours.update", "hours", audit.diff(before, to_doc(hours)))
    # Outside the transaction: synthesis takes seconds (see desk/announcements.py).
    made = await desk_hours.synthesise(hours, request.app[SYNTH].synth, request.app[MEDIA])
    async with request.app[SESSIONS].begin() as s:
        current_hours, _ = await desk_hours.load(s, request.app[HOURS_SEED])
        if current_hours == hours:  # not replaced meanwhile by another edit
            await desk_hours.attach_prompts(s, made)
    return web.json_response({**_view(hours, _today(request)), "audio": sorted(made)})


@requires(Role.LEAD)
async def hours_page(request: web.Request) -> web.Response:
    """GET /hours: weekly hours, holidays and 调休 days, with a calendar preview."""
    hours, prompts = await _current(request)
    async with request.app[SESSIONS]() as s:
        row = await get(s, HOURS)
    today = _today(request)
    view = _view(hours, today)
    months: list[dict[str, Any]] = []
    for day in view["calendar"]:
        key = day["date"][:7]
        if not months or months[-1]["month"] != key:
            first = date.fromisoformat(day["date"])
            months.append({"month": key, "lead": first.weekday(), "days": []})
        months[-1]["days"].append(day)
    return console.page(
        request,
        "hours.html",
        doc=view["hours"],
        months=months,
        said=view["said"],
        audio=sorted(prompts),
        days=DAYS,
        today=today.isoformat(),
        updated=(row.updated_by, row.updated_at.astimezone(hours.tz).strftime("%Y-%m-%d %H:%M"))
        if row is not None
        else None,
        next_year=(today + timedelta(days=365)).year,
    )


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/hours", get_hours)
    app.router.add_post("/api/hours/preview", preview_hours)
    app.router.add_put("/api/hours", save_hours)
    app.router.add_get("/hours", hours_page)
