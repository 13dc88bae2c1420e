"""What the lead and the agent read about live calls and back-ups: the pop's wait counts the
stint the caller is still in, and the back-up words never print a sentinel number."""

import logging
from pathlib import Path

import pytest

from cti.db import create_engine, migrate, session_maker
from cti.live.bus import Bus
from cti.live.model import LiveCall, view_of
from cti.routing.alerts import AlertService, describe, finite
from cti.routing.config import parse_routing
from cti.routing.delivery import ImDelivery
from cti.routing.rules import Measure, QueueSnapshot, measure
from desk.migrations import MIGRATIONS

DEFAULT_ROUTING = (
    Path(__file__).resolve().parents[2] / "cti" / "routing" / "defaults" / "routing.yaml"
)

T0 = 1_800_000_000.0


def test_the_pop_shows_the_wait_of_a_caller_still_in_the_queue() -> None:
    # Seen: "Wait 0" on the pop of a caller who had waited 27 s (rung while still queued).
    call = LiveCall(uniqueid="1.1", linkedid="1.1", channel="PJSIP/carrier-1", arrived_at=T0)
    call.queued_at = call.in_queue_since = T0 + 3.0
    assert view_of(call, T0 + 30.0).wait_seconds == 27.0
    call.wait_accum, call.in_queue_since = 10.0, T0 + 50.0  # a second stint after an overflow
    assert view_of(call, T0 + 55.0).wait_seconds == 15.0


def test_no_agent_ready_reads_as_words_in_the_log_and_the_banner() -> None:
    snap = QueueSnapshot(queue="helpdesk", waiting=4, longest_wait=70.0, ready=0, staffed=2, arrival_rate=0.0,
                         aht=180.0)  # fmt: skip
    rules = {
        m.value: finite(measure(m, snap))
        for m in (Measure.WAITING_PER_READY_AGENT, Measure.NO_AGENT_READY)
    }
    en, zh = describe(rules, "en"), describe(rules, "zh")
    assert en == "callers waiting per ready agent ∞, no agent ready"
    assert zh == "每名就绪坐席的等待来电 ∞, 无就绪坐席"
    assert "1000000000" not in en + zh


async def test_the_back_up_log_line_says_no_agent_ready_in_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The line the server logs when a queue backs up (it once read `no_agent_ready=1000000000.0`)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    await migrate(engine, MIGRATIONS)
    routing = parse_routing(DEFAULT_ROUTING.read_text(encoding="utf-8"), "routing.yaml")
    delivery = ImDelivery(routing)
    await delivery.start()
    alerts = AlertService(session_maker(engine), Bus(), delivery, (), "http://127.0.0.1")
    snap = QueueSnapshot(queue="helpdesk", waiting=4, longest_wait=70.0, ready=0, staffed=2, arrival_rate=0.0,
                         aht=180.0)  # fmt: skip
    tripped = {
        m: measure(m, snap) for m in (Measure.WAITING_PER_READY_AGENT, Measure.NO_AGENT_READY)
    }
    try:
        with caplog.at_level(logging.WARNING, "cti.routing.alerts"):
            await alerts.raise_("helpdesk", tripped, snap, T0)
    finally:
        await delivery.close()
        await engine.dispose()
    (line,) = [r.getMessage() for r in caplog.records if "backed up" in r.getMessage()]
    assert line == "queue helpdesk backed up: callers waiting per ready agent ∞, no agent ready"
