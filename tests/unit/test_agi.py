"""The FastAGI reader on a real socket: regressions the fuzzers found (tests/fuzz/test_agi.py)."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cti.errors import IvrError, ProtocolError
from cti.ivr.agi import AgiChannel, AgiServer, parse_response

ENV = b"agi_network_script: ivr\nagi_uniqueid: 1795637294.2\n\n"


def one_command(
    reply: bytes,
    command: Callable[[AgiChannel], Awaitable[Any]],
    *,
    timeout: float = 5.0,
) -> Any:
    """What `command` returns (or raises) when Asterisk answers it with `reply`, then keeps the
    connection open and says nothing: the server must end the call by itself."""
    outcome: list[Any] = []

    async def handler(ch: AgiChannel) -> None:
        ch.command_timeout = timeout
        try:
            outcome.append(await command(ch))
        except Exception as exc:
            outcome.append(exc)

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(reply)

    session(handler, peer, "asyncio", wait=timeout + 5)
    return outcome[0]


Peer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def session(
    handler: Callable[[AgiChannel], Awaitable[None]], peer: Peer, loop: str, wait: float = 5.0
) -> None:
    """One FastAGI session on `loop`: our server runs `handler`, `peer` plays Asterisk after the
    env block, then the server must close the call within `wait` seconds, sending nothing more."""
    from cti import eventloop

    async def run() -> None:
        server = AgiServer("127.0.0.1", 0, handler)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(ENV)
            await peer(reader, writer)
            assert await asyncio.wait_for(reader.read(), wait) == b""
            writer.close()
        finally:
            await server.stop()

    eventloop.run(run(), loop)


@pytest.mark.parametrize(
    ("result", "digit"),
    [("49", "1"), ("35", "#"), ("65", "A"), ("0", None), ("1", None), ("1114112", None)],
)
def test_only_a_phone_key_is_a_digit(result: str, digit: str | None) -> None:
    # Found by the fuzzer: STREAM FILE answered `200 result=1` gave the key '\x01', and
    # `200 result=1114112` raised ValueError (chr() out of range) out of the IVR step.
    assert parse_response(f"200 result={result}").digit == digit
    got = one_command(f"200 result={result} endpos=1\n".encode(), lambda ch: ch.stream_file("x"))
    assert got == digit


@pytest.mark.parametrize(
    "line",
    [
        "000 result=endpos=" + "0" * 4301,  # int() refused it with ValueError
        "000 result=endpos=9223372036854775808",  # past any file offset
        "0000",  # four digits are no response code
        "2001 result=1",
        "٢٠٠ result=0",  # Arabic-Indic digits matched \d and int() read them as 200
    ],
)
def test_malformed_response_lines_are_protocol_errors(line: str) -> None:
    # Minimal examples from the fuzzer's property: parse_response returns or raises ProtocolError.
    with pytest.raises(ProtocolError):
        parse_response(line)


def test_an_endpos_of_five_thousand_digits_ends_the_step_with_a_protocol_error() -> None:
    got = one_command(b"200 result=-1 () endpos=" + b"9" * 5000 + b"\n", lambda ch: ch.exec("x"))
    assert isinstance(got, ProtocolError)


def test_response_lines_asterisk_writes_still_parse() -> None:
    assert parse_response("200 result=0 endpos=9223372036854775807").endpos == 2**63 - 1
    assert parse_response("200").code == 200
    assert parse_response("520-Invalid command syntax.  Proper usage follows:").code == 520


def test_a_reply_line_over_the_limit_is_a_protocol_error() -> None:
    # Found by the fuzzer: b'200 result=0 (' + b'x' * 8178 + b')\n' raised the StreamReader's bare
    # ValueError ("Separator is found, but chunk is longer than limit") out of the IVR step.
    got = one_command(b"200 result=0 (" + b"x" * 8178 + b")\n", lambda ch: ch.stream_file("x"))
    assert isinstance(got, ProtocolError) and "longer than 8192" in str(got)


def test_a_usage_text_that_never_ends_times_out() -> None:
    # Found by the fuzzer: '520-' and usage lines, then silence, held the session for ever (the
    # 520 loop read without a deadline, and only the first line of a reply had one).
    start = time.monotonic()
    got = one_command(
        b"520-Invalid command syntax.  Proper usage follows:\n Usage: x\n",
        lambda ch: ch.stream_file("x"),
        timeout=0.5,
    )
    assert isinstance(got, TimeoutError) and time.monotonic() - start < 5


@pytest.mark.parametrize("reply", [b"520-" + b"x\n" * 300, b"HANGUP\n" * 300])
def test_a_reply_of_endless_lines_is_a_protocol_error(reply: bytes) -> None:
    got = one_command(reply, lambda ch: ch.stream_file("x"))
    assert isinstance(got, ProtocolError)


def test_a_usage_text_that_ends_is_an_ivr_error() -> None:
    reply = (
        b"520-Invalid command syntax.  Proper usage follows:\n Usage: x\n520 End of proper usage.\n"
    )
    got = one_command(reply, lambda ch: ch.stream_file("x"))
    assert type(got) is IvrError


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_usage_text_larger_than_the_read_buffer_is_read_to_its_end(loop: str) -> None:
    # 150 lines of 200 bytes: reading pauses past 2 x MAX_LINE unread bytes and resumes as the
    # lines are consumed; the whole text ends the command with an IvrError, and the next
    # command's reply, sent later, is still read.
    usage = b"520-Invalid command syntax.\n" + (b" " + b"u" * 198 + b"\n") * 150 + b"520 End.\n"
    seen: list[Any] = []

    async def handler(ch: AgiChannel) -> None:
        ch.command_timeout = 5
        try:
            await ch.stream_file("x")
        except IvrError as exc:
            seen.append(type(exc))
        seen.append(await ch.get_variable("X"))

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(usage)
        assert await asyncio.wait_for(reader.readline(), 5) == b'GET VARIABLE "X"\n'
        writer.write(b"200 result=1 (42)\n")

    session(handler, peer, loop)
    assert seen == [IvrError, "42"]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_the_deadline_is_per_command(loop: str) -> None:
    # One timer per connection, re-armed lazily: three commands each answered after 0.2 s with a
    # 0.3 s budget all succeed (0.6 s in all), a fourth left unanswered times out on its own.
    seen: list[Any] = []

    async def handler(ch: AgiChannel) -> None:
        ch.command_timeout = 0.3
        for n in range(3):
            seen.append(await ch.get_variable(f"X{n}"))
        start = time.monotonic()
        try:
            await ch.get_variable("Y")
        except TimeoutError:
            seen.append(round(time.monotonic() - start, 1))

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for n in range(3):
            assert await reader.readline() == f'GET VARIABLE "X{n}"\n'.encode()
            await asyncio.sleep(0.2)
            writer.write(f"200 result=1 ({n})\n".encode())
        assert await reader.readline() == b'GET VARIABLE "Y"\n'

    session(handler, peer, loop)
    assert seen[:3] == ["0", "1", "2"]
    assert len(seen) == 4 and 0.2 <= seen[3] <= 1.0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_session_runs_on_either_loop_with_nodelay(loop: str) -> None:
    # The server runs on uvloop when installed (cti/eventloop.py), asyncio's loop otherwise:
    # the same session works on both, and its socket never waits on Nagle's algorithm.
    import socket

    seen: list[Any] = []

    async def handler(ch: AgiChannel) -> None:
        sock = ch.stream.get_extra_info("socket")
        seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        seen.append(type(asyncio.get_running_loop()).__module__)
        seen.append(await ch.get_variable("X"))

    async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readline() == b'GET VARIABLE "X"\n'
        writer.write(b"200 result=1 (42)\n")

    session(handler, peer, loop)
    assert seen[0] != 0
    assert seen[1].startswith(loop)
    assert seen[2] == "42"


def test_an_unknown_loop_is_refused() -> None:
    from cti import eventloop

    with pytest.raises(ValueError, match="unknown event loop"):
        eventloop.loop_name("trio")
