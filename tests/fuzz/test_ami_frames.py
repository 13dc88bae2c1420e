"""The AMI frame parser and the event/row parsers, fed hostile bytes.

Properties: `CtiAmiProtocol.data_received` never raises, whatever the bytes and however they are
cut into reads, and cutting never changes what comes out; known-good frames interleaved with
garbage all arrive, in order; `parse_event` and the list-row parsers return typed values or raise
ProtocolError, never anything else. The captured sessions in tests/fixtures/ami are the seeds.

Long run: `CTI_FUZZ_EXAMPLES=20000 python -m pytest tests/fuzz/test_ami_frames.py`, or
`python -m tests.fuzz.test_ami_frames -atheris_runs=200000` (coverage-guided).
"""

import asyncio
import math
import typing
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st
from panoramisk.message import Message

from cti.ami import events as ev
from cti.ami import headers, protocol, responses
from cti.ami.client import AmiClient, AmiOptions
from cti.ami.protocol import EOL, FRAME_END, CtiAction, CtiAmiProtocol
from cti.errors import CtiError, ProtocolError
from tests.fuzz.budget import atheris_main, budget
from tests.support.replay import load, protocol_for

RAW = load("small")
BANNER, _, _ = RAW.partition(b"\r\n")
# Every frame of the captured session, as text (the banner line is not a frame of its own).
FRAMES = [f.strip() for f in RAW[len(BANNER) + 2 :].decode().split(FRAME_END) if f.strip()]
# The frames the server turns into events: the known-good ones the interleaving property tracks.
GOOD = [f for f in FRAMES if ev.parse_event(Message.from_line(f)) is not None]
# While fuzzing, frames longer than this are over the bound, so the bound is explored too.
SMALL_BOUND = 1200
assert max(len(f) for f in FRAMES) < SMALL_BOUND

HEADERS = sorted(
    {line.partition(": ")[0] for f in FRAMES for line in f.split(EOL)}
    | {"ActionID", "CommandID", "Response", "Message", "EventList", "Event", "Location", "Name",
       "Extension", "Duration", "Wait", "ResultCode", "Result", "Command", "CommandId", "Restart",
       "PausedReason", "InCall", "Paused", "Status", "Reason", "TalkTime", "RingTime"}
)  # fmt: skip
ODD_VALUES = [
    "", "nan", "inf", "-inf", "1e400", "-1", "9" * 30, "9" * 5000, "٣", "1_000", " 7 ", "0x10",
    "True", "<unknown>", "01:02:03", "99:99:99", "a:b:c", "张三", "\ufffd", "Follows", "Error",
    "Success", "start", "Complete", "1795637297.970014", "99999999:00:00", "1:-1:0",
]  # fmt: skip
ACTION_IDS = ["a-1", "a-2", "a-3"]

odd_values = st.one_of(st.sampled_from(ODD_VALUES), st.integers(-(2**70), 2**70).map(str))
values = st.one_of(odd_values, st.text(max_size=40), st.sampled_from(ACTION_IDS))
# A plausible value for every header a parser reads, so generated frames get past the first
# missing header and their values are what gets tested.
PLAUSIBLE = {
    "Timestamp": "1795637297.970014", "Channel": "Local/x;1", "Uniqueid": "u1", "Linkedid": "u1",
    "CallerIDNum": "13800138000", "CallerIDName": "张三", "Context": "cti", "Exten": "s",
    "Priority": "1", "Application": "AGI", "AppData": "agi://x", "Cause": "16",
    "Cause-txt": "Normal Clearing", "Queue": "helpdesk", "Position": "1", "Count": "1",
    "OriginalPosition": "1", "HoldTime": "3", "RingTime": "3", "TalkTime": "5",
    "MemberName": "1001", "Interface": "Local/1001@sim-agent/n", "DestUniqueid": "u2",
    "DestChannel": "Local/1001@sim-agent;1", "Reason": "caller", "Status": "1", "Paused": "0",
    "PausedReason": "", "InCall": "0", "UserEvent": "CtiQueueResult", "ActionID": "a-1",
    "Response": "Success", "Command": "ANSWER", "CommandId": "7", "ResultCode": "200",
    "Result": "Success", "Uptime": "5", "Restart": "False", "Location": "Local/1001@sim-agent/n",
    "Name": "1001", "Extension": "s", "Duration": "00:00:05", "Wait": "3",
}  # fmt: skip
header_line = st.one_of(
    st.tuples(st.sampled_from(HEADERS), values).map(lambda kv: f"{kv[0]}: {kv[1]}"),
    st.tuples(st.sampled_from(sorted(ev.known_events())), st.none()).map(
        lambda kv: f"Event: {kv[0]}"
    ),
    st.text(max_size=60),
)
made_up_frame = st.lists(header_line, max_size=12).map(EOL.join)


