"""The journal's writer task on a real SQLite file: its schedule, and a stop in mid-flush."""

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest

from cti.db import create_engine, migrate, session_maker
from cti.journal.service import MAX_FLUSH_GAP, WRITE_SHARE, JournalService
from cti.live.tracker import CallTracker
from desk.migrations import MIGRATIONS
from tests.support.replay import load, replay


def test_a_slow_flush_spaces_the_next_one_out() -> None:
    journal = JournalService(session_maker(create_engine("sqlite+aiosqlite://")),
                             CallTracker(["cti-inbound"]), None, flush_interval=0.2)  # fmt: skip
    assert journal.next_flush_in() == 0.2
    journal._spacing = 0.001  # a small batch: the interval
    assert journal.next_flush_in() == 0.2
    journal._spacing = 0.05  # the writes take at most WRITE_SHARE of the time
    assert journal.next_flush_in() == pytest.approx(0.05 / WRITE_SHARE - 0.05)
    journal._spacing = 30.0  # never longer than MAX_FLUSH_GAP
    assert journal.next_flush_in() == MAX_FLUSH_GAP


async def test_a_stop_in_mid_flush_loses_no_call(tmp_path: Path) -> None:
    """The writer is cancelled (a stop) while its flush waits for the database: the flush under
    way completes, the last flush follows, and every call is in the journal. (Before: the
    cancelled flush's calls were lost, and its transaction could hold SQLite's lock.)"""
    path = tmp_path / "journal.sqlite3"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine, MIGRATIONS)
    tracker, _ = replay(load("small"))
    dirty = tracker.take_dirty()  # every call of the session, ended or not, has a row to write
    tracker.mark_dirty(dirty)
    journal = JournalService(session_maker(engine), tracker, None, flush_interval=0.01)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the writer's flush waits for this lock
    writer = asyncio.create_task(journal.run_writer(lambda: False))
    await asyncio.sleep(0.5)  # its first flush (due after 0.01 s) took the batch, and waits
    assert not tracker._dirty, "the writer's flush is under way"
    writer.cancel()
    await asyncio.sleep(0.1)
    blocker.execute("COMMIT")
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(writer, 30)
    written = {r[0] for r in blocker.execute("SELECT uniqueid FROM calls")}
    blocker.execute("BEGIN IMMEDIATE")  # and no transaction of ours holds the lock
    blocker.execute("ROLLBACK")
    blocker.close()
    journal.close()
    await engine.dispose()
    assert written == {c.uniqueid for c in dirty} and dirty
