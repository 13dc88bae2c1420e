"""The on-call roster (Table A.2; lead), back-up alerts, IM offers and call-backs (lead), and the
"take this call" links IM responders click (signed, expiring; no login: the link is the key).

Opening a take link never takes the call (IM apps fetch links to preview them); the page it
opens has one button that does.
"""

from datetime import UTC, datetime, time, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import select

from cti.errors import InvalidInput, NotFound
from cti.phone import digits
from cti.routing.models import BackupAlert, CallbackRequest, OverflowOffer
from desk.models import OncallShift, Role, Staff
from desk.validation import day, record_id, text_field, when
from desk.web import console
from desk.web.auth import requires
from desk.web.keys import ROUTING_CONFIG, SESSIONS, SETTINGS
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of


def shift_json(r: OncallShift) -> dict[str, Any]:
    """Public form of a roster entry."""
    return {
        "id": r.id,
        "name": r.name,
        "staff_id": r.staff_id,
        "mobile": r.mobile,
        "im_channel": r.im_channel,
        "im_handle": r.im_handle,
        "queue": r.queue,
        "starts_at": r.starts_at.isoformat(),
        "ends_at": r.ends_at.isoformat(),
    }


@documented(query={"at": {"type": "string", "format": "date-time"}})
@requires(Role.AGENT)
async def list_oncall(request: web.Request) -> web.Response:
    """GET /api/oncall?at=: the roster (entries in force at `at`, default all to come)."""
    tz = request.app[SETTINGS].tz
    stmt = select(OncallShift).order_by(OncallShift.starts_at)
    if "at" in request.query:
        at = when("at", request.query["at"], tz)
        stmt = stmt.where(OncallShift.starts_at <= at, OncallShift.ends_at > at)
    else:
        stmt = stmt.where(OncallShift.ends_at > datetime.now(UTC))
    async with request.app[SESSIONS]() as s:
        rows = (await s.scalars(stmt)).all()
    return web.json_response({"oncall": [shift_json(r) for r in rows]})


@documented(
    responses=(201,),
    body=obj(
        {
            "name": string(120),
            "staff": string(60),
            "mobile": string(40),
            "im_channel": string(40),
            "im_handle": string(120),
            "queue": string(80),
            "starts_at": {"type": "string", "format": "date-time"},
            "ends_at": {"type": "string", "format": "date-time"},
        },
        ("starts_at", "ends_at"),
    ),
)
@requires(Role.LEAD)
async def add_oncall(request: web.Request) -> web.Response:
    """POST /api/oncall {name | staff, mobile, im_channel, im_handle, queue, starts_at, ends_at}."""
    body = await body_of(request)
    tz = request.app[SETTINGS].tz
    starts, ends = (
        when("starts_at", body.get("starts_at"), tz),
        when("ends_at", body.get("ends_at"), tz),
    )
    if ends <= starts:
        raise InvalidInput("ends_at must be after starts_at")
    mobile = text_field(body, "mobile", 40) or ""
    if mobile and not digits(mobile.replace("+", "").replace("-", "").replace(" ", "")):
        raise InvalidInput("mobile: not a phone number")
    channel = text_field(body, "im_channel", 40) or ""
    if channel and channel not in request.app[ROUTING_CONFIG].current.channels:
        raise InvalidInput(f"im_channel: no IM channel {channel!r} in routing.yaml")
    async with request.app[SESSIONS].begin() as s:
        staff = None
        if body.get("staff"):
            staff = await s.scalar(select(Staff).where(Staff.username == str(body["staff"])))
            if staff is None:
                raise InvalidInput(f"staff: no member of staff {body['staff']!r}")
        name = text_field(body, "name", 120) or (staff.name if staff else "")
        if not name:
            raise InvalidInput("name (or staff) is required")
        # Left empty, the mobile is the member of staff's own (Table A.2).
        if not mobile and not (staff and (staff.mobile or staff.extension)):
            raise InvalidInput(
                "mobile: an on-call entry needs a mobile (or a member of staff with one, or "
                "with a desk phone)"
            )
        row = OncallShift(
            name=name,
            staff_id=staff.id if staff else None,
            mobile=mobile or (staff.mobile if staff else ""),
            im_channel=channel,
            im_handle=text_field(body, "im_handle", 120) or "",
            queue=text_field(body, "queue", 80) or None,
            starts_at=starts,
            ends_at=ends,
            created_at=datetime.now(UTC),
        )
        s.add(row)
        await s.flush()
        console.record(request, s, "oncall.add", f"{row.id} {row.name}", shift_json(row))
    return web.json_response(shift_json(row), status=201)