@st.composite
def mutated_frame(draw: st.DrawFn) -> str:
    """A captured frame with lines dropped, repeated, garbled or added."""
    lines = draw(st.sampled_from(FRAMES)).split(EOL)
    for _ in range(draw(st.integers(1, 4))):
        # Mostly the lines a parser reads.
        read = [i for i, line in enumerate(lines) if line.partition(": ")[0] in PLAUSIBLE]
        anywhere = st.integers(0, max(0, len(lines) - 1))
        i = draw(st.sampled_from(read) if read and draw(st.booleans()) else anywhere)
        op = draw(st.sampled_from(["drop", "repeat", "garble", "add", "cut"]))
        if op == "drop" and lines:
            del lines[i]
        elif op == "repeat" and lines:
            lines.insert(i, lines[i])
        elif op == "garble" and lines:
            key = lines[i].partition(": ")[0]
            lines[i] = f"{key}: {draw(st.one_of(odd_values, values))}"
        elif op == "add":
            lines.insert(i, draw(header_line))
        elif op == "cut" and lines:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    return EOL.join(lines)


def encode(text: str) -> bytes:
    return text.encode("utf-8", errors="surrogatepass")


piece = st.one_of(
    st.sampled_from(FRAMES).map(encode),
    mutated_frame().map(encode),
    made_up_frame.map(encode),
    st.binary(max_size=200),
    # Over the bound: one long header.
    st.integers(SMALL_BOUND - 8, SMALL_BOUND + 8).map(lambda n: b"Event: Hangup\r\nX: " + b"x" * n),
)
# How a piece ends: a frame end, a single EOL (Asterisk sometimes), or nothing (runs on).
ending = st.sampled_from([b"\r\n\r\n", b"\r\n\r\n", b"\r\n", b"", b"\r\n\r\n\r\n", b"\n\n"])
stream = st.tuples(st.booleans(), st.lists(st.tuples(piece, ending), max_size=25)).map(
    lambda t: (BANNER + b"\r\n" if t[0] else b"") + b"".join(p + e for p, e in t[1])
)
cuts = st.lists(st.integers(1, 300), min_size=1, max_size=20)


