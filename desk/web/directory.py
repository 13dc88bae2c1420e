"""The user directory page (lead): search, edit, change history, CSV import (all or nothing,
errors naming their line), and the LDAP / AD sync (dry run or real), on demand and scheduled."""

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select

from cti.errors import Conflict, InvalidInput, NotFound
from desk import audit, directory
from desk.ldap_directory import LdapConfig, LdapError, LdapLogin, sync
from desk.models import Role, User, UserChange
from desk.validation import record_id
from desk.web import console
from desk.web.auth import current, requires
from desk.web.keys import LDAP, LDAP_LOGIN, PLAN, SESSIONS, SETTINGS
from desk.web.nodes import runs_desk_jobs
from desk.web.openapi import documented, obj, string
from desk.web.validation import body_of

logger = logging.getLogger(__name__)

MAX_CSV = 700_000  # bytes of CSV (base64 in a JSON body under the 1 MiB limit)


@requires(Role.AGENT)
async def user_history(request: web.Request) -> web.Response:
    """GET /api/users/{id}/history: every change of a user's details, newest first."""
    user_id = record_id("user id", request.match_info["id"])
    tz = request.app[SETTINGS].tz
    async with request.app[SESSIONS]() as s:
        user = await s.get(User, user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        rows = (
            await s.scalars(
                select(UserChange)
                .where(UserChange.user_id == user_id)
                .order_by(UserChange.at.desc(), UserChange.id.desc())
                .limit(500)
            )
        ).all()
    return web.json_response(
        {
            "user": {**directory.user_json(user), "privileged": user.privileged},
            "history": [
                {
                    "at": c.at.astimezone(tz).isoformat(),
                    "by": c.by,
                    "field": c.field,
                    "old": c.old,
                    "new": c.new,
                }
                for c in rows
            ],
        }
    )


@documented(body=obj({"csv_base64": string(MAX_CSV * 2)}, ("csv_base64",)))
@requires(Role.LEAD)
async def import_csv(request: web.Request) -> web.Response:
    """POST /api/users/import {csv_base64}: the CSV import of `cti user import`, from the page.
    With any error nothing is imported, and each error names its line."""
    body = await body_of(request)
    raw = body.get("csv_base64")
    if not isinstance(raw, str) or not raw:
        raise InvalidInput("csv_base64: the file, base64-encoded, is required")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("csv_base64: not base64") from None
    if len(data) > MAX_CSV:
        raise InvalidInput(f"csv_base64: the file is larger than {MAX_CSV} bytes")
    staff = current(request)
    assert staff is not None
    async with request.app[SESSIONS].begin() as s:
        result = await directory.import_users(
            s, data, by=f"{staff.name} ({staff.username})", now=datetime.now(UTC),
            plan=request.app[PLAN],
        )  # fmt: skip
        if not result.errors:  # with errors, import_users changed nothing
            console.record(
                request,
                s,
                "directory.import",
                f"{len(data)} bytes",
                {"created": result.created, "updated": result.updated},
            )
    return web.json_response(
        {
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "errors": result.errors,
        },
        status=400 if result.errors else 200,
    )


async def run_sync(
    app: web.Application, *, dry_run: bool, actor: str, address: str = ""
) -> dict[str, Any]:
    """One sync (or dry run) with its audit entry; Conflict when no directory is configured."""
    if LDAP not in app:
        raise Conflict("no LDAP directory is configured (CTI_LDAP_URL)")
    async with app[SESSIONS].begin() as s:
        plan = await sync(s, app[LDAP], dry_run=dry_run, now=datetime.now(UTC), plan=app[PLAN])
        if not dry_run:
            audit.record(
                s,
                actor,
                "directory.sync",
                app[LDAP].url,
                {
                    "created": len(plan.created),
                    "updated": len(plan.updated),
                    "skipped": len(plan.skipped),
                },
                address,
            )
    return plan.as_json(dry_run)


@documented(responses=(409, 503), body=obj({"dry_run": {"type": "boolean"}}))
@requires(Role.LEAD)
async def sync_now(request: web.Request) -> web.Response:
    """POST /api/directory/sync {dry_run}: sync the directory from LDAP / AD now; a dry run
    says what would change and changes nothing."""
    body = await body_of(request)
    dry_run = body.get("dry_run", True)
    if not isinstance(dry_run, bool):
        raise InvalidInput("dry_run must be true or false")
    staff = current(request)
    assert staff is not None
    try:
        result = await run_sync(
            request.app, dry_run=dry_run, actor=staff.username, address=console.remote(request)
        )
    except LdapError as exc:
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": "LdapError", "message": str(exc)}),
            content_type="application/json",
        ) from None
    return web.json_response(result)


@requires(Role.LEAD)
async def directory_page(request: web.Request) -> web.Response:
    """GET /directory?q=: search, edit, history, CSV import, LDAP sync."""
    q = request.query.get("q", "").strip()[:60]
    async with request.app[SESSIONS]() as s:
        stmt = select(User).order_by(User.employee_no).limit(50)
        if q:
            like = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(
                User.employee_no.like(like, escape="\\")
                | User.name.like(like, escape="\\")
                | User.department.like(like, escape="\\")
                | User.office_phone.like(like, escape="\\")
                | User.mobile.like(like, escape="\\")
            )
        users = (await s.scalars(stmt)).all()
    return console.page(
        request,
        "directory.html",
        q=q,
        users=[{**directory.user_json(u), "privileged": u.privileged} for u in users],
        ldap=request.app[LDAP].url if LDAP in request.app else "",
        fields=directory.FIELDS,
    )


async def ldap_ctx(app: web.Application) -> AsyncIterator[None]:
    """The LDAP directory (if configured): staff login against it, and the scheduled sync."""
    s = app[SETTINGS]
    cfg = LdapConfig.from_settings(s)
    task: asyncio.Task[None] | None = None
    if cfg is not None:
        app[LDAP] = cfg
        if s.ldap_staff_login:
            app[LDAP_LOGIN] = LdapLogin(cfg)
        if s.ldap_sync_minutes > 0:
            task = asyncio.create_task(_scheduled(app, s.ldap_sync_minutes * 60.0), name="ldap")
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _scheduled(app: web.Application, every: float) -> None:
    while True:
        try:
            if not runs_desk_jobs(app):
                await asyncio.sleep(every)
                continue
            result = await run_sync(app, dry_run=False, actor="scheduler")
            logger.info(
                "directory sync: %d created, %d updated, %d skipped",
                len(result["created"]),
                len(result["updated"]),
                len(result["skipped"]),
            )
        except LdapError as exc:
            logger.error("directory sync failed: %s", exc)
        except Exception:
            logger.exception("directory sync failed")
        await asyncio.sleep(every)


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/users/{id}/history", user_history)
    app.router.add_post("/api/users/import", import_csv)
    app.router.add_post("/api/directory/sync", sync_now)
    app.router.add_get("/directory", directory_page)
