"""The AMI wire protocol on bytes from a fake transport: regressions the fuzzers found."""

import asyncio
import time
from unittest import mock

from panoramisk.message import Message

from cti.ami import protocol
from cti.ami.protocol import CtiAction, CtiAmiProtocol
from cti.errors import AmiDisconnected
from tests.support.replay import protocol_for

GOOD = b"Event: Hangup\r\nChannel: c\r\nUniqueid: u\r\nLinkedid: u\r\n\r\n"


class Frames:
    """A factory that keeps what the protocol dispatches."""

    def __init__(self) -> None:
        self.seen: list[Message] = []

    def dispatch(self, message: Message) -> None:
        self.seen.append(message)

    def connection_lost(self, exc: object) -> None:
        pass


def fed(data: bytes, read: int | None = None) -> tuple[CtiAmiProtocol, Frames]:
    frames = Frames()
    proto = protocol_for(frames)
    step = read or len(data) or 1
    for i in range(0, len(data), step):
        proto.data_received(data[i : i + step])
    return proto, frames


def test_a_frame_over_the_bound_is_dropped_whether_it_arrives_whole_or_in_pieces() -> None:
    # Found by the fuzzer: arriving in one read, it was delivered; byte by byte, it was dropped
    # and its tail counted as a second garbled frame.
    too_long = b"Event: Hangup\r\nX: " + b"x" * 1192 + b"\r\n\r\n"
    with mock.patch.object(protocol, "MAX_FRAME_CHARS", 1200):
        for read in (None, 1, 7):
            proto, frames = fed(too_long + GOOD, read)
            assert proto.garbled == 1, read
            assert [m["Channel"] for m in frames.seen] == ["c"], read


def test_a_frame_exactly_at_the_bound_is_kept_however_it_arrives() -> None:
    frame = b"Event: Hangup\r\nChannel: " + b"c" * 40
    with mock.patch.object(protocol, "MAX_FRAME_CHARS", len(frame)):
        for read in (None, 1, 3):
            proto, frames = fed(frame + b"\r\n\r\n" + GOOD, read)
            assert proto.garbled == 0 and len(frames.seen) == 2, read


def test_the_banner_cut_across_reads_still_gives_the_version() -> None:
    # Found by the fuzzer: b"Asterisk Call Manager/11.0.0\r\n" read byte by byte gave version ''.
    banner = b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nMessage: ok\r\n\r\n"
    for read in (None, 1, 5):
        proto, _ = fed(banner, read)
        assert proto.version == "11.0.0", read
        assert proto.garbled == 0


def test_a_response_that_repeats_its_actionid_costs_only_itself() -> None:
    # Found by the fuzzer: the frame `ActionID: \r\nEvent: \r\nActionID: n` (panoramisk makes a
    # repeated header a list) raised TypeError out of data_received, which drops the connection.
    async def run() -> None:
        frames = Frames()
        proto = protocol_for(frames)
        ping = CtiAction({"Action": "Ping", "ActionID": "a-1"}, as_list=False)
        proto.send(ping, as_list=False)
        proto.data_received(b"ActionID: \r\nEvent: \r\nActionID: n\r\n\r\n")
        proto.data_received(b"Response: Success\r\nActionID: a-1\r\nActionID: a-1\r\n\r\n")
        proto.data_received(GOOD + b"Response: Success\r\nActionID: a-1\r\nPing: Pong\r\n\r\n")
        assert proto.garbled == 2
        assert [m["Channel"] for m in frames.seen] == ["c"]
        assert (await ping.future)["Ping"] == "Pong"
        proto.close()

    asyncio.run(run())


def test_an_unterminated_giant_frame_in_small_reads_costs_linear_time() -> None:
    """A peer that trickles a frame that never ends: time in proportion to its bytes.

    Each read used to re-join and re-scan everything held: 1 MiB in 16-byte reads took over 20 s
    of CPU; it takes well under one now.
    """
    big = b"Event: Hangup\r\nJunk: " + b"a" * (protocol.MAX_FRAME_CHARS + 1000) + b"\r\n\r\n"
    start = time.process_time()
    proto, frames = fed(big + GOOD, 16)
    spent = time.process_time() - start
    assert spent < 8, f"{spent:.1f}s of CPU"
    assert proto.garbled == 1 and [m["Channel"] for m in frames.seen] == ["c"]


def test_pending_actions_fail_at_close() -> None:
    async def run() -> None:
        proto = protocol_for(Frames())
        ping = CtiAction({"Action": "Ping"}, as_list=False)
        proto.send(ping, as_list=False)
        proto.close()
        assert isinstance(ping.future.exception(), AmiDisconnected)

    asyncio.run(run())
