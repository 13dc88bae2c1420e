"""Reading queue_log incrementally and reconciling calls from it."""

import os
from pathlib import Path

from cti.ami import events as ev
from cti.live.model import LiveCall
from cti.live.tracker import CallTracker
from cti.queuelog import Position, QueueLogReader, parse_line, queue_calls
from cti.reconcile import call_from_queue_log, finish_gone, group_by_call
from cti.types import CallOutcome, RecordSource

LINES = """1795637294|sim-c1|helpdesk|NONE|ENTERQUEUE||13800138000|1
1795637297|sim-c1|helpdesk|1001|CONNECT|3|cti-1795637294.2|3
1795637303|sim-c1|helpdesk|1001|COMPLETEAGENT|3|6|1
1795637362|sim-t4|helpdesk|NONE|ENTERQUEUE||8001|4
1795637367|sim-t4|helpdesk|NONE|EXITWITHTIMEOUT|1|4|4
"""


def test_parse_line_rejects_garbage() -> None:
    assert parse_line("nonsense") is None
    assert parse_line("abc|x|q|a|EVENT") is None
    e = parse_line("1795637297|sim-c1|helpdesk|1001|CONNECT|3|cti-1.2|3")
    assert e is not None and e.int_field(0) == 3 and e.field(9) == ""


def test_reader_resumes_and_skips_a_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text(LINES + "1795637368|sim-x|helpdesk|NONE|ENTERQ")  # Asterisk mid-write
    reader = QueueLogReader(path)
    entries, pos = reader.read_since(None)
    assert len(entries) == 5
    with path.open("a") as fh:
        fh.write("UEUE||1|1\n")
    more, pos2 = reader.read_since(pos)
    assert [e.callid for e in more] == ["sim-x"]
    assert pos2 is not None and pos2.offset == path.stat().st_size
    assert Position.decode(pos2.encode()) == pos2


def test_rotated_file_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_text(LINES)
    reader = QueueLogReader(path)
    _, pos = reader.read_since(None)
    os.rename(path, tmp_path / "queue_log.1")
    path.write_text(LINES.splitlines()[0] + "\n")
    entries, _ = reader.read_since(pos)
    assert len(entries) == 1


def test_queue_calls_summary() -> None:
    entries = [e for e in map(parse_line, LINES.splitlines()) if e]
    calls = queue_calls(entries)
    assert (calls["sim-c1"].outcome, calls["sim-c1"].wait, calls["sim-c1"].talk) == (
        "answered",
        3,
        6,
    )
    assert (calls["sim-t4"].outcome, calls["sim-t4"].wait) == ("queue_timeout", 4)


def test_unknown_call_is_created_from_queue_log() -> None:
    entries = [e for e in map(parse_line, LINES.splitlines()) if e]
    lines = group_by_call(entries)["sim-c1"]
    call = call_from_queue_log(lines)
    finish_gone(call, lines, float(lines[0].time))
    assert call.source == RecordSource.RECONCILED and call.outcome == CallOutcome.ANSWERED
    assert call.wait_seconds == 3 and call.talk_seconds == 6 and call.agent == "1001"
    assert "arrived_at" in call.inferred


def test_waiting_call_without_an_exit_is_dropped() -> None:
    # Asterisk crashed: the call was waiting and queue_log recorded no exit for it.
    call = LiveCall("u1", "u1", "PJSIP/x", 100.0, queued_at=101.0, in_queue_since=101.0)
    finish_gone(call, [], outage_start=150.0)
    assert call.outcome == CallOutcome.DROPPED and call.ended_at == 150.0
    assert "ended_at" in call.inferred


def test_answer_from_queue_log_and_end_seen_live_keeps_asterisks_talk_figure() -> None:
    # The server came back while the call was talking: its answer is queue_log's (whole seconds,
    # up to 1 s early), its end the precise AgentComplete, whose TalkTime is the one to believe.
    entries = [e for e in map(parse_line, LINES.splitlines()) if e]
    lines = [e for e in group_by_call(entries)["sim-c1"] if e.event != "COMPLETEAGENT"]
    call = call_from_queue_log(lines)
    tr = CallTracker(["cti-inbound"])
    tr.calls[call.uniqueid] = call
    tr.handle(ev.AgentComplete(1795637303.9871, "PJSIP/carrier-x", call.uniqueid, call.uniqueid,
                               "helpdesk", "1001", "Local/1001@sim-agent/n", 3, 6, "agent"))  # fmt: skip
    assert call.talk_ended_at == 1795637303.9871 and call.talk_seconds == 6


