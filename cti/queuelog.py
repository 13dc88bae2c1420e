"""Asterisk's queue_log: an independent record of every queue call, read incrementally.

Line format: `epoch|callid|queue|agent|event|data1|data2|...` where callid is the caller channel's
Uniqueid. Times are whole seconds.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

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
