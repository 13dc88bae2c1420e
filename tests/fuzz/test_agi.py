"""The FastAGI reader against hostile peers: the env block, the reply lines, `parse_response`.

The socket properties start the real AgiServer on 127.0.0.1:0 and play a hostile Asterisk: random
header blocks (no end, huge or non-UTF-8 lines, HANGUP where a header belongs), then random replies
(HANGUP in odd places, 511, 520 usage that never ends, partial lines, silence). Whatever it sends,
the session ends in bounded time with the connection closed, the handler sees only the errors the
IVR is built to handle (CtiError, OSError, TimeoutError), no task is left behind, and a good call
right after works.

Long run: `CTI_FUZZ_EXAMPLES=2000 python -m pytest tests/fuzz/test_agi.py`, or
`python -m tests.fuzz.test_agi -atheris_runs=200000` (coverage-guided, without sockets).
"""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from cti.errors import CtiError, ProtocolError
from cti.ivr import agi, agi_stream
from cti.ivr.agi import AgiChannel, AgiServer, parse_response
from tests.fuzz.budget import atheris_main, budget

DTMF = set("0123456789*#ABCD")
EXPECTED = (CtiError, OSError, TimeoutError)  # what routes.py handles as a failed IVR step
HEADER_TIMEOUT = 1.0  # generous: the good call after each example must never hit it
COMMAND_TIMEOUT = 0.5  # what a hostile reply costs: keep the short budget short

ENV = {
    "agi_network": "yes", "agi_network_script": "ivr", "agi_request": "agi://127.0.0.1/ivr",
    "agi_channel": "PJSIP/carrier-00000001", "agi_language": "zh", "agi_type": "PJSIP",
    "agi_uniqueid": "1795637294.2", "agi_version": "22.10.1", "agi_callerid": "13800138000",
    "agi_calleridname": "张三", "agi_context": "cti-inbound", "agi_extension": "8000",
    "agi_priority": "2", "agi_enhanced": "0.0", "agi_accountcode": "", "agi_threadid": "1",
    "agi_arg_1": "x",
}  # fmt: skip
GOOD_ENV = "".join(f"{k}: {v}\n" for k, v in ENV.items()).encode() + b"\n"


# -- what the handler does with a channel ---------------------------------------------------------


async def _script(ch: AgiChannel) -> list[Any]:
    """Every kind of command the IVR sends, each result checked for its type."""
    out: list[Any] = []
    digit = await ch.stream_file("cti/welcome", "123")
    assert digit is None or digit in DTMF, digit
    out.append(digit)
    data = await ch.get_data("cti/main_menu", 5000, 6)
    assert isinstance(data, str)
    out.append(data)
    var = await ch.get_variable("CTI_X")
    assert var is None or isinstance(var, str)
    out.append(var)
    for step in (lambda: ch.say_digits("2611"), lambda: ch.wait_for_digit(5000)):
        digit = await step()
        assert digit is None or digit in DTMF, digit
        out.append(digit)
    await ch.set_variable("CTI_NEXT", "queue")
    resp = await ch.exec("Playback", "beep")
    assert 100 <= resp.code <= 599 and (resp.endpos is None or resp.endpos >= 0)
    return out


COMMANDS = 7


def recording_handler(outcomes: list[Any]) -> Callable[[AgiChannel], Awaitable[None]]:
    async def handler(ch: AgiChannel) -> None:
        ch.command_timeout = COMMAND_TIMEOUT
        try:
            outcomes.append(await _script(ch))
        except Exception as exc:
            outcomes.append(exc)
            raise

    return handler


def check_outcomes(outcomes: list[Any]) -> None:
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            assert isinstance(outcome, EXPECTED), repr(outcome)


# -- a real server, a hostile peer, then a good call ------------------------------------------------


async def _read_all(reader: asyncio.StreamReader, limit: float) -> bytes:
    """Everything the server sends until it closes the connection (which it must, in time)."""
    out = b""
    try:
        async with asyncio.timeout(limit):
            while chunk := await reader.read(65536):
                out += chunk
    except TimeoutError:  # an OSError: keep it apart from the resets a peer may see
        raise AssertionError(f"the server held the session for over {limit}s") from None
    except ConnectionError:
        pass
    return out


async def _good_call(port: int, outcomes: list[Any]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GOOD_ENV)
    replies = [
        b"200 result=49 endpos=1234\n",
        b"200 result=1234 (timeout)\n",
        b"200 result=1 (helpdesk)\n",
        b"200 result=0\n",
        b"200 result=35\n",
        b"200 result=1\n",
        b"200 result=0\n",
    ]
    for reply in replies:
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.endswith(b"\n"), line
        writer.write(reply)
    await _read_all(reader, 5)
    writer.close()
    assert outcomes[-1] == ["1", "1234", "helpdesk", None, "#"], outcomes[-1]


