"""Calls rebuilt from Asterisk's CDRs: which rows are a call's own, and how they merge with what
queue_log and the IVR said (one record per call)."""

from datetime import UTC, datetime
from decimal import Decimal

from cti.cdr import CdrRecord, _epoch, caller_name, cdr_calls
from cti.live.model import LiveCall
from cti.queuelog import parse_line
from cti.reconcile import (
    IvrStepSeen,
    call_from_cdr,
    call_from_ivr,
    call_from_queue_log,
    finish_gone,
)

T = 1_800_000_000.0
ZHANG = '"张三" <13800138000>'


def rec(rid: int, uid: str, start: float, end: float, *, linkedid: str = "", entry: str = "",
        did: str = "", queue: str = "", status: str = "", clid: str = "",
        src: str = "") -> CdrRecord:  # fmt: skip
    return CdrRecord(rid, uid, linkedid or uid, T + start, T + start + 0.01, T + end, clid, src,
                     f"Local/{uid};1", "ANSWERED", entry, did, queue, status)  # fmt: skip


def test_only_the_marked_channel_is_the_call_and_its_rows_fold_into_one() -> None:
    rows = [
        # The caller's channel: two CDRs (the IVR part, then the part with an agent).
        rec(1, "c1", 0.5, 30, entry="inbound", did="88001234", clid=ZHANG, src="13800138000"),
        rec(3, "c1", 30, 95.25, queue="helpdesk", status="CONTINUE"),
        # Its other legs: the simulator's caller half and an agent's phone, same Linkedid.
        rec(2, "c1-c", 0.5, 95.3, linkedid="c1"),
        rec(4, "a1", 20, 95.2, linkedid="c1"),
        # An internal call between two agents: no mark, not a call of the desk.
        rec(5, "int", 1, 9),
    ]
    calls = cdr_calls(rows)
    assert list(calls) == ["c1"]
    c = calls["c1"]
    assert (c.started, c.ended) == (T + 0.5, T + 95.25)
    assert (c.caller_number, c.caller_name, c.did) == ("13800138000", "张三", "88001234")
    assert (c.queue, c.queue_status, c.linkedid) == ("helpdesk", "CONTINUE", "c1")


def test_a_caller_the_queue_turned_away_while_the_cti_server_was_down() -> None:
    [c] = cdr_calls([rec(7, "c2", 0, 1.49, entry="inbound", did="88001234", src="13900139000",
                         queue="helpdesk", status="JOINEMPTY")]).values()  # fmt: skip
    row = call_from_cdr(c).to_row(T + 60)
    assert row["outcome"] == "left_empty" and row["source"] == "reconciled"
    assert row["queue_status"] == "JOINEMPTY" and row["queued_at"] is None
    assert row["arrived_at"].timestamp() == T and row["ended_at"].timestamp() == T + 1.49
    assert row["caller_number"] == "13900139000" and row["dialled_number"] == "88001234"
    assert {"arrived_at", "ended_at", "queue_status"} <= set(row["inferred"])
    # Hung up before any queue: ended in the IVR, as the live tracker would say.
    [d] = cdr_calls([rec(8, "c3", 0, 2, entry="inbound")]).values()
    assert call_from_cdr(d).to_row(T + 60)["outcome"] == "ended_in_ivr"


def test_the_cdr_gives_a_queue_call_its_real_arrival_and_end() -> None:
    lines = [parse_line(f"{int(T) + 6}|c4|helpdesk|NONE|ENTERQUEUE||13800138000|1"),
             parse_line(f"{int(T) + 9}|c4|helpdesk|NONE|ABANDON|1|1|3")]  # fmt: skip
    entries = [e for e in lines if e is not None]
    call = call_from_queue_log(entries)
    [cdr] = cdr_calls([rec(9, "c4", 0.25, 9.5, entry="inbound", did="88001234")]).values()
    finish_gone(call, entries, T + 6, cdr)
    row = call.to_row(T + 60)
    assert row["outcome"] == "abandoned" and row["wait_seconds"] == 3.0
    assert row["arrived_at"].timestamp() == T + 0.25 and row["ended_at"].timestamp() == T + 9.5
    assert row["queued_at"].timestamp() == T + 6 and row["dialled_number"] == "88001234"


def test_an_ivr_call_keeps_what_the_ivr_saw_and_takes_the_cdr_times() -> None:
    steps = [IvrStepSeen(T + 1, "ivr", "", "lookup", "13800138000", "E1", 0.1),
             IvrStepSeen(T + 2, "ivr", "", "incident", "", "261130009", 0.2)]  # fmt: skip
    [cdr] = cdr_calls([rec(10, "c5", 0.2, 7.75, entry="inbound", did="88001234")]).values()
    row = call_from_ivr("c5", steps, cdr).to_row(T + 60)
    assert row["incident_number"] == "261130009" and row["caller_number"] == "13800138000"
    assert row["arrived_at"].timestamp() == T + 0.2 and row["ended_at"].timestamp() == T + 7.75
    assert row["dialled_number"] == "88001234" and row["outcome"] == "ended_in_ivr"


def test_what_was_observed_is_kept() -> None:
    call = LiveCall("c6", "c6", "PJSIP/carrier-1", T + 0.1, caller_number="10086")
    [cdr] = cdr_calls([rec(11, "c6", 0, 5, entry="inbound", src="999")]).values()
    finish_gone(call, [], T + 2, cdr)
    assert call.arrived_at == T + 0.1 and call.caller_number == "10086"
    assert call.ended_at == T + 5 and call.channel == "PJSIP/carrier-1"


def test_times_in_every_column_type_and_bad_ones() -> None:
    assert _epoch(T + 0.5) == T + 0.5 and _epoch(Decimal("1800000000.25")) == T + 0.25
    assert _epoch(int(T)) == T
    assert _epoch(datetime.fromtimestamp(T, UTC).replace(tzinfo=None)) == T  # UTC, no zone
    assert _epoch("2027-01-15 08:00:00") == T
    assert _epoch(0) is None and _epoch(0.0) is None  # an unset answer time
    assert _epoch(None) is None and _epoch("soon") is None and _epoch(1e300) is None
    assert caller_name('"张三" <13800138000>') == "张三" and caller_name("<10086>") == ""
    assert caller_name("13800138000") == ""


def test_a_call_rebuilt_from_queue_log_keeps_asterisks_wait_when_another_process_resumes_it() -> (
    None
):
    """Seen under load: the server first started after a call was answered (rebuilt from the
    end of queue_log, wait 2 s), was killed, and the next process finished the call from its
    open row with a wait of 0.0."""
    from types import SimpleNamespace

    lines = [parse_line(f"{int(T)}|c7|helpdesk|NONE|ENTERQUEUE||13800138000|1"),
             parse_line(f"{int(T) + 2}|c7|helpdesk|1003|CONNECT|2|c7-agent|1")]  # fmt: skip
    call = call_from_queue_log([e for e in lines if e is not None])
    assert call.ended_at is None and call.wait_seconds == 2.0
    resumed = LiveCall.from_row(SimpleNamespace(**call.to_row(T + 3)))
    resumed.finish(T + 8)
    assert resumed.wait_seconds == 2.0 and resumed.outcome == "answered"
