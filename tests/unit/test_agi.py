"""The FastAGI reader on a real socket: regressions the fuzzers found (tests/fuzz/test_agi.py)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cti.ivr.agi import AgiChannel, AgiServer, parse_response

ENV = b"agi_network_script: ivr\nagi_uniqueid: 1795637294.2\n\n"


def one_command(
    reply: bytes, command: Callable[[AgiChannel], Awaitable[Any]], *, timeout: float = 5.0
) -> Any:
    """What `command` returns (or raises) when Asterisk answers it with `reply` and hangs up."""
    outcome: list[Any] = []

    async def handler(ch: AgiChannel) -> None:
        ch.command_timeout = timeout
        try:
            outcome.append(await command(ch))
        except Exception as exc:
            outcome.append(exc)

    async def run() -> None:
        server = AgiServer("127.0.0.1", 0, handler)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(ENV)
            await reader.readline()
            writer.write(reply)
            await asyncio.wait_for(reader.read(), timeout + 5)  # the server closes the call
            writer.close()
        finally:
            await server.stop()

    asyncio.run(run())
    return outcome[0]


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