async def _serve(peer: Callable[[int], Awaitable[None]]) -> tuple[AgiServer, list[Any]]:
    outcomes: list[Any] = []
    server = AgiServer("127.0.0.1", 0, recording_handler(outcomes), header_timeout=HEADER_TIMEOUT)
    await server.start()
    try:
        await peer(server.port)
        # The hostile session is over for the server too: nothing left running (no spin).
        if server._tasks:
            _, running = await asyncio.wait(set(server._tasks), timeout=5)
            assert not running, "a session outlived its peer"
        check_outcomes(outcomes)
        before = server.calls
        await asyncio.wait_for(_good_call(server.port, outcomes), 10)
        assert server.calls == before + 1
    finally:
        await server.stop()
    return server, outcomes


async def _send(writer: asyncio.StreamWriter, data: bytes, cuts: list[int]) -> None:
    """Write `data` in pieces, letting the server read between them (partial reads)."""
    i = 0
    k = 0
    while i < len(data):
        n = cuts[k % len(cuts)]
        writer.write(data[i : i + n])
        await writer.drain()
        await asyncio.sleep(0)
        i += n
        k += 1


def _end(writer: asyncio.StreamWriter, how: str) -> None:
    with contextlib.suppress(OSError):  # the server may have closed first, as it should
        if how == "close":
            writer.close()
        elif how == "half_close":
            writer.write_eof()
        # "silent": keep the connection open and say nothing more


ENDINGS = st.sampled_from(["close", "half_close", "close", "half_close", "silent", "close"])
CUTS = st.lists(st.integers(1, 4096), min_size=1, max_size=8)

env_line = st.one_of(
    st.sampled_from([f"{k}: {v}\n".encode() for k, v in ENV.items()]),
    st.tuples(st.sampled_from(sorted(ENV)), st.text(max_size=30)).map(
        lambda kv: f"{kv[0]}: {kv[1]}\n".encode()
    ),
    st.sampled_from(
        [b"HANGUP\n", b"\n", b"\r\n", b"agi_x\n", b"agi_: \n", b": x\n", b"200 result=0\n"]
    ),
    st.binary(max_size=40).map(lambda b: b + b"\n"),
    st.binary(max_size=40),  # runs into the next line
    st.integers(agi_stream.MAX_LINE - 4, agi_stream.MAX_LINE + 4).map(
        lambda n: b"agi_arg_2: " + b"x" * n + b"\n"
    ),
    st.just(b"agi_arg_3: x\n" * (agi.MAX_HEADER_LINES + 1)),
)


