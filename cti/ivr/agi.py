"""FastAGI: our own accept loop and a typed AGI channel.

panoramisk's FastAGI `Application.handler` spins forever on a client that disconnects before
sending its headers (a port probe), so the server here is our own: every connection gets a
header timeout and size limits, a probe is dropped quietly, and one call's failure never touches
another's.

Protocol facts (Asterisk 22): `AGI(agi://host:port/route,arg1,...)` opens one TCP connection per
call and sends `agi_*: value` lines ending with a blank line; the route is agi_network_script and
arguments are agi_arg_N. When the caller hangs up Asterisk writes an unsolicited `HANGUP` line and
later commands get `511`; `HANGUP`, `result=-1` and 511 all mean the call is over.
"""

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cti.errors import IvrError, ProtocolError

logger = logging.getLogger(__name__)

MAX_HEADER_LINES = 128
MAX_LINE = 8192
_RESPONSE = re.compile(
    r"^(\d{3})(?:[ -](?:result=(-?[0-9*#A-D]*))?\s*(?:\((.*)\))?\s*(?:endpos=(\d+))?)?"
)


class AgiHangup(IvrError):
    """The call hung up (HANGUP line, result=-1 or 511)."""


@dataclass(frozen=True, slots=True)
class AgiResponse:
    """One AGI response line, parsed."""

    code: int
    result: str
    data: str
    endpos: int | None
    line: str

    @property
    def digit(self) -> str | None:
        """The DTMF digit of STREAM FILE / WAIT FOR DIGIT (ASCII code in `result`), or None."""
        try:
            code = int(self.result)
        except ValueError:
            return None
        return chr(code) if code > 0 else None


def parse_response(line: str) -> AgiResponse:
    """Parse `200 result=49 (timeout) endpos=1234`."""
    m = _RESPONSE.match(line)
    if not m:
        raise ProtocolError(f"unparseable AGI response {line!r}")
    endpos = int(m.group(4)) if m.group(4) else None
    return AgiResponse(int(m.group(1)), m.group(2) or "", m.group(3) or "", endpos, line)


