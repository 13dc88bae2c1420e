"""Reading the journal and comparing it with Asterisk's queue_log."""

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cti.queuelog import QueueLogCall, QueueLogReader, queue_calls
from tests.support.db import query


def rows(folder: Path, prefix: str) -> list[dict[str, Any]]:
    """Journal rows whose Uniqueid starts with `prefix` (read straight from the test's database,
    SQLite or PostgreSQL: see tests.support.db)."""
    return query(
        folder, "SELECT * FROM calls WHERE uniqueid LIKE ? ORDER BY uniqueid", prefix + "%"
    )


async def wait_finished(
    folder: Path, prefix: str, count: int, timeout: float = 60
) -> list[dict[str, Any]]:
    """Wait until `count` finished records with that prefix are in the journal of the test
    whose folder this is."""
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = rows(folder, prefix)
        if len([r for r in found if r["ended_at"]]) >= count:
            return found
        await asyncio.sleep(0.25)
    return found


def queue_log_calls(path: str, prefix: str) -> dict[str, QueueLogCall]:
    """queue_log's own summary of the calls with that prefix."""
    entries, _ = QueueLogReader(Path(path)).read_since(None)
    return {k: v for k, v in queue_calls(entries).items() if k.startswith(prefix)}


@dataclass
class Mismatch:
    """One call where the journal and queue_log disagree."""

    uniqueid: str
    journal: tuple[Any, ...]
    queue_log: tuple[Any, ...] | None

    def __str__(self) -> str:
        return f"{self.uniqueid}: journal {self.journal} vs queue_log {self.queue_log}"


def compare(
    journal: list[dict[str, Any]], ql: dict[str, QueueLogCall], tolerance: float = 1.0
) -> list[Mismatch]:
    """Calls whose outcome differs, or whose wait or talk differs by more than `tolerance` s."""
    bad = []
    for r in journal:
        q = ql.get(r["uniqueid"])
        mine = (r["outcome"], r["wait_seconds"], r["talk_seconds"], r["agent"])
        if q is None:
            bad.append(Mismatch(r["uniqueid"], mine, None))
            continue
        theirs = (q.outcome, q.wait, q.talk, q.agent)
        ok = q.outcome == r["outcome"] or (q.outcome == "unknown" and r["outcome"] == "dropped")
        if q.wait is not None:
            ok = (
                ok
                and r["wait_seconds"] is not None
                and abs(r["wait_seconds"] - q.wait) <= tolerance
            )
        if q.talk is not None:
            ok = (
                ok
                and r["talk_seconds"] is not None
                and abs(r["talk_seconds"] - q.talk) <= tolerance
            )
        if q.agent:
            ok = ok and r["agent"] == q.agent
        if not ok:
            bad.append(Mismatch(r["uniqueid"], mine, theirs))
    return bad