def test_answer_seen_live_and_end_from_queue_log_keeps_asterisks_talk_figure() -> None:
    entries = [e for e in map(parse_line, LINES.splitlines()) if e]
    lines = group_by_call(entries)["sim-c1"]
    call = LiveCall("sim-c1", "sim-c1", "PJSIP/x", 1795637294.2, queued_at=1795637294.3)
    call.answered_at, call.agent = 1795637297.81, "1001"
    finish_gone(call, lines, outage_start=1795637300.0)
    assert call.talk_ended_at == 1795637303 and call.talk_seconds == 6


def test_parse_line_refuses_times_a_report_cannot_use() -> None:
    # Found by the fuzzer: 'INF||||' raised OverflowError (one such line made every report fail);
    # negative and huge times parsed, and failed later where a report turns them into dates.
    for stamp in ("inf", "INF", "-inf", "nan", "1e400", "1e300", "-1", "253402300800"):
        assert parse_line(f"{stamp}|sim-c1|helpdesk|1001|CONNECT|3") is None, stamp
    e = parse_line("253402300799|sim-c1|helpdesk|1001|CONNECT|3")
    assert e is not None and e.time == 253402300799
    e = parse_line("1795637297.9|sim-c1|helpdesk|1001|CONNECT|3")
    assert e is not None and e.time == 1795637297


def test_a_field_with_a_line_separator_like_character_keeps_its_line(tmp_path: Path) -> None:
    # Found by the fuzzer: b'0|||\xc2\x85|ENTERQUEUE\n' (U+0085 in the agent field) was split in
    # two by str.splitlines(), and the line was lost as two malformed ones.
    path = tmp_path / "queue_log"
    path.write_bytes(
        b"0|||\xc2\x85|ENTERQUEUE\n1795637294|sim-c1|helpdesk|NONE|PAUSE|\xe2\x80\xa8x\x1cy\n"
    )
    reader = QueueLogReader(path)
    entries, _ = reader.read_since(None)
    assert [(e.agent, e.data) for e in entries] == [("\x85", ()), ("NONE", ("\u2028x\x1cy",))]
    assert reader.malformed == 0


def test_a_file_truncated_and_rewritten_past_our_offset_is_read_from_the_start(
    tmp_path: Path,
) -> None:
    # Found by the fuzzer (truncate_and_grow): after logrotate's copytruncate, Asterisk wrote
    # past the offset we had stopped at before we read again, and we resumed mid-line: here
    # '0|sim-c2|helpdesk|NONE|CONNECT|3|x|3' came out as a call at time 0.
    path = tmp_path / "queue_log"
    path.write_bytes(b"1|a|b|c|\n")
    reader = QueueLogReader(path)
    _, pos = reader.read_since(None)
    with path.open("r+b") as fh:
        fh.truncate(0)
        fh.write(b"1795637300|sim-c2|helpdesk|NONE|CONNECT|3|x|3\n")
    entries, _ = reader.read_since(pos)
    assert [(e.time, e.callid) for e in entries] == [(1795637300, "sim-c2")]


def test_tail_starts_at_a_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "queue_log"
    path.write_bytes(
        b"1|a|q|NONE|ENTERQUEUE||1|1\n2|b|q|NONE|ENTERQUEUE||2|1\n3|c|q|NONE|ENTERQUEUE||3|1\n"
    )
    reader = QueueLogReader(path)
    whole = reader.tail(10_000)
    assert whole is not None and whole.offset == 0
    pos = reader.tail(30)  # the last 30 bytes begin inside the second line
    entries, _ = reader.read_since(pos)
    assert [e.callid for e in entries] == ["c"]
    assert QueueLogReader(tmp_path / "missing").tail(10) is None
