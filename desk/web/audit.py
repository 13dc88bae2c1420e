"""The audit log page and API (lead): who changed what and when."""

import json
from datetime import timedelta

from aiohttp import web

from cti.errors import InvalidInput
from cti.phone import digits
from desk import audit
from desk.models import Role
from desk.validation import text_field, when
from desk.web.auth import requires
from desk.web.console import page
from desk.web.keys import SESSIONS, SETTINGS
from desk.web.openapi import documented, string


async def _entries(request: web.Request) -> list[dict[str, object]]:
    q = request.query
    tz = request.app[SETTINGS].tz
    text, actor, action = (text_field(dict(q), k, 200) or "" for k in ("text", "actor", "action"))
    since = when("since", q["since"], tz, day_ok=True) if q.get("since") else None
    until = when("until", q["until"], tz, day_ok=True) if q.get("until") else None
    if until is not None and len(q["until"].strip()) == 10:
        until += timedelta(days=1)  # a bare date: the whole of that day
    raw_limit = q.get("limit", "200")
    if not digits(raw_limit) or not 1 <= int(raw_limit) <= 1000:
        raise InvalidInput("limit: a whole number from 1 to 1000")
    async with request.app[SESSIONS]() as s:
        rows = await audit.search(
            s,
            limit=int(raw_limit),
            text=text,
            actor=actor,
            action=action,
            since=since,
            until=until,
        )
    return [audit.entry_json(e, tz) for e in rows]


_QUERY = {
    "text": string(200),
    "actor": string(200),
    "action": string(200),
    "since": {"type": "string", "format": "date"},
    "until": {"type": "string", "format": "date"},
    "limit": {"type": "string", "pattern": "^[0-9]{1,4}$"},
}


@documented(query=_QUERY)
@requires(Role.LEAD)
async def list_audit(request: web.Request) -> web.Response:
    """GET /api/audit?text=&actor=&action=&since=&until=&limit=: newest first."""
    return web.json_response({"entries": await _entries(request)})


@requires(Role.LEAD)
async def audit_page(request: web.Request) -> web.Response:
    """GET /audit: search the audit log."""
    try:
        entries, error = await _entries(request), ""
    except InvalidInput as exc:
        entries, error = [], str(exc)
    for e in entries:  # the details as the lead reads them: 审计部, not \u5ba1\u8ba1\u90e8
        e["detail_text"] = json.dumps(e["detail"], ensure_ascii=False, sort_keys=True)
    return page(request, "audit.html", entries=entries, error=error, query=dict(request.query))


def setup(app: web.Application) -> None:
    """Register the routes."""
    app.router.add_get("/api/audit", list_audit)
    app.router.add_get("/audit", audit_page)