@requires(Role.LEAD)
async def delete_oncall(request: web.Request) -> web.Response:
    """DELETE /api/oncall/{id}."""
    shift_id = record_id("id", request.match_info["id"])
    async with request.app[SESSIONS].begin() as s:
        row = await s.get(OncallShift, shift_id)
        if row is None:
            raise NotFound(f"no on-call entry {shift_id}")
        console.record(request, s, "oncall.remove", f"{row.id} {row.name}", shift_json(row))
        await s.delete(row)
    return web.json_response({"deleted": shift_id})


@requires(Role.LEAD)
async def list_alerts(request: web.Request) -> web.Response:
    """GET /api/alerts: queue back-ups, newest first, with IM offers and call-backs."""
    async with request.app[SESSIONS]() as s:
        alerts = (
            await s.scalars(select(BackupAlert).order_by(BackupAlert.id.desc()).limit(100))
        ).all()
        offers = (
            await s.scalars(select(OverflowOffer).order_by(OverflowOffer.id.desc()).limit(100))
        ).all()
        cbs = (
            await s.scalars(select(CallbackRequest).order_by(CallbackRequest.id.desc()).limit(100))
        ).all()
    return web.json_response(
        {
            "alerts": [
                {
                    "id": a.id,
                    "queue": a.queue,
                    "raised_at": a.raised_at.isoformat(),
                    "cleared_at": a.cleared_at.isoformat() if a.cleared_at else None,
                    "rules": a.rules,
                    "notified": a.notified,
                }
                for a in alerts
            ],
            "offers": [
                {
                    "id": o.id,
                    "uniqueid": o.uniqueid,
                    "queue": o.queue,
                    "state": o.state,
                    "taken_by": o.taken_by,
                    "created_at": o.created_at.isoformat(),
                    "deliveries": o.deliveries,
                }
                for o in offers
            ],
            "callbacks": [
                {
                    "uniqueid": c.uniqueid,
                    "number": c.number,
                    "queue": c.queue,
                    "state": c.state,
                    "queued_at": c.queued_at.isoformat(),
                    "requested_at": c.requested_at.isoformat(),
                    "attempts": c.attempts,
                    "result": c.result,
                    "callback_uniqueid": c.callback_uniqueid,
                }
                for c in cbs
            ],
        }
    )


@requires(Role.LEAD)
async def oncall_page(request: web.Request) -> web.Response:
    """GET /oncall?week=YYYY-MM-DD: who is on call now, and the roster of a week (Monday on)."""
    tz = request.app[SETTINGS].tz
    now = datetime.now(UTC)
    today = now.astimezone(tz).date()
    start_day = day("week", request.query["week"]) if request.query.get("week") else today
    monday = start_day - timedelta(days=start_day.weekday())
    week_start = datetime.combine(monday, time(), tz)
    week_end = week_start + timedelta(days=7)
    async with request.app[SESSIONS]() as s:
        rows = (
            await s.scalars(
                select(OncallShift)
                .where(OncallShift.starts_at < week_end, OncallShift.ends_at > week_start)
                .order_by(OncallShift.starts_at, OncallShift.id)
            )
        ).all()
        current = (
            await s.scalars(
                select(OncallShift)
                .where(OncallShift.starts_at <= now, OncallShift.ends_at > now)
                .order_by(OncallShift.starts_at, OncallShift.id)
            )
        ).all()
        staff = (await s.scalars(select(Staff).where(Staff.active).order_by(Staff.name))).all()

    def local(r: OncallShift) -> dict[str, Any]:
        return {
            **shift_json(r),
            "from": r.starts_at.astimezone(tz).strftime("%m-%d %H:%M"),
            "to": r.ends_at.astimezone(tz).strftime("%m-%d %H:%M"),
        }

    days = []
    for i in range(7):
        d = monday + timedelta(days=i)
        lo = datetime.combine(d, time(), tz)
        hi = lo + timedelta(days=1)
        days.append(
            {
                "date": d.isoformat(),
                "weekday": i,
                "today": d == today,
                "shifts": [local(r) for r in rows if r.starts_at < hi and r.ends_at > lo],
            }
        )
    return console.page(
        request,
        "oncall.html",
        days=days,
        now_on_call=[local(r) for r in current],
        staff_list=[{"username": m.username, "name": m.name} for m in staff],
        channels=sorted(request.app[ROUTING_CONFIG].current.channels),
        prev_week=(monday - timedelta(days=7)).isoformat(),
        next_week=(monday + timedelta(days=7)).isoformat(),
        monday=monday.isoformat(),
    )


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/oncall", list_oncall)
    app.router.add_post("/api/oncall", add_oncall)
    app.router.add_delete("/api/oncall/{id}", delete_oncall)
    app.router.add_get("/api/alerts", list_alerts)
    app.router.add_get("/oncall", oncall_page)
