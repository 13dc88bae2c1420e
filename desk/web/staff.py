"""Staff (5.1, Table A.2) from the lead's page: add, roles, extension, position, services,
phones, reset password, disable. A lead manages agents and leads; only an admin makes or
changes an admin. Nobody disables or demotes their own login here (no lock-out by a slip)."""

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import delete, select

from cti.errors import CtiError, InvalidInput, NotFound
from desk import audit
from desk.models import Role, Staff, WebSession
from desk.staff import (
    A2_FIELDS,
    RANKS,
    hash_password,
    set_password_hash,
    staff_by_username,
    staff_record,
    validate,
)
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import CORE, SESSIONS
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of

logger = logging.getLogger(__name__)

_FIELDS: dict[str, Any] = {
    "username": string(60),
    "role": {"enum": [r.value for r in Role]},
    "extension": {"type": ["string", "null"], "maxLength": 8},
    "queues": string(200),
    **{key: string(limit) for key, limit in A2_FIELDS.items()},
}


def _fields(body: dict[str, Any], *, creating: bool) -> dict[str, Any]:
    allowed = set(_FIELDS) | {"active", "password"}
    unknown = set(body) - allowed
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for key in _FIELDS:
        if key not in body:
            continue
        value = body[key]
        if key == "extension" and value in (None, ""):
            out[key] = None
            continue
        if not isinstance(value, str):
            raise InvalidInput(f"{key} must be text")
        out[key] = value.strip()
    if "active" in body:
        if not isinstance(body["active"], bool):
            raise InvalidInput("active must be true or false")
        out["active"] = body["active"]
    if creating:
        for key in ("username", "name", "role"):
            if not out.get(key):
                raise InvalidInput(f"{key} is required")
    return out


def _may_manage(me: Staff, role: str) -> None:
    if RANKS[Role(me.role)] < RANKS[Role(role)]:
        raise web.HTTPForbidden(
            text='{"error":"only an admin manages admins"}', content_type="application/json"
        )


async def _password(body: dict[str, Any], required: bool) -> str | None:
    pw = body.get("password")
    if pw is None and not required:
        return None
    if not isinstance(pw, str) or not 8 <= len(pw) <= 200:
        raise InvalidInput("password: 8 to 200 characters")
    # argon2 takes a core for a good fraction of a second: not on the event loop.
    return await asyncio.to_thread(hash_password, pw)


@requires(Role.LEAD)
async def list_staff(request: web.Request) -> web.Response:
    """GET /api/staff: every member of staff with the Table A.2 fields."""
    async with request.app[SESSIONS]() as s:
        rows = (await s.scalars(select(Staff).order_by(Staff.username))).all()
    return web.json_response({"staff": [staff_record(m) for m in rows]})


@documented(
    responses=(201,),
    body=obj({**_FIELDS, "password": string(200, minLength=8)}, ("username", "name", "role")),
)
@requires(Role.LEAD)
async def add_staff(request: web.Request) -> web.Response:
    """POST /api/staff: a new member of staff (a password of 8 characters or more)."""
    body = await body_of(request)
    fields = _fields(body, creating=True)
    me = current(request)
    assert me is not None
    validate({"queues": "helpdesk", **fields})
    _may_manage(me, fields["role"])
    password_hash = await _password(body, required=True)
    assert password_hash is not None
    async with request.app[SESSIONS].begin() as s:
        if await staff_by_username(s, fields["username"]) is not None:
            raise InvalidInput(f"username: {fields['username']!r} is taken")
        if fields.get("extension"):
            other = await s.scalar(select(Staff).where(Staff.extension == fields["extension"]))
            if other is not None:
                raise InvalidInput(f"extension: {fields['extension']} belongs to {other.username}")
        now = datetime.now(UTC)
        staff = Staff(
            created_at=now, updated_at=now, password_hash=password_hash,
            **{"queues": "helpdesk", **fields},
        )  # fmt: skip
        s.add(staff)
        await s.flush()
        console.record(request, s, "staff.create", staff.username, staff_record(staff))
    return web.json_response(staff_record(staff), status=201)


