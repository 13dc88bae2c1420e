"""The call tracker's state machine on hand-built event sequences (the shapes come from the
captured sessions; the captured sessions themselves are replayed in test_replay)."""

import pytest

from cti.ami import events as ev
from cti.live.bus import Bus, CallEvent, CallEventKind
from cti.live.tracker import CallTracker
from cti.types import CallOutcome, OfferResult

T0 = 1_800_000_000.0


def inbound(uid: str, t: float, num: str = "13800138000", name: str = "张三") -> list[ev.AmiEvent]:
    ch = f"PJSIP/carrier-{uid}"
    return [
        ev.Newchannel(t, ch, uid, uid, num, name, "from-pstn", "8000"),
        ev.Newexten(t + 0.01, ch, uid, uid, "cti-inbound", "8000", 1, "NoOp", "", num, name),
        ev.Newexten(t + 0.02, ch, uid, uid, "cti-inbound", "8000", 6, "AGI", "agi://", num, name),
        ev.Newexten(t + 3.0, ch, uid, uid, "cti-inbound", "8000", 7, "GotoIf", "", num, name),
    ]


def join(uid: str, t: float) -> ev.QueueCallerJoin:
    return ev.QueueCallerJoin(t, f"PJSIP/carrier-{uid}", uid, uid, "helpdesk", 1, 1, "", "")


def feed(tracker: CallTracker, events: list[ev.AmiEvent]) -> None:
    for e in events:
        tracker.handle(e)


def test_answered_call_has_all_times() -> None:
    tr = CallTracker(["cti-inbound"])
    uid, ch = "1800000000.1", "PJSIP/carrier-1800000000.1"
    feed(tr, inbound(uid, T0))
    feed(tr, [
        join(uid, T0 + 3.1),
        ev.AgentCalled(T0 + 3.2, ch, uid, uid, "helpdesk", "1001", "PJSIP/1001", "a1", "PJSIP/1001-1"),
        ev.AgentRingNoAnswer(T0 + 18.2, ch, uid, uid, "helpdesk", "1001", "PJSIP/1001", 15000),
        ev.AgentCalled(T0 + 20.2, ch, uid, uid, "helpdesk", "1002", "PJSIP/1002", "a2", "PJSIP/1002-1"),
        ev.AgentConnect(T0 + 22.6, ch, uid, uid, "helpdesk", "1002", "PJSIP/1002", 19, 2, "a2"),
        ev.AgentComplete(T0 + 82.6, ch, uid, uid, "helpdesk", "1002", "PJSIP/1002", 19, 60, "agent"),
        ev.Hangup(T0 + 83.0, ch, uid, uid, 16, "Normal Clearing"),
    ])  # fmt: skip
    (call,) = tr.take_dirty()
    assert call.outcome == CallOutcome.ANSWERED
    assert call.ivr_entered_at == T0 + 0.02 and call.ivr_left_at == T0 + 3.0
    assert abs(call.wait_seconds - 19.5) < 1e-6  # type: ignore[operator]
    assert abs(call.talk_seconds - 60.0) < 1e-6  # type: ignore[operator]
    assert call.agent == "1002" and call.ring_no_answer == 1
    assert [o.result for o in call.offers] == [OfferResult.NO_ANSWER, OfferResult.ANSWERED]
    assert call.caller_name == "张三" and call.dialled_number == "8000"
    assert not tr.calls


def test_queue_results_from_the_dialplan_user_event() -> None:
    tr = CallTracker(["cti-inbound"])
    for i, status in enumerate(["TIMEOUT", "LEAVEEMPTY", None]):
        uid = f"1800000000.{10 + i}"
        ch = f"PJSIP/carrier-{uid}"
        feed(tr, [*inbound(uid, T0), join(uid, T0 + 3)])
        feed(tr, [
            ev.QueueCallerAbandon(T0 + 18, ch, uid, uid, "helpdesk", 1, 1, 15),
            ev.QueueCallerLeave(T0 + 18, ch, uid, uid, "helpdesk", 1, 0),
        ])  # fmt: skip
        if status:
            tr.handle(ev.UserEvent(T0 + 18.01, "CtiQueueResult", uid, uid, {"Status": status}))
        tr.handle(ev.Hangup(T0 + 21, ch, uid, uid, 16, ""))
    outcomes = [c.outcome for c in sorted(tr.take_dirty(), key=lambda c: c.uniqueid)]
    assert outcomes == [CallOutcome.QUEUE_TIMEOUT, CallOutcome.LEFT_EMPTY, CallOutcome.ABANDONED]


