"""Asterisk's call detail records in PostgreSQL (cdr_pgsql): an independent record of every call
Asterisk handled, queued or not, read back after the CTI server could not watch (its AMI link
down, the server itself stopped, its FastAGI unreachable).

Asterisk writes one CDR per leg when the channel hangs up. Our dialplan marks the caller's
channel (`Set(CDR(cti_entry)=inbound)` in asterisk-conf/extensions.conf, with the number
dialled and the queue's verdict), and cdr_pgsql writes each CDR variable into the column of its
name: so the rows of a call's own channel are told from its other legs (agents' phones, the
simulator's caller half, internal calls) without guessing from context names.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cti.errors import ConfigError
from cti.queuelog import MAX_TIME, rows_after

# The table a site creates (README, "Operations"); the tests create it too. cdr_pgsql fills
# every column whose name is a CDR field or a CDR variable, and leaves `id` to its default.
# start, answer and "end" as DOUBLE PRECISION get epoch seconds with microseconds.
TABLE_SQL = """
CREATE TABLE {table} (
    id BIGSERIAL PRIMARY KEY,
    calldate TIMESTAMP WITHOUT TIME ZONE NOT NULL DEFAULT now(),
    start DOUBLE PRECISION,
    answer DOUBLE PRECISION,
    "end" DOUBLE PRECISION,
    clid VARCHAR(80) NOT NULL DEFAULT '',
    src VARCHAR(80) NOT NULL DEFAULT '',
    dst VARCHAR(80) NOT NULL DEFAULT '',
    dcontext VARCHAR(80) NOT NULL DEFAULT '',
    channel VARCHAR(80) NOT NULL DEFAULT '',
    dstchannel VARCHAR(80) NOT NULL DEFAULT '',
    lastapp VARCHAR(80) NOT NULL DEFAULT '',
    lastdata VARCHAR(80) NOT NULL DEFAULT '',
    duration DOUBLE PRECISION,
    billsec DOUBLE PRECISION,
    disposition VARCHAR(45) NOT NULL DEFAULT '',
    amaflags BIGINT NOT NULL DEFAULT 0,
    accountcode VARCHAR(20) NOT NULL DEFAULT '',
    uniqueid VARCHAR(150) NOT NULL DEFAULT '',
    userfield VARCHAR(255) NOT NULL DEFAULT '',
    peeraccount VARCHAR(20) NOT NULL DEFAULT '',
    linkedid VARCHAR(150) NOT NULL DEFAULT '',
    sequence BIGINT NOT NULL DEFAULT 0,
    cti_entry VARCHAR(20) NOT NULL DEFAULT '',
    cti_did VARCHAR(80) NOT NULL DEFAULT '',
    cti_queue VARCHAR(80) NOT NULL DEFAULT '',
    cti_queue_status VARCHAR(20) NOT NULL DEFAULT ''
)
"""

# Columns the reader needs; the others in TABLE_SQL are Asterisk's and read by nobody here.
_NEEDED = ("id", "uniqueid", "linkedid", "start", "answer", "end", "clid", "src", "channel",
           "disposition", "cti_entry", "cti_did", "cti_queue", "cti_queue_status")  # fmt: skip
# Rows read at most per query: a resync after a long outage reads in several passes.
_BATCH = 20_000
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_CLID = re.compile(r'^\s*"?(?P<name>.*?)"?\s*<(?P<num>[^>]*)>\s*$')


@dataclass(frozen=True, slots=True)
class CdrRecord:
    """One CDR row (one leg of a call): times are Unix seconds (UTC)."""

    id: int
    uniqueid: str
    linkedid: str
    start: float
    answer: float | None
    end: float
    clid: str
    src: str
    channel: str
    disposition: str
    entry: str  # cti_entry: "inbound", "callback", or "" for a leg that is not a call's own
    did: str  # cti_did: the number the caller dialled
    queue: str  # cti_queue / cti_queue_status: the queue and Queue()'s QUEUESTATUS
    queue_status: str


@dataclass
class CdrCall:
    """What the CDRs of one call's own channel say (its rows folded together)."""

    uniqueid: str
    linkedid: str
    channel: str
    started: float
    ended: float
    caller_number: str
    caller_name: str
    did: str
    entry: str
    queue: str
    queue_status: str


def caller_name(clid: str) -> str:
    """The name in a CDR's clid (`"张三" <13800138000>` -> 张三); "" without one."""
    m = _CLID.match(clid)
    return m.group("name").strip() if m else ""