@documented(body=obj({**_FIELDS, "active": {"type": "boolean"}}))
@requires(Role.LEAD)
async def update_staff(request: web.Request) -> web.Response:
    """PATCH /api/staff/{username}: role, extension, queues, Table A.2 fields, active."""
    body = await body_of(request)
    fields = _fields(body, creating=False)
    fields.pop("username", None)  # the login name is the key; it does not change
    me = current(request)
    assert me is not None
    async with request.app[SESSIONS].begin() as s:
        staff = await staff_by_username(s, request.match_info["username"])
        if staff is None:
            raise NotFound(f"no staff {request.match_info['username']!r}")
        _may_manage(me, staff.role)
        if "role" in fields:
            _may_manage(me, fields["role"])
        if staff.id == me.id and (fields.get("active") is False or fields.get("role", me.role)
                                  != me.role):  # fmt: skip
            raise InvalidInput("active/role: you cannot disable or demote yourself")
        before = staff_record(staff)
        merged = {
            "username": staff.username,
            "role": staff.role,
            "extension": staff.extension,
            "queues": staff.queues,
            **{key: getattr(staff, key) for key in A2_FIELDS},
            **{k: v for k, v in fields.items() if k != "active"},
        }
        validate(merged)
        if fields.get("extension"):
            other = await s.scalar(
                select(Staff).where(Staff.extension == fields["extension"], Staff.id != staff.id)
            )
            if other is not None:
                raise InvalidInput(f"extension: {fields['extension']} belongs to {other.username}")
        for key, value in fields.items():
            setattr(staff, key, value)
        staff.updated_at = datetime.now(UTC)
        if fields.get("active") is False:  # a disabled login ends at once
            await s.execute(delete(WebSession).where(WebSession.staff_id == staff.id))
        after = staff_record(staff)
        action = "staff.disable" if before["active"] and not after["active"] else "staff.update"
        console.record(request, s, action, staff.username, audit.diff(before, after))
    old_ext = before["extension"]
    if old_ext and (not after["active"] or after["extension"] != old_ext):
        await _leave_queues(request, old_ext)
    return web.json_response(after)


async def _leave_queues(request: web.Request, ext: str) -> None:
    """A disabled login, or a desk phone that is no longer theirs, stops taking queue calls at
    once: the session alone ending would leave the phone a queue member that keeps ringing."""
    if CORE not in request.app:
        return
    agents = request.app[CORE].agents
    agent = agents.agents.get(ext)
    if agent is None or not agent.queues:
        return
    try:
        await agents.logout(ext)
    except CtiError as exc:  # the change is saved; Asterisk is corrected at the next login
        logger.error("staff change: extension %s still in its queues: %s", ext, exc)


@documented(body=obj({"password": string(200, minLength=8)}, ("password",)))
@requires(Role.LEAD)
async def reset_password(request: web.Request) -> web.Response:
    """POST /api/staff/{username}/password {password}: set a new password; their sessions end."""
    body = await body_of(request)
    me = current(request)
    assert me is not None
    password_hash = await _password(body, required=True)
    assert password_hash is not None
    async with request.app[SESSIONS].begin() as s:
        staff = await staff_by_username(s, request.match_info["username"])
        if staff is None:
            raise NotFound(f"no staff {request.match_info['username']!r}")
        _may_manage(me, staff.role)
        await set_password_hash(s, staff, password_hash)
        console.record(request, s, "staff.password", staff.username)
    return web.json_response({"username": staff.username, "password": "changed"})


@requires(Role.LEAD)
async def staff_page(request: web.Request) -> web.Response:
    """GET /staff: the staff list (Table A.2) with add, edit, password and disable."""
    async with request.app[SESSIONS]() as s:
        rows = (await s.scalars(select(Staff).order_by(Staff.username))).all()
    return console.page(
        request,
        "staff.html",
        members=[staff_record(m) for m in rows],
        roles=[r.value for r in Role],
        a2=list(A2_FIELDS),
    )


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/staff", list_staff)
    app.router.add_post("/api/staff", add_staff)
    app.router.add_patch("/api/staff/{username}", update_staff)
    app.router.add_post("/api/staff/{username}/password", reset_password)
    app.router.add_get("/staff", staff_page)