@budget(50)
@given(lines=st.lists(env_line, max_size=20), cuts=CUTS, ending=ENDINGS)
def test_hostile_header_blocks_end_their_session_and_harm_no_other(
    lines: list[bytes], cuts: list[int], ending: str
) -> None:
    async def peer(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        with contextlib.suppress(OSError):  # the server may close on us mid-way, as it should
            await _send(writer, b"".join(lines), cuts)
        _end(writer, ending)
        limit = HEADER_TIMEOUT + COMMAND_TIMEOUT * (COMMANDS + 2) + 3
        await _read_all(reader, limit)
        writer.close()

    asyncio.run(_serve(peer))


def _valid_reply() -> st.SearchStrategy[bytes]:
    results = st.one_of(
        st.integers(-2, 300).map(str),
        st.sampled_from(["", "1114112", "99999999999", "-1", "*", "#", "12#", "A"]),
    )
    data = st.one_of(st.none(), st.text(max_size=20).filter(lambda t: "\n" not in t))
    endpos = st.one_of(st.none(), st.integers(0, 10**20).map(str), st.just("9" * 5000))
    return st.tuples(results, data, endpos).map(
        lambda t: (
            f"200 result={t[0]}"
            + (f" ({t[1]})" if t[1] is not None else "")
            + (f" endpos={t[2]}" if t[2] is not None else "")
            + "\n"
        ).encode()
    )


reply = st.one_of(
    _valid_reply(),
    _valid_reply().map(lambda r: b"HANGUP\n" + r),
    st.sampled_from(
        [
            b"HANGUP\n",
            b"511 Command Not Permitted on a dead channel or intercept routine\n",
            b"520-Invalid command syntax.  Proper usage follows:\n Usage: x\n520 End of proper usage.\n",
            b"520-Invalid command syntax.  Proper usage follows:\n Usage: x\n",  # never ends
            b"HANGUP\n",  # then silence
            b"200 res",  # a partial line
        ]
    ),
    st.sampled_from(
        [
            b"510 Invalid or unknown command\n",
            b"520-" + b"x\n" * 300,
            b"HANGUP\n" * 300,
            b"\n",
            b"200\n",
            b"2001 result=1\n",
            "٢٠٠ result=0\n".encode(),
            b"200 result=0 (\xff\xfe)\n",
        ]
    ),
    st.integers(agi_stream.MAX_LINE - 16, agi_stream.MAX_LINE + 16).map(
        lambda n: b"200 result=0 (" + b"x" * n + b")\n"
    ),
    st.binary(max_size=60).map(lambda b: b + b"\n"),
)


@budget(40)
@given(replies=st.lists(reply, max_size=COMMANDS + 1), cuts=CUTS, ending=ENDINGS)
def test_hostile_replies_end_the_call_cleanly_and_harm_no_other(
    replies: list[bytes], cuts: list[int], ending: str
) -> None:
    async def peer(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(GOOD_ENV)
        try:
            for r in replies:
                # Wait for a command (none comes once the handler has given up).
                line = await asyncio.wait_for(reader.readline(), COMMAND_TIMEOUT + 3)
                if not line:
                    break
                await _send(writer, r, cuts)
        except (OSError, TimeoutError):
            pass
        _end(writer, ending)
        await _read_all(reader, COMMAND_TIMEOUT * (COMMANDS + 2) + 3)
        writer.close()

    asyncio.run(_serve(peer))


def test_a_probe_that_disconnects_at_once_is_dropped_without_spinning() -> None:
    """panoramisk's FastAGI spins forever on this; ours counts a probe and moves on."""

    async def peer(port: int) -> None:
        for payload in (b"", b"agi_network_script: ivr\n", b"GET / HTTP/1.0\r\n\r\n"):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            writer.close()
        start = time.process_time()
        await asyncio.sleep(0.3)
        assert time.process_time() - start < 0.2, "the server is busy with nobody"

    server, _ = asyncio.run(_serve(peer))
    assert server.probes == 3


def test_a_peer_that_says_nothing_is_dropped_after_the_header_timeout() -> None:
    async def peer(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        start = time.monotonic()
        assert await _read_all(reader, HEADER_TIMEOUT + 3) == b""
        assert time.monotonic() - start >= HEADER_TIMEOUT * 0.9
        writer.close()

    server, _ = asyncio.run(_serve(peer))
    assert server.probes == 1


# -- the line parser alone --------------------------------------------------------------------------


@budget(400)
@given(line=st.one_of(st.text(), _valid_reply().map(lambda b: b.decode().rstrip("\n"))))
def test_parse_response_returns_a_response_or_raises_protocol_error(line: str) -> None:
    try:
        resp = parse_response(line)
    except ProtocolError:
        return
    assert line[:3].isascii() and line[:3].isdigit() and line[3:4] in ("", " ", "-"), line
    assert resp.code == int(line[:3])
    assert resp.digit is None or resp.digit in DTMF
    assert resp.endpos is None or 0 <= resp.endpos < 2**63


@budget(200)
@given(
    result=st.one_of(st.integers(-1, 10**6).map(str), st.sampled_from(["", "*", "12#"])),
    data=st.one_of(
        st.none(), st.text(max_size=30).filter(lambda t: "\n" not in t and "\r" not in t)
    ),
    endpos=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
)
def test_parse_response_reads_back_what_asterisk_writes(
    result: str, data: str | None, endpos: int | None
) -> None:
    line = f"200 result={result}"
    line += f" ({data})" if data is not None else ""
    line += f" endpos={endpos}" if endpos is not None else ""
    resp = parse_response(line)
    assert (resp.code, resp.result, resp.data, resp.endpos) == (200, result, data or "", endpos)


# -- atheris: the same reader without sockets --------------------------------------------------------


class _Transport(asyncio.Transport):
    """Where the channel's commands go when there is no socket: nowhere."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


def fuzz_one(data: bytes) -> None:
    """One atheris input: the bytes Asterisk sends, env block and replies, then EOF."""

    async def run() -> None:
        stream = agi_stream.AgiStream(asyncio.get_running_loop())
        stream.connection_made(_Transport())
        stream.data_received(data)
        stream.eof_received()
        server = AgiServer("127.0.0.1", 0, recording_handler([]))
        env = await server._read_env(stream)
        if env is None:
            return
        ch = AgiChannel(stream, env, command_timeout=1)
        with contextlib.suppress(*EXPECTED):
            await _script(ch)

    asyncio.run(run())
    for line in data.split(b"\n"):
        try:
            resp = parse_response(line.decode("utf-8", errors="replace"))
        except ProtocolError:
            continue
        assert resp.digit is None or resp.digit in DTMF


if __name__ == "__main__":
    atheris_main(
        fuzz_one,
        [
            GOOD_ENV + b"200 result=49 endpos=1234\n200 result=1234 (timeout)\n",
            GOOD_ENV + b"HANGUP\n200 result=-1\n511 Command Not Permitted\n",
            GOOD_ENV + b"520-Invalid command syntax.\n Usage\n520 End of proper usage.\n",
        ],
        [agi, agi_stream],
    )
