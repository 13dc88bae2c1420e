"""The audit log: who changed what and when. Each entry is added in the transaction of the change
it records, so a change that rolls back leaves no entry and no change goes unrecorded."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from desk.models import AuditEntry

# Free text in `detail` is cut to this many characters: the log says what changed, it is not a
# second copy of every article body.
DETAIL_CHARS = 300


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > DETAIL_CHARS:
        return value[:DETAIL_CHARS] + "…"
    return value


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """{field: [old, new]} for the fields of `after` whose value differs from `before`."""
    return {
        key: [_short(before.get(key)), _short(value)]
        for key, value in after.items()
        if before.get(key) != value
    }


def record(
    session: AsyncSession,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
    address: str = "",
    now: datetime | None = None,
) -> AuditEntry:
    """Add an entry to the session's transaction."""
    entry = AuditEntry(
        at=now or datetime.now(UTC),
        actor=actor[:80],
        action=action[:40],
        target=target[:200],
        address=address[:60],
        detail={k: _short(v) for k, v in (detail or {}).items()},
    )
    session.add(entry)
    return entry


def query(
    *,
    text: str = "",
    actor: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[AuditEntry]:
    """Entries newest first: `action` matches a prefix ("staff" finds staff.create, ...),
    `text` a part of the target or the actor."""
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if actor:
        stmt = stmt.where(AuditEntry.actor == actor)
    if action:
        stmt = stmt.where(
            or_(AuditEntry.action == action, AuditEntry.action.startswith(action + "."))
        )
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            or_(
                AuditEntry.target.like(pattern, escape="\\"),
                AuditEntry.actor.like(pattern, escape="\\"),
            )
        )
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    if until is not None:
        stmt = stmt.where(AuditEntry.at < until)
    return stmt


async def search(
    session: AsyncSession,
    *,
    limit: int = 200,
    offset: int = 0,
    text: str = "",
    actor: str = "",
    action: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[AuditEntry]:
    """The entries matching the filters (see query)."""
    stmt = query(text=text, actor=actor, action=action, since=since, until=until)
    rows = await session.scalars(stmt.limit(limit).offset(offset))
    return list(rows.all())


def entry_json(e: AuditEntry, tz: Any) -> dict[str, Any]:
    """The public form, times in the desk's time zone."""
    return {
        "id": e.id,
        "at": e.at.astimezone(tz).isoformat(),
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "address": e.address,
        "detail": e.detail,
    }
