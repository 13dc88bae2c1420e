"""Journal queries. Functions take a session and never commit on their own."""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cti.asterisks import DEFAULT_ASTERISK
from cti.journal.models import Call, IvrStep, JournalMeta, LinkOutage

# acw_seconds is written by the agent service when wrap-up ends, after the call may be flushed.
_UPDATABLE = [
    c.name
    for c in Call.__table__.columns
    if c.name not in ("id", "asterisk", "uniqueid", "acw_seconds")
]
# A call's key: its Asterisk's name and its Uniqueid there.
_KEY = ["asterisk", "uniqueid"]


def _upsert(table: Any, key: list[str], updatable: list[str], dialect: str) -> Any:
    """INSERT ... ON CONFLICT (key) DO UPDATE of `updatable`, as a Core statement on the table:
    an ORM-enabled bulk insert (on the mapped class) costs a statement per row on SQLite."""
    ins: Any = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return ins.on_conflict_do_update(
        index_elements=key, set_={c: ins.excluded[c] for c in updatable}
    )


# Built once per dialect: building the statement (its `excluded` columns) cost more than
# executing it for a small batch.
_UPSERT_CALLS = {d: _upsert(Call.__table__, _KEY, _UPDATABLE, d) for d in ("postgresql", "sqlite")}
_UPSERT_META = {
    d: _upsert(JournalMeta.__table__, ["key"], ["value"], d) for d in ("postgresql", "sqlite")
}


def _dialect(session: AsyncSession) -> str:
    return "postgresql" if session.get_bind().dialect.name == "postgresql" else "sqlite"


async def upsert_calls(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or update call rows by (asterisk, Uniqueid) (one statement, executemany). The
    rows are `LiveCall.to_row` dicts: all with the same keys."""
    if not rows:
        return
    await session.execute(_UPSERT_CALLS[_dialect(session)], list(rows))


async def open_calls(session: AsyncSession, asterisk: str = DEFAULT_ASTERISK) -> Sequence[Call]:
    """Calls of this Asterisk the journal still holds as live (no end time)."""
    result = await session.scalars(
        select(Call).where(Call.asterisk == asterisk, Call.ended_at.is_(None))
    )
    return result.all()


async def finished_uniqueids(
    session: AsyncSession, uniqueids: Iterable[str], asterisk: str = DEFAULT_ASTERISK
) -> set[str]:
    """Which of these Uniqueids (of this Asterisk) already have a finished record."""
    ids = list(set(uniqueids))
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        result = await session.scalars(
            select(Call.uniqueid).where(
                Call.asterisk == asterisk, Call.uniqueid.in_(chunk), Call.ended_at.is_not(None)
            )
        )
        found.update(result.all())
    return found


async def ivr_steps_since(
    session: AsyncSession, since: datetime, asterisk: str = DEFAULT_ASTERISK
) -> Sequence[IvrStep]:
    """The IVR steps (of this Asterisk's calls) journaled from `since` on, by call and in order."""
    result = await session.scalars(
        select(IvrStep)
        .where(IvrStep.asterisk == asterisk, IvrStep.at >= since)
        .order_by(IvrStep.call_uniqueid, IvrStep.seq)
    )
    return result.all()


async def known_uniqueids(
    session: AsyncSession, uniqueids: Iterable[str], asterisk: str = DEFAULT_ASTERISK
) -> set[str]:
    """Which of these Uniqueids (of this Asterisk) have a call record at all (finished or not)."""
    ids = list(set(uniqueids))
    found: set[str] = set()
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        result = await session.scalars(
            select(Call.uniqueid).where(Call.asterisk == asterisk, Call.uniqueid.in_(chunk))
        )
        found.update(result.all())
    return found


async def known_calls(
    session: AsyncSession, ids: Iterable[str], asterisk: str = DEFAULT_ASTERISK
) -> set[str]:
    """Which of these ids are the Uniqueid or the Linkedid of a call record of this Asterisk
    (finished or not)."""
    wanted = list(set(ids))
    found: set[str] = set()
    for i in range(0, len(wanted), 500):
        chunk = wanted[i : i + 500]
        result = await session.execute(
            select(Call.uniqueid, Call.linkedid).where(
                Call.asterisk == asterisk,
                or_(Call.uniqueid.in_(chunk), Call.linkedid.in_(chunk)),
            )
        )
        for uniqueid, linkedid in result.all():
            found.update({uniqueid, linkedid})
    return found & set(wanted)


async def get_meta(session: AsyncSession, key: str) -> str | None:
    """A journal_meta value."""
    row = await session.get(JournalMeta, key)
    return row.value if row else None


async def set_meta(session: AsyncSession, values: dict[str, str]) -> None:
    """Set journal_meta values (one upsert, no read first)."""
    if values:
        await session.execute(
            _UPSERT_META[_dialect(session)], [{"key": k, "value": v} for k, v in values.items()]
        )


async def start_outage(
    session: AsyncSession, started_at: datetime, reason: str, asterisk: str = DEFAULT_ASTERISK
) -> None:
    """Record the start of a period without this Asterisk's events (unless one is open)."""
    open_ = await session.scalar(
        select(LinkOutage.id).where(LinkOutage.asterisk == asterisk, LinkOutage.ended_at.is_(None))
    )
    if open_ is None:
        session.add(LinkOutage(asterisk=asterisk, started_at=started_at, reason=reason))


async def end_outage(
    session: AsyncSession, ended_at: datetime, reconciled: int, asterisk: str = DEFAULT_ASTERISK
) -> None:
    """Close this Asterisk's open outage, with the number of calls reconciled for it."""
    await session.execute(
        update(LinkOutage)
        .where(LinkOutage.asterisk == asterisk, LinkOutage.ended_at.is_(None))
        .values(ended_at=ended_at, reconciled_calls=reconciled)
    )


async def list_calls(
    session: AsyncSession,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    outcome: str | None = None,
    queue: str | None = None,
    limit: int = 50,
    offset: int = 0,
    asterisk: str | None = None,
) -> tuple[Sequence[Call], int]:
    """Calls newest first, filtered by arrival time range, outcome, queue and Asterisk; and the
    total."""
    conds: list[Any] = []
    if since is not None:
        conds.append(Call.arrived_at >= since)
    if until is not None:
        conds.append(Call.arrived_at < until)
    if outcome == "live":
        conds.append(Call.ended_at.is_(None))
    elif outcome:
        conds.append(Call.outcome == outcome)
    if queue:
        conds.append(Call.queue == queue)
    if asterisk:
        conds.append(Call.asterisk == asterisk)
    total = await session.scalar(select(func.count()).select_from(Call).where(*conds)) or 0
    rows = await session.scalars(
        select(Call)
        .where(*conds)
        .order_by(Call.arrived_at.desc(), Call.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return rows.all(), int(total)


async def outages(session: AsyncSession, since: datetime | None = None) -> Sequence[LinkOutage]:
    """Recorded outages, newest first."""
    stmt = select(LinkOutage).order_by(LinkOutage.started_at.desc())
    if since is not None:
        stmt = stmt.where((LinkOutage.ended_at.is_(None)) | (LinkOutage.ended_at >= since))
    return (await session.scalars(stmt)).all()


async def set_acw(
    session: AsyncSession, uniqueid: str, seconds: float, asterisk: str = DEFAULT_ASTERISK
) -> None:
    """Record the after-call work (wrap-up) that followed an answered call."""
    await session.execute(
        update(Call)
        .where(Call.asterisk == asterisk, Call.uniqueid == uniqueid)
        .values(acw_seconds=round(seconds, 3))
    )