def cdr_calls(records: Iterable[CdrRecord]) -> dict[str, CdrCall]:
    """The calls among these CDRs, by the Uniqueid of the call's own channel (the one the
    dialplan marked): its first start, its last end, and the marks found on any of its rows."""
    rows = list(records)
    marked = {r.uniqueid for r in rows if r.entry}
    calls: dict[str, CdrCall] = {}
    for r in sorted((r for r in rows if r.uniqueid in marked), key=lambda r: (r.start, r.id)):
        call = calls.get(r.uniqueid)
        if call is None:
            calls[r.uniqueid] = CdrCall(r.uniqueid, r.linkedid, r.channel, r.start, r.end,
                                        r.src, caller_name(r.clid), r.did, r.entry, r.queue,
                                        r.queue_status)  # fmt: skip
            continue
        call.ended = max(call.ended, r.end)
        call.did = call.did or r.did
        call.entry = call.entry or r.entry
        call.caller_number = call.caller_number or r.src
        call.caller_name = call.caller_name or caller_name(r.clid)
        if r.queue_status:  # the last verdict wins: a caller may queue more than once
            call.queue, call.queue_status = r.queue or call.queue, r.queue_status
    return calls


def _epoch(value: Any) -> float | None:
    """A CDR time as Unix seconds: a number (DOUBLE PRECISION or BIGINT columns), or a timestamp
    (cdr_pgsql.conf `timezone = UTC`: one without a zone is UTC). None for an unset time (0,
    1970) or one no report can use."""
    if value is None:
        return None
    if isinstance(value, int | float | Decimal):
        stamp = float(value)
    else:
        when = value if isinstance(value, datetime) else None
        if when is None:
            try:
                when = datetime.fromisoformat(str(value).strip())
            except ValueError:
                return None
        stamp = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    if not 0 < stamp <= MAX_TIME:
        return None
    return stamp


def _record(row: Any) -> CdrRecord | None:
    """One row as a record (None: no usable start or end)."""
    (rid, uniqueid, linkedid, start, answer, end, clid, src, channel, disposition,
     entry, did, queue, status) = row  # fmt: skip
    started, ended = _epoch(start), _epoch(end)
    if started is None or ended is None or not uniqueid:
        return None
    return CdrRecord(int(rid), str(uniqueid), str(linkedid or uniqueid), started, _epoch(answer),
                     max(started, ended), str(clid or ""), str(src or ""), str(channel or ""),
                     str(disposition or ""), str(entry or ""), str(did or ""), str(queue or ""),
                     str(status or ""))  # fmt: skip


class CdrTable:
    """Asterisk's CDR table in PostgreSQL, read by its increasing `id` (a position is an id)."""

    def __init__(self, engine: AsyncEngine, table: str = "cdr") -> None:
        if not _IDENT.fullmatch(table):
            raise ConfigError(f"setting cdr_table: {table!r} is not a plain table name")
        self.engine = engine
        self.table = table
        self.malformed = 0  # rows skipped so far (no start or end), for the logs and the tests
        self._checked = False

    def describe(self) -> str:
        """The database (password hidden) and table."""
        return f"{self.engine.url.render_as_string(hide_password=True)} table {self.table}"

    async def close(self) -> None:
        """Close the pool."""
        await self.engine.dispose()

    async def _check(self, conn: AsyncConnection) -> None:
        if self._checked:
            return
        rows = await conn.execute(
            text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"),
            {"t": self.table},
        )
        names = {r[0] for r in rows}
        if not names:
            raise ConfigError(f"CDR table {self.table!r} does not exist")
        missing = [c for c in _NEEDED if c not in names]
        if missing:
            raise ConfigError(
                f"CDR table {self.table!r} lacks the columns {', '.join(missing)} "
                "(see the README: CDRs into PostgreSQL)"
            )
        self._checked = True

    async def end(self) -> int:
        """The newest row's id (0: an empty table)."""
        async with self.engine.connect() as conn:
            await self._check(conn)
            top = (await conn.execute(text(f"SELECT max(id) FROM {self.table}"))).scalar()
        return int(top or 0)

    async def read_since(self, after: int) -> tuple[list[CdrRecord], int]:
        """Rows after id `after` in id order, and the new position."""
        cols = ", ".join(f'"{c}"' for c in _NEEDED)
        records: list[CdrRecord] = []
        async with self.engine.connect() as conn:
            await self._check(conn)
            rows, after = await rows_after(conn, self.table, cols, after, _BATCH)
        for row in rows:
            record = _record(row)
            if record is None:
                self.malformed += 1
            else:
                records.append(record)
        return records, after