def quote(arg: str) -> str:
    """An AGI command argument: quoted, with quotes and backslashes escaped, no line breaks."""
    if "\n" in arg or "\r" in arg:
        raise IvrError("AGI argument contains a line break")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiChannel:
    """One call's FastAGI session."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        env: dict[str, str],
        command_timeout: float = 600.0,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.env = env
        self.command_timeout = command_timeout
        self.hung_up = False

    @property
    def uniqueid(self) -> str:
        """The channel's Uniqueid."""
        return self.env.get("agi_uniqueid", "")

    @property
    def linkedid(self) -> str:
        """Linkedid is not in the AGI environment; the caller channel's own id keys our calls."""
        return self.uniqueid

    @property
    def route(self) -> str:
        """The path of agi://host:port/<route>."""
        return self.env.get("agi_network_script", "").strip("/")

    def arg(self, n: int) -> str:
        """agi_arg_N, or ''."""
        return self.env.get(f"agi_arg_{n}", "")

    async def command(self, cmd: str, *args: str, raw: tuple[str, ...] = ()) -> AgiResponse:
        """Send one command (quoted args, then raw args) and return its response."""
        if self.hung_up:
            raise AgiHangup(f"{cmd}: the call has hung up")
        line = " ".join([cmd, *(quote(a) for a in args), *raw])
        self.writer.write(line.encode() + b"\n")
        await self.writer.drain()
        while True:
            raw_line = await asyncio.wait_for(self._readline(), self.command_timeout)
            if raw_line == "HANGUP":
                # Unsolicited: the response to our command still follows.
                self.hung_up = True
                continue
            resp = parse_response(raw_line)
            if resp.code == 520 and raw_line.startswith("520-"):
                while not (await self._readline()).startswith("520 "):
                    pass
                raise IvrError(f"AGI usage error for {line!r}")
            if resp.code == 511:
                self.hung_up = True
                raise AgiHangup(f"{cmd}: channel is dead")
            if resp.code != 200:
                raise IvrError(f"AGI {cmd} failed: {raw_line}")
            if resp.result == "-1" and cmd not in ("GET VARIABLE", "GET FULL VARIABLE"):
                self.hung_up = True
                raise AgiHangup(f"{cmd}: result=-1")
            return resp

    async def _readline(self) -> str:
        raw = await self.reader.readline()
        if not raw:
            self.hung_up = True
            raise AgiHangup("AGI connection closed")
        if len(raw) > MAX_LINE:
            raise ProtocolError("AGI response line too long")
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    # -- helpers -----------------------------------------------------------------------------------

    async def stream_file(self, name: str, escape: str = "") -> str | None:
        """Play a prompt; the digit that interrupted it, or None."""
        return (await self.command("STREAM FILE", name, escape)).digit

    async def get_data(self, prompt: str, timeout_ms: int, max_digits: int) -> str:
        """Play `prompt` and collect up to `max_digits` digits ('#' ends); '' on silence."""
        resp = await self.command("GET DATA", prompt, raw=(str(timeout_ms), str(max_digits)))
        return resp.result

    async def say_digits(self, digits: str, escape: str = "") -> str | None:
        """Say a number digit by digit in the channel's language."""
        return (await self.command("SAY DIGITS", digits, escape)).digit

    async def wait_for_digit(self, timeout_ms: int) -> str | None:
        """Wait for one DTMF digit."""
        return (await self.command("WAIT FOR DIGIT", raw=(str(timeout_ms),))).digit

    async def set_variable(self, name: str, value: str) -> None:
        """Set a channel variable (visible to the dialplan after AGI returns)."""
        await self.command("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        """A channel variable, or None if unset."""
        resp = await self.command("GET VARIABLE", name)
        return resp.data if resp.result == "1" else None

    async def exec(self, app: str, args: str = "") -> AgiResponse:
        """Run a dialplan application."""
        return await self.command("EXEC", app, args)

    async def record_file(
        self, path: str, fmt: str, escape: str, timeout_ms: int, silence_s: int
    ) -> AgiResponse:
        """Record to `path`.`fmt` until a key in `escape`, a timeout or `silence_s` of silence."""
        return await self.command(
            "RECORD FILE", path, fmt, escape, raw=(str(timeout_ms), "BEEP", f"s={silence_s}")
        )


Handler = Callable[[AgiChannel], Awaitable[None]]


class AgiServer:
    """A FastAGI server: one coroutine per call, all owned and cancelled on stop."""

    def __init__(
        self, host: str, port: int, handler: Handler, *, header_timeout: float = 5.0
    ) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.header_timeout = header_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.probes = 0
        self.failures = 0

    async def start(self) -> None:
        """Listen."""
        self._server = await asyncio.start_server(
            self._accept, self.host, self.port, limit=MAX_LINE
        )
        if self.port == 0:
            self.port = self._server.sockets[0].getsockname()[1]
        logger.info("FastAGI listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening and end every call's coroutine."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            env = await self._read_env(reader)
            if env is None:
                self.probes += 1
                return
            self.calls += 1
            channel = AgiChannel(reader, writer, env)
            try:
                await self.handler(channel)
            except AgiHangup:
                logger.info("caller hung up in the IVR linkedid=%s", channel.uniqueid)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                logger.exception("IVR failed linkedid=%s", channel.uniqueid)
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.close()

    async def _read_env(self, reader: asyncio.StreamReader) -> dict[str, str] | None:
        """The agi_* header block, or None for a probe, a timeout or garbage."""
        env: dict[str, str] = {}
        try:
            async with asyncio.timeout(self.header_timeout):
                for _ in range(MAX_HEADER_LINES):
                    raw = await reader.readline()
                    if not raw:
                        return None
                    line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                    if not line:
                        return env if "agi_network_script" in env or "agi_request" in env else None
                    key, sep, value = line.partition(":")
                    if not sep or not key.startswith("agi_"):
                        return None
                    env[key.strip()] = value.strip()
        except (TimeoutError, ValueError, asyncio.LimitOverrunError, ConnectionError):
            return None
        return None