def test_call_that_never_queues_ended_in_ivr_and_voicemail() -> None:
    tr = CallTracker(["cti-inbound"])
    feed(tr, inbound("1800000000.20", T0))
    tr.handle(
        ev.Hangup(T0 + 5, "PJSIP/carrier-1800000000.20", "1800000000.20", "1800000000.20", 16, "")
    )
    feed(tr, inbound("1800000000.21", T0))
    ch = "PJSIP/carrier-1800000000.21"
    tr.handle(
        ev.Newexten(
            T0 + 4,
            ch,
            "1800000000.21",
            "1800000000.21",
            "cti-next",
            "vm",
            1,
            "VoiceMail",
            "",
            "",
            "",
        )
    )
    tr.handle(ev.Hangup(T0 + 30, ch, "1800000000.21", "1800000000.21", 16, ""))
    by_id = {c.uniqueid: c for c in tr.take_dirty()}
    assert by_id["1800000000.20"].outcome == CallOutcome.ENDED_IN_IVR
    assert by_id["1800000000.20"].wait_seconds is None
    assert by_id["1800000000.21"].outcome == CallOutcome.VOICEMAIL


def test_uniqueids_with_the_same_seconds_are_separate_calls() -> None:
    # panoramisk's CallManager would group these two: same seconds part "1800000000".
    tr = CallTracker(["cti-inbound"])
    feed(
        tr, inbound("1800000000.31", T0) + inbound("1800000000.32", T0 + 0.5, "13900139000", "李四")
    )
    assert len(tr.calls) == 2
    assert {c.caller_name for c in tr.calls.values()} == {"张三", "李四"}


def test_subscribers_hear_call_events_and_a_failing_one_is_contained() -> None:
    bus = Bus()
    tr = CallTracker(["cti-inbound"], bus)
    heard: list[CallEventKind] = []
    bus.subscribe(CallEvent, lambda e: (_ for _ in ()).throw(RuntimeError("boom")))
    bus.subscribe(CallEvent, lambda e: heard.append(e.kind))
    uid = "1800000000.40"
    feed(tr, [*inbound(uid, T0), join(uid, T0 + 3)])
    tr.handle(ev.Hangup(T0 + 9, f"PJSIP/carrier-{uid}", uid, uid, 16, ""))
    assert heard == [
        CallEventKind.CALL_ARRIVED,
        CallEventKind.CALL_CHANGED,  # out of the IVR
        CallEventKind.CALL_QUEUED,
        CallEventKind.CALL_ENDED,
    ]
    assert bus.failures == 4


def test_anonymous_caller_id_is_empty_not_unknown() -> None:
    tr = CallTracker(["cti-inbound"])
    feed(tr, inbound("1800000000.50", T0, "<unknown>", "<unknown>"))
    (call,) = tr.calls.values()
    assert call.caller_number == "" and call.caller_name == ""


