"""Asterisk's queue_log: an independent record of every queue call, read incrementally from
its file (a volume shared with the Asterisk host) or its realtime table in PostgreSQL.

Line format: `epoch|callid|queue|agent|event|data1|data2|...` where callid is the caller channel's
Uniqueid. Times are whole seconds.
"""

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cti.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_TIME = 253402300799  # 9999-12-31 23:59:59 UTC


@dataclass(frozen=True, slots=True)
class QueueLogEntry:
    """One queue_log line."""

    time: int
    callid: str
    queue: str
    agent: str
    event: str
    data: tuple[str, ...]

    def field(self, index: int, default: str = "") -> str:
        """data[index] or `default`."""
        return self.data[index] if index < len(self.data) else default

    def int_field(self, index: int) -> int | None:
        """data[index] as an int, or None if absent or not a number."""
        try:
            return int(self.field(index))
        except ValueError:
            return None


def parse_line(line: str) -> QueueLogEntry | None:
    """Parse one line; None for a malformed one."""
    parts = line.rstrip("\r\n").split("|")
    if len(parts) < 5:
        return None
    try:
        when = float(parts[0])
    except ValueError:
        return None
    # Epoch seconds a report can turn into a date: not inf or nan (int() raised on those), not
    # before 1970, not past the year 9999.
    if not 0 <= when <= MAX_TIME:
        return None
    return QueueLogEntry(int(when), parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


@dataclass(frozen=True)
class Position:
    """Where we stopped reading: the file's inode and a byte offset (just after a newline)."""

    inode: int
    offset: int

    def encode(self) -> str:
        """For journal_meta."""
        return f"{self.inode}:{self.offset}"

    @classmethod
    def decode(cls, raw: str | None) -> "Position | None":
        """From journal_meta."""
        if not raw or ":" not in raw:
            return None
        inode, _, offset = raw.partition(":")
        return cls(int(inode), int(offset))


class QueueLogReader:
    """Reads queue_log lines appended since a Position (handles rotation)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.malformed = 0  # lines skipped so far, for the logs and the tests

    def end(self) -> Position | None:
        """The current end of the file, or None if it does not exist."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return Position(st.st_ino, st.st_size)

    def tail(self, size: int) -> Position | None:
        """The start of the first whole line in the file's last `size` bytes (None: no file)."""
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                if st.st_size <= size:
                    return Position(st.st_ino, 0)
                fh.seek(st.st_size - size - 1)
                chunk = fh.read(size + 1)
        except FileNotFoundError:
            return None
        newline = chunk.find(b"\n")
        offset = st.st_size - size - 1 + newline + 1 if newline >= 0 else st.st_size
        return Position(st.st_ino, offset)

    def read_since(self, pos: Position | None) -> tuple[list[QueueLogEntry], Position | None]:
        """Entries after `pos` (from the start if the file was rotated), and the new position."""
        try:
            with self.path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                offset = 0
                if pos is not None and pos.inode == st.st_ino and pos.offset <= st.st_size:
                    offset = pos.offset
                    # We stopped just after a newline; if that byte is something else now, the
                    # file was truncated and written again past our offset (copytruncate), and
                    # resuming there would read the middle of a line as one: start over.
                    if offset:
                        fh.seek(offset - 1)
                        if fh.read(1) != b"\n":
                            offset = 0
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            logger.warning("queue_log %s not found: cannot reconcile", self.path)
            return [], pos
        # Asterisk may be writing a line right now: stop after the last complete one.
        cut = data.rfind(b"\n") + 1
        entries = []
        bad = 0
        # Lines end at b"\n" only: str.splitlines() would also break at \x0b, \x1c, \x85 or
        # U+2028 inside a field, losing the line (or making two).
        for raw in data[:cut].split(b"\n"):
            line = raw.decode("utf-8", errors="replace")
            entry = parse_line(line)
            if entry is None:
                bad += 1 if line.strip() else 0
            else:
                entries.append(entry)
        if bad:
            self.malformed += bad
            logger.warning("queue_log: %d malformed lines skipped", bad)
        return entries, Position(st.st_ino, offset + cut)


@dataclass
class QueueLogCall:
    """What queue_log alone says about one queue call."""

    callid: str
    queue: str
    entered_at: int
    outcome: str = "unknown"  # answered, abandoned, queue_timeout, left_empty, ...
    agent: str = ""
    wait: int | None = None
    talk: int | None = None
    ring_no_answer: int = 0


_QL_OUTCOME = {
    "ABANDON": "abandoned",
    "EXITWITHTIMEOUT": "queue_timeout",
    "EXITEMPTY": "left_empty",
    "EXITWITHKEY": "exit_with_key",
}


def queue_calls(entries: list[QueueLogEntry]) -> dict[str, QueueLogCall]:
    """Fold queue_log lines into one summary per callid (first queue visit)."""
    calls: dict[str, QueueLogCall] = {}
    for e in entries:
        if e.event == "ENTERQUEUE" and e.callid not in calls:
            calls[e.callid] = QueueLogCall(e.callid, e.queue, e.time)
            continue
        c = calls.get(e.callid)
        if c is None:
            continue
        if e.event == "CONNECT":
            c.outcome, c.agent, c.wait = "answered", e.agent, e.int_field(0)
        elif e.event in ("COMPLETECALLER", "COMPLETEAGENT"):
            c.talk = e.int_field(1)
        elif e.event in ("BLINDTRANSFER", "ATTENDEDTRANSFER"):
            c.talk = e.int_field(3)
        elif e.event in _QL_OUTCOME and c.outcome == "unknown":
            c.outcome = _QL_OUTCOME[e.event]
            c.wait = e.int_field(3 if e.event == "EXITWITHKEY" else 2)
        elif e.event == "RINGNOANSWER":
            c.ring_no_answer += 1
    return calls


class QueueLogSource(Protocol):
    """Where the journal reads queue_log from: Asterisk's file, or its realtime table."""

    def describe(self) -> str:
        """For /healthz and the logs (no password)."""
        ...

    async def end(self) -> Position | None:
        """The current end."""
        ...

    async def tail(self, size: int) -> Position | None:
        """About the last `size` bytes' worth of entries (the first start's look-back)."""
        ...

    async def read_since(self, pos: Position | None) -> tuple[list[QueueLogEntry], Position | None]:
        """Entries after `pos`, and the new position."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


class QueueLogFile:
    """queue_log as a file this host sees (a shared volume): read off the event loop."""

    def __init__(self, path: Path) -> None:
        self.reader = QueueLogReader(path)

    def describe(self) -> str:
        """The file's path."""
        return str(self.reader.path)

    async def end(self) -> Position | None:
        """The file's end."""
        return await asyncio.to_thread(self.reader.end)

    async def tail(self, size: int) -> Position | None:
        """The first whole line of the last `size` bytes."""
        return await asyncio.to_thread(self.reader.tail, size)

    async def read_since(self, pos: Position | None) -> tuple[list[QueueLogEntry], Position | None]:
        """Lines after `pos`."""
        return await asyncio.to_thread(self.reader.read_since, pos)

    async def close(self) -> None:
        """Nothing held open."""


# A position in the table is its `id` column; this inode marks it (a file's inode is never 0).
TABLE_INODE = 0
# About how many bytes one file line takes, to turn the file's look-back size into rows.
_LINE_BYTES = 80
# Rows read at most per call: a resync after a long outage reads in several passes.
_BATCH = 50_000
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class QueueLogTable:
    """Asterisk's realtime queue_log (res_config_pgsql, extconfig.conf `queue_log =>
    pgsql,general,queue_log`) in PostgreSQL: the CTI server reads it over the network and needs
    no file shared with the Asterisk host.

    The table needs an increasing `id` (BIGSERIAL) so new rows can be found; Asterisk writes
    `time` as text in its own time zone unless logger.conf says `queue_log_realtime_use_gmt =
    yes`, which this reader requires (a TIMESTAMP WITHOUT TIME ZONE is read as UTC). With
    `queue_adaptive_realtime = yes` the data are in data1..data5, else in one `data` column.
    """

    def __init__(self, engine: AsyncEngine, table: str = "queue_log") -> None:
        if not _IDENT.fullmatch(table):
            raise ConfigError(f"setting queue_log_table: {table!r} is not a plain table name")
        self.engine = engine
        self.table = table
        self.malformed = 0
        self._columns: list[str] | None = None

    async def close(self) -> None:
        """Close the pool."""
        await self.engine.dispose()

    def describe(self) -> str:
        """The database (password hidden) and table."""
        return f"{self.engine.url.render_as_string(hide_password=True)} table {self.table}"

    async def _data_columns(self, conn: AsyncConnection) -> list[str]:
        if self._columns is None:
            rows = await conn.execute(
                text("SELECT column_name FROM information_schema.columns WHERE table_name = :t"),
                {"t": self.table},
            )
            names = {r[0] for r in rows}
            if not names:
                raise ConfigError(f"queue_log table {self.table!r} does not exist")
            adaptive = [f"data{i}" for i in range(1, 6) if f"data{i}" in names]
            self._columns = adaptive or (["data"] if "data" in names else [])
        return self._columns

    async def end(self) -> Position | None:
        """The newest row's id."""
        async with self.engine.connect() as conn:
            top = (await conn.execute(text(f"SELECT max(id) FROM {self.table}"))).scalar()
        return Position(TABLE_INODE, int(top or 0))

    async def tail(self, size: int) -> Position | None:
        """About `size` bytes' worth of rows back from the newest."""
        found = await self.end()
        assert found is not None
        return Position(TABLE_INODE, max(0, found.offset - size // _LINE_BYTES))

    async def read_since(self, pos: Position | None) -> tuple[list[QueueLogEntry], Position | None]:
        """Rows after `pos` in id order. A file's position (the site moved from the file to the
        table) means: from now on, as on a first start, not the table's whole history."""
        if pos is not None and pos.inode != TABLE_INODE:
            return [], await self.end()
        after = pos.offset if pos is not None else 0
        entries: list[QueueLogEntry] = []
        async with self.engine.connect() as conn:
            data = await self._data_columns(conn)
            cols = ", ".join(["id", "time", "callid", "queuename", "agent", "event", *data])
            rows, after = await rows_after(conn, self.table, cols, after, _BATCH)
        for row in rows:
            entry = _entry(row, len(data) == 1 and data[0] == "data")
            if entry is None:
                self.malformed += 1
            else:
                entries.append(entry)
        return entries, Position(TABLE_INODE, after)


async def rows_after(
    conn: AsyncConnection, table: str, cols: str, after: int, batch: int
) -> tuple[list[Any], int]:
    """Every row of `table` (Asterisk's queue_log or CDR table) whose id is past `after`, in id
    order, read `batch` at a time (`cols` starts with id), and the last id read."""
    out: list[Any] = []
    while True:
        rows = (
            await conn.execute(
                text(f"SELECT {cols} FROM {table} WHERE id > :after ORDER BY id LIMIT :n"),
                {"after": after, "n": batch},
            )
        ).all()
        out.extend(rows)
        if rows:
            after = int(rows[-1][0])
        if len(rows) < batch:
            return out, after


def _entry(row: Any, single: bool) -> QueueLogEntry | None:
    """One table row as a queue_log entry (None: no usable time)."""
    _, when, callid, queue, agent, event, *data = row
    if isinstance(when, datetime):
        stamp = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    else:
        try:
            parsed = datetime.fromisoformat(str(when))
        except ValueError:
            return None
        stamp = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if not 0 <= stamp <= MAX_TIME:
        return None
    fields = [str(d or "") for d in data]
    if single:
        fields = fields[0].split("|") if fields and fields[0] else []
    while fields and fields[-1] == "":  # the file has no trailing empty data fields either
        fields.pop()
    return QueueLogEntry(int(stamp), str(callid or ""), str(queue or ""), str(agent or ""),
                         str(event or ""), tuple(fields))  # fmt: skip
