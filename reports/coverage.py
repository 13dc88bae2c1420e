"""What Asterisk's queue_log saw in a report's period, for the coverage statement (6.5.4), read in
bounded memory: the log grows for years (tens of MB), a report wants a day or a month of it.

queue_log lines are written as events happen, so they are in time order give or take a clock
step: the start of the period is found by bisection on the file (SLACK seconds early), lines are
read one at a time from there, and reading stops SLACK seconds after the period. A line that does
not parse (a garbled write, a time of `inf`) is counted and skipped, never fatal.
"""

import os
from dataclasses import dataclass
from pathlib import Path

from cti.queuelog import QueueLogEntry, parse_line

SLACK = 3600.0  # seconds of disorder tolerated around the period's ends
MAX_LINE = 64 * 1024  # a longer "line" is garbage: counted, skipped in pieces
_PROBES = 50  # unreadable lines a bisection step skips before giving up on its half
_LATEST = 2.0**33  # a time past the year 2242 is garbage too


@dataclass(frozen=True)
class QueueLogSeen:
    """Calls that entered a queue in the period, and lines read that did not parse."""

    offered: int
    unreadable: int


def _entry(raw: bytes) -> QueueLogEntry | None:
    try:
        entry = parse_line(raw.decode("utf-8", errors="replace"))
    except (ValueError, OverflowError):  # int(float("inf")) raises OverflowError
        return None
    if entry is None or not 0 <= entry.time < _LATEST:
        return None
    return entry


class _Reader:
    """Complete lines of a binary file from an offset, each at most MAX_LINE bytes."""

    def __init__(self, path: Path) -> None:
        self.fh = path.open("rb")

    def close(self) -> None:
        self.fh.close()

    def seek_line(self, offset: int) -> None:
        """Go to the first line that starts at or after `offset`."""
        self.fh.seek(offset)
        if offset:
            self.fh.seek(offset - 1)
            if self.fh.read(1) != b"\n":
                self.next()  # the rest of a line begun before `offset`

    def next(self) -> bytes | None:
        """The next complete line (b"" for one too long to read), or None at the end (a last
        line without its newline is being written now: not yet)."""
        raw = self.fh.readline(MAX_LINE)
        if not raw.endswith(b"\n"):
            if len(raw) < MAX_LINE:
                return None
            while raw and not raw.endswith(b"\n"):
                raw = self.fh.readline(MAX_LINE)
            return b"" if raw else None
        return raw


def _first_time(reader: _Reader, offset: int) -> float | None:
    """The time of the first readable line at or after `offset` (None: none near it)."""
    reader.seek_line(offset)
    for _ in range(_PROBES):
        raw = reader.next()
        if raw is None:
            return None
        entry = _entry(raw) if raw else None
        if entry is not None:
            return float(entry.time)
    return None


def _start(reader: _Reader, size: int, lo: float) -> int:
    """An offset at or before the first line of time >= lo - SLACK."""
    low, high = 0, size
    while high - low > MAX_LINE:
        mid = (low + high) // 2
        t = _first_time(reader, mid)
        if t is not None and t < lo - SLACK:
            low = mid
        else:
            high = mid
    return low


def queue_log_seen(path: Path, lo: float, hi: float) -> QueueLogSeen | None:
    """Distinct calls (callid) with an ENTERQUEUE line in [lo, hi) epoch seconds; None when the
    file does not exist."""
    try:
        reader = _Reader(path)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(reader.fh.fileno()).st_size
        reader.seek_line(_start(reader, size, lo))
        seen: set[str] = set()
        unreadable = 0
        while (raw := reader.next()) is not None:
            entry = _entry(raw) if raw.strip() else None
            if entry is None:
                unreadable += 1 if raw.strip() or raw == b"" else 0
                continue
            if entry.time >= hi + SLACK:
                break
            if entry.event == "ENTERQUEUE" and lo <= entry.time < hi:
                seen.add(entry.callid)
        return QueueLogSeen(len(seen), unreadable)
    finally:
        reader.close()