def test_a_ring_found_in_a_snapshot_pops_once_and_ends_as_usual() -> None:
    """After a reconnect or a takeover, a ring under way (no AgentCalled heard) is opened from
    the live channels (ring_seen) and published once; its AgentCalled, queued behind the
    snapshot, adds nothing; the answer closes that offer as usual."""
    bus = Bus()
    rung: list[CallEvent] = []
    bus.subscribe(
        CallEvent, lambda e: rung.append(e) if e.kind == CallEventKind.AGENT_RINGING else None
    )
    tr = CallTracker(["cti-inbound"], bus)
    uid, ch = "1800000000.40", "PJSIP/carrier-1800000000.40"
    feed(tr, [*inbound(uid, T0), join(uid, T0 + 3.1)])
    assert not tr.ring_seen("no-such-call", "1001", "PJSIP/1001", "a1", T0 + 3.3)
    assert tr.ring_seen(uid, "1001", "PJSIP/1001", "a1", T0 + 3.3)
    assert not tr.ring_seen(uid, "1001", "PJSIP/1001", "a1", T0 + 3.4)  # found twice: once
    tr.handle(
        ev.AgentCalled(
            T0 + 3.2, ch, uid, uid, "helpdesk", "1001", "PJSIP/1001", "a1", "PJSIP/1001-1"
        )
    )
    assert [(e.offer.agent if e.offer else None) for e in rung] == ["1001"]
    feed(tr, [
        ev.AgentConnect(T0 + 5.0, ch, uid, uid, "helpdesk", "1001", "PJSIP/1001", 2, 2, "a1"),
        ev.AgentComplete(T0 + 65.0, ch, uid, uid, "helpdesk", "1001", "PJSIP/1001", 2, 60, "agent"),
        ev.Hangup(T0 + 66.0, ch, uid, uid, 16, "Normal Clearing"),
    ])  # fmt: skip
    (call,) = tr.take_dirty()
    assert call.outcome == CallOutcome.ANSWERED and call.agent == "1001"
    assert [o.result for o in call.offers] == [OfferResult.ANSWERED]
    # A call no longer waiting gets no ring from a stale snapshot.
    assert not tr.ring_seen(uid, "1002", "PJSIP/1002", "a2", T0 + 70)


def talk_then_end(uid: str, hangup_first: bool) -> list[ev.AmiEvent]:
    """A queued call that agent 1201 answers, then its Hangup and AgentComplete in either order."""
    ch, member = f"PJSIP/carrier-{uid}", "Local/1201@sim-agent/n"
    end = [
        ev.Hangup(T0 + 8.2, ch, uid, uid, 16, "Normal Clearing"),
        ev.AgentComplete(T0 + 8.3, ch, uid, uid, "helpdesk", "1201", member, 2, 3, "agent"),
    ]
    return [
        *inbound(uid, T0),
        join(uid, T0 + 3.1),
        ev.AgentCalled(T0 + 3.2, ch, uid, uid, "helpdesk", "1201", member, "a1", "Local/1201-1"),
        ev.AgentConnect(T0 + 5.2, ch, uid, uid, "helpdesk", "1201", member, 2, 2, "a1"),
        *(end if hangup_first else end[::-1]),
    ]


def test_a_hangup_before_agent_complete_still_ends_the_talk() -> None:
    """Asterisk may report the caller's Hangup before app_queue's AgentComplete: the talk ends
    at the hangup, once (the agent's wrap-up hangs on TALK_ENDED), and the late AgentComplete
    changes nothing."""
    bus = Bus()
    tr = CallTracker(["cti-inbound"], bus)
    heard: list[tuple[CallEventKind, str | None]] = []
    bus.subscribe(CallEvent, lambda e: heard.append((e.kind, e.call.agent)))
    feed(tr, talk_then_end("1800000000.50", hangup_first=True))
    kinds = [k for k, _ in heard]
    assert kinds[-2:] == [CallEventKind.TALK_ENDED, CallEventKind.CALL_ENDED], kinds
    assert kinds.count(CallEventKind.TALK_ENDED) == 1
    assert heard[-2][1] == "1201"
    (call,) = tr.take_dirty()
    assert call.outcome == CallOutcome.ANSWERED
    assert abs(call.talk_seconds - 3.0) < 1e-6  # type: ignore[operator]


