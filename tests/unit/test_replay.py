"""Captured real AMI sessions replayed through protocol, parser and tracker."""

from collections import defaultdict
from pathlib import Path

import pytest

from cti.live.bus import Bus, CallEvent
from cti.live.model import CallState, StateCounter
from cti.queuelog import QueueLogReader, queue_calls
from tests.support import journal
from tests.support.replay import FIXTURES, load, replay


def finished_rows(tracker) -> list[dict]:  # type: ignore[no-untyped-def]
    return [c.to_row(0.0) | {"wait_seconds": c.wait_seconds, "talk_seconds": c.talk_seconds}
            for c in tracker.take_dirty() if c.ended_at is not None]  # fmt: skip


@pytest.mark.parametrize("name", ["small", "burst"])
@pytest.mark.parametrize("chunk", [None, 7, 1])
def test_replay_matches_queue_log(name: str, chunk: int | None) -> None:
    if name == "burst" and chunk == 1:
        pytest.skip("one-byte chunks of the 4 MB burst take too long; the small one covers it")
    tracker, client = replay(load(name), chunk=chunk)
    rows = finished_rows(tracker)
    ql = queue_calls(QueueLogReader(Path(FIXTURES / f"{name}.queue_log")).read_since(None)[0])
    assert len(rows) == len(ql) > 0
    assert not tracker.calls, "every captured call ended"
    assert not journal.compare(rows, ql, tolerance=1.0)
    assert client.stats.garbled == 0


def test_chinese_names_survive_one_byte_reads() -> None:
    tracker, _ = replay(load("small"), chunk=1)
    names = {c.caller_name for c in tracker.take_dirty()}
    assert any("\u4e00" <= ch <= "\u9fff" for n in names for ch in n), names
    assert not any("\ufffd" in n for n in names)


def test_uniqueids_sharing_their_seconds_stay_separate_calls() -> None:
    # panoramisk's CallManager groups channels by the seconds part of the Uniqueid; the burst
    # has many calls created within the same second, and each must stay its own record.
    tracker, _ = replay(load("burst"))
    rows = [c for c in tracker.take_dirty() if c.ended_at is not None]
    arrived_seconds = [int(c.arrived_at) for c in rows]
    assert len(set(arrived_seconds)) < len(rows), "the fixture has calls within one second"
    assert len({c.uniqueid for c in rows}) == len(rows)


@pytest.mark.parametrize("name", ["small", "burst"])
def test_real_sessions_move_calls_only_along_the_state_table(name: str) -> None:
    """Every state a call takes in a real Asterisk session is a move the table allows, and every
    call that reached a queue was seen waiting, and every answered one talking."""
    seen: dict[str, list[CallState]] = defaultdict(list)
    bus = Bus()
    bus.subscribe(CallEvent, lambda e: seen[e.call.uniqueid].append(e.call.state))
    before = StateCounter.unexpected
    tracker, _ = replay(load(name), bus=bus)
    assert StateCounter.unexpected == before
    rows = [c for c in tracker.take_dirty() if c.ended_at is not None]
    assert rows and all(c.state == CallState.ENDED for c in rows)
    for c in rows:
        states = seen[c.uniqueid]
        assert states[-1] == CallState.ENDED
        if c.queued_at is not None:
            assert CallState.WAITING in states, (c.uniqueid, states)
        if c.answered_at is not None:
            assert CallState.TALKING in states and CallState.RINGING in states, states