def chunked(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    """`data` cut into reads of the given sizes, repeated."""
    i = 0
    k = 0
    while i < len(data):
        n = sizes[k % len(sizes)]
        yield data[i : i + n]
        i += n
        k += 1


class Recorder(AmiClient):
    """The real client, also keeping every frame it is handed and every connection loss."""

    def __init__(self) -> None:
        super().__init__(AmiOptions("127.0.0.1", 0, "cti", "x", queue_size=1_000_000))
        self.seen: list[tuple[tuple[str, Any], ...]] = []
        self.losses = 0

    def dispatch(self, message: Message) -> None:
        self.seen.append(tuple(sorted(message.items())))  # the body is there as "content"
        super().dispatch(message)

    def connection_lost(self, exc: object) -> None:
        self.losses += 1
        super().connection_lost(exc)


def feed(reads: Iterator[bytes]) -> tuple[Recorder, CtiAmiProtocol, list[str]]:
    """Feed reads into a fresh protocol with three pending actions; the outcome of each action."""

    async def run() -> tuple[Recorder, CtiAmiProtocol, list[str]]:
        client = Recorder()
        proto = protocol_for(client)
        actions = [
            CtiAction({"Action": "Ping", "ActionID": ACTION_IDS[0]}, as_list=False),
            CtiAction({"Action": "QueueStatus", "ActionID": ACTION_IDS[1]}, as_list=True),
            CtiAction({"Action": "CoreShowChannels", "ActionID": ACTION_IDS[2]}, as_list=True),
        ]
        for act in actions:
            proto.send(act, as_list=act.as_list)
        for data in reads:
            proto.data_received(data)
        outcomes = []
        for act in actions:
            if not act.future.done():
                outcomes.append("pending")
            elif act.future.exception() is not None:
                exc = act.future.exception()
                assert isinstance(exc, CtiError), repr(exc)
                outcomes.append(type(exc).__name__)
            else:
                outcomes.append(repr(act.future.result()))
        proto.close()
        for act in actions:
            assert act.future.done()
            if act.future.exception() is not None:
                assert isinstance(act.future.exception(), CtiError)
        return client, proto, outcomes

    return asyncio.run(run())


@budget(150)
@given(data=stream, sizes=cuts)
def test_any_stream_in_any_reads_never_raises_and_reads_the_same(
    data: bytes, sizes: list[int]
) -> None:
    with mock.patch.object(protocol, "MAX_FRAME_CHARS", SMALL_BOUND):
        whole, proto_whole, acts_whole = feed(iter([data]))
        cut, proto_cut, acts_cut = feed(chunked(data, sizes))
    assert cut.seen == whole.seen
    assert (proto_cut.garbled, cut.stats.garbled) == (proto_whole.garbled, whole.stats.garbled)
    assert proto_cut.version == proto_whole.version
    assert acts_cut == acts_whole
    assert cut.losses == whole.losses


junk = st.one_of(st.binary(max_size=300), made_up_frame.map(encode), mutated_frame().map(encode))


@budget(150)
@given(
    good=st.lists(st.sampled_from(GOOD), min_size=1, max_size=15),
    junks=st.lists(junk, min_size=1, max_size=16),
    sizes=cuts,
)
def test_good_frames_around_garbage_all_arrive_in_order(
    good: list[str], junks: list[bytes], sizes: list[int]
) -> None:
    # Every good frame is preceded by junk that ends as a frame does: a garbled frame must cost
    # nothing but itself.
    data = b"".join(
        junks[i % len(junks)] + FRAME_END.encode() + encode(g) + FRAME_END.encode()
        for i, g in enumerate(good)
    )
    with mock.patch.object(protocol, "MAX_FRAME_CHARS", SMALL_BOUND):
        client, _, _ = feed(chunked(data, sizes))
    wanted = [tuple(sorted(Message.from_line(g).items())) for g in good]
    seen = iter(client.seen)
    assert all(any(w == s for s in seen) for w in wanted), "a good frame was lost"


# -- the event and row parsers ---------------------------------------------------------------------


def check_types(obj: Any) -> None:
    """Every field has its declared type: no list from a repeated header, no NaN time."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, kind = getattr(obj, f.name), hints[f.name]
        if kind is str:
            assert isinstance(value, str), (f.name, value)
        elif kind is bool:
            assert isinstance(value, bool), (f.name, value)
        elif kind is int:
            assert isinstance(value, int) and not isinstance(value, bool), (f.name, value)
            assert -(2**31) <= value < 2**31, (f.name, "does not fit a database integer")
        elif kind is float:
            assert isinstance(value, float) and math.isfinite(value), (f.name, value)
        elif typing.get_origin(kind) is tuple:
            for item in value:
                check_types(item)
        else:
            assert typing.get_origin(kind) is Mapping, kind
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


def frame_of(name: str, lines: list[str]) -> Message | None:
    return Message.from_line(EOL.join([f"Event: {name}", *lines]))


@st.composite
def header_lines(draw: st.DrawFn) -> list[str]:
    """Every header a parser reads, each kept, dropped, garbled or repeated; then some noise."""
    lines = []
    for key, plausible in PLAUSIBLE.items():
        how = draw(st.sampled_from(["keep"] * 12 + ["drop", "odd", "repeat"]))
        if how != "drop":
            lines.append(f"{key}: {plausible if how != 'odd' else draw(odd_values)}")
        if how == "repeat":
            lines.append(f"{key}: {draw(st.one_of(st.just(plausible), values))}")
    return lines + draw(st.lists(header_line, max_size=3))


@pytest.mark.parametrize("name", sorted(ev.known_events()))
@budget(30)
@given(lines=header_lines())
def test_every_known_event_with_random_headers_parses_or_raises_protocol_error(
    name: str, lines: list[str]
) -> None:
    message = frame_of(name, lines)
    assert message is not None
    try:
        event = ev.parse_event(message)
    except ProtocolError:
        return
    if event is not None:
        check_types(event)


@budget(150)
@given(frame=mutated_frame())
def test_mutated_real_frames_parse_or_raise_protocol_error(frame: str) -> None:
    message = Message.from_line(frame)
    if message is None:
        return
    try:
        event = ev.parse_event(message)
    except ProtocolError:
        return
    if event is not None:
        check_types(event)


ROWS = ["CoreShowChannel", "QueueMember", "QueueEntry", "QueueParams", "CoreShowChannelsComplete"]


@budget(150)
@given(rows=st.lists(st.tuples(st.sampled_from(ROWS), header_lines()), max_size=6))
def test_list_rows_parse_or_raise_protocol_error(rows: list[tuple[str, list[str]]]) -> None:
    messages = [m for m in (frame_of(name, lines) for name, lines in rows) if m is not None]
    for parse in (responses.core_show_channels, responses.queue_status):
        try:
            result = parse(messages)
        except ProtocolError:
            continue
        for row in result if isinstance(result, list) else [result]:
            check_types(row)


# -- atheris ---------------------------------------------------------------------------------------


def fuzz_one(data: bytes) -> None:
    """One atheris input: the first byte picks the read size, the rest is the stream."""
    if not data:
        return
    size = data[0] + 1
    body = data[1:]
    with mock.patch.object(protocol, "MAX_FRAME_CHARS", SMALL_BOUND):
        whole, proto_whole, acts_whole = feed(iter([body]))
        cut, proto_cut, acts_cut = feed(chunked(body, [size]))
    assert cut.seen == whole.seen
    assert proto_cut.garbled + cut.stats.garbled == proto_whole.garbled + whole.stats.garbled
    assert acts_cut == acts_whole
    for seen in whole.seen:
        message = Message(dict(seen))
        try:
            event = ev.parse_event(message)
        except ProtocolError:
            continue
        if event is not None:
            check_types(event)


if __name__ == "__main__":
    atheris_main(
        fuzz_one,
        [bytes([i % 256]) + RAW[i * 4000 : i * 4000 + 8000] for i in range(len(RAW) // 4000)],
        [protocol, ev, responses, headers],
    )