def test_agent_complete_then_hangup_ends_the_talk_once() -> None:
    bus = Bus()
    tr = CallTracker(["cti-inbound"], bus)
    heard: list[CallEventKind] = []
    bus.subscribe(CallEvent, lambda e: heard.append(e.kind))
    feed(tr, talk_then_end("1800000000.51", hangup_first=False))
    assert heard.count(CallEventKind.TALK_ENDED) == 1 and heard[-1] == CallEventKind.CALL_ENDED


def test_the_ivrs_last_event_repeats_the_incident_number() -> None:
    """CtiIvr, sent as the caller leaves the IVR, names the incident again: a CtiIncident lost
    with the AMI link (the link back before the caller leaves) does not leave the call without
    its number; a CtiIvr without one keeps what CtiIncident gave."""
    tr = CallTracker(["cti-inbound"])
    lost, heard = "1800000000.31", "1800000000.32"
    for uid in (lost, heard):
        feed(tr, inbound(uid, T0))
    tr.handle(ev.UserEvent(T0 + 2.0, "CtiIncident", heard, heard, {"Number": "261130002"}))
    tr.handle(ev.UserEvent(T0 + 2.9, "CtiIvr", lost, lost,
                           {"Path": "main:1", "Lang": "zh", "Incident": "261130001"}))  # fmt: skip
    tr.handle(ev.UserEvent(T0 + 2.9, "CtiIvr", heard, heard, {"Path": "main:1", "Lang": "zh"}))
    assert tr.calls[lost].incident_number == "261130001"
    assert tr.calls[heard].incident_number == "261130002"
    assert tr.calls[lost].ivr_path == "main:1"


def blind_transfer(uid: str, complete_late: bool) -> list[ev.AmiEvent]:
    """Agent 1201 answers, blind-transfers the caller to 1202 from the page, 1202 answers; app_queue's
    AgentComplete for 1201 comes before 1202's answer or, under load, after it."""
    ch, member = f"PJSIP/carrier-{uid}", "PJSIP/1201"
    complete = ev.AgentComplete(
        T0 + 9.0, ch, uid, uid, "helpdesk", "1201", member, 2, 3, "transfer"
    )
    answered = ev.UserEvent(T0 + 11.0, "CtiTransferAnswered", "1800000099.1", uid, {"Call": uid})
    return [
        *inbound(uid, T0),
        join(uid, T0 + 3.1),
        ev.AgentCalled(T0 + 3.2, ch, uid, uid, "helpdesk", "1201", member, "a1", "PJSIP/1201-1"),
        ev.AgentConnect(T0 + 5.2, ch, uid, uid, "helpdesk", "1201", member, 2, 2, "a1"),
        ev.UserEvent(T0 + 8.9, "CtiTransferTo", uid, uid, {"Kind": "agent", "To": "1202"}),
        *((answered, complete) if complete_late else (complete, answered)),
        ev.Hangup(T0 + 30.0, ch, uid, uid, 16, "Normal Clearing"),
    ]


@pytest.mark.parametrize("late", [False, True])
def test_a_blind_transfer_ends_the_agents_part_once_whenever_agent_complete_comes(
    late: bool,
) -> None:
    """The transferring agent's part ends at the transfer: their page gets "ended" and their
    wrap-up starts (both hang on TALK_ENDED naming them) once, whether app_queue's AgentComplete
    comes before the colleague answers or after (seen under load: 1201's page never heard)."""
    bus = Bus()
    tr = CallTracker(["cti-inbound"], bus)
    heard: list[tuple[CallEventKind, str | None]] = []
    bus.subscribe(CallEvent, lambda e: heard.append((e.kind, e.call.agent)))
    feed(tr, blind_transfer(f"1800000000.{60 + late}", complete_late=late))
    ended = [agent for kind, agent in heard if kind == CallEventKind.TALK_ENDED]
    assert ended == ["1201", "1202"], heard
    (call,) = tr.take_dirty()
    assert call.outcome == CallOutcome.ANSWERED and call.agent == "1202"
    assert [(leg["agent"], leg["to"]) for leg in call.legs] == [
        ("1201", T0 + 8.9),
        ("1202", T0 + 30.0),
    ], call.legs
