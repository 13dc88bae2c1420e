"""The bus: subscribers by type, failures contained, and every event type through JSON and back
(what a broker between server nodes would carry)."""

import json
from dataclasses import replace

import pytest

from cti.live.bus import (
    EVENT_TYPES,
    AgentStateChanged,
    BackupCleared,
    BackupRaised,
    Bus,
    CallEvent,
    CallEventKind,
    DomainEvent,
    LiveResynced,
    OfferTaken,
    QueueChanged,
    WrapupEnded,
    decode,
    encode,
)
from cti.live.model import AgentState, AgentView, CallState, CallView, OfferView
from cti.types import CallOutcome, OfferResult

CALL = CallView(
    uniqueid="1.1", linkedid="1.1", channel="PJSIP/carrier-1", state=CallState.RINGING,
    caller_number="13800138000", caller_name="张三", dialled_number="8000", queue="helpdesk",
    agent=None, incident_number="261129001", ivr_path="1>2", language="zh", arrived_at=1.5,
    queued_at=2.5, answered_at=None, ended_at=None, wait_seconds=3.25, outcome=None,
    overflowed=False, callback_of=None, ringing=("1001",), offered_to=("1001",),
)  # fmt: skip

SAMPLES: list[DomainEvent] = [
    CallEvent(CallEventKind.AGENT_RINGING, CALL, OfferView("1001", "PJSIP/1001", 2.6, OfferResult.RINGING)),
    CallEvent(CallEventKind.CALL_ENDED, replace(CALL, state=CallState.ENDED, outcome=CallOutcome.ABANDONED, ended_at=9.0)),
    AgentStateChanged(AgentView("1001", AgentState.WRAP_UP, "", 10.0, ("helpdesk", "vip"), 40.0)),
    WrapupEnded("1.1", "1001", 12.5),
    QueueChanged("helpdesk", 3),
    BackupRaised("helpdesk", 100.0, {"waiting_calls": 6.0, "waiting_per_ready_agent": None}, 7),
    BackupCleared("helpdesk", {"waiting_calls": 9.0}),
    OfferTaken("1.1", "李工"),
    LiveResynced(),
]  # fmt: skip


def test_every_event_type_has_a_sample() -> None:
    assert {type(e).__name__ for e in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: type(e).__name__)
def test_events_go_through_json_and_back_unchanged(event: DomainEvent) -> None:
    wire = json.dumps(encode(event), allow_nan=False, ensure_ascii=False)
    assert decode(json.loads(wire)) == event


def test_decode_refuses_unknown_and_malformed_events() -> None:
    with pytest.raises(ValueError, match="unknown"):
        decode({"type": "Nope"})
    with pytest.raises(ValueError):
        decode({"type": "QueueChanged", "queue": "q"})  # no `waiting`
    with pytest.raises(ValueError):
        decode({"type": "AgentStateChanged", "agent": {"ext": "1", "state": "dancing",
                "reason": "", "since": 0, "queues": [], "wrapup_until": None}})  # fmt: skip


def test_subscribers_by_type_in_order_and_unsubscribe() -> None:
    bus = Bus()
    heard: list[str] = []
    bus.subscribe(QueueChanged, lambda e: heard.append(f"a:{e.waiting}"))
    off = bus.subscribe(QueueChanged, lambda e: heard.append(f"b:{e.waiting}"))
    bus.subscribe(OfferTaken, lambda e: heard.append("taken"))
    bus.publish(QueueChanged("q", 1))
    off()
    bus.publish(QueueChanged("q", 2))
    assert heard == ["a:1", "b:1", "a:2"]


def test_a_failing_subscriber_does_not_stop_the_others() -> None:
    bus = Bus()
    heard: list[int] = []

    def boom(_e: QueueChanged) -> None:
        raise RuntimeError("boom")

    bus.subscribe(QueueChanged, boom)
    bus.subscribe(QueueChanged, lambda e: heard.append(e.waiting))
    bus.publish(QueueChanged("q", 5))
    assert heard == [5] and bus.failures == 1
