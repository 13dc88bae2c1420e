"""FastAGI: our own accept loop and a typed AGI channel.

panoramisk's FastAGI `Application.handler` spins forever on a client that disconnects before
sending its headers (a port probe), so the server here is our own: every connection gets a
header timeout and size limits, a probe is dropped quietly, and one call's failure never touches
another's. A connection's bytes go through `cti.ivr.agi_stream.AgiStream`, an asyncio Protocol
with one deadline timer per connection: with 50 calls stepping at once every command is a
wake-up of its own, and the Python work per command is what bench.agi measures.

Whoever reaches the port could otherwise open incidents and set satisfaction scores with forged
sessions, so a session is refused, before any route runs, unless it comes from an allowed host
(AgiAccess: the Asterisk hosts) and carries the shared secret in its URL when one is set
(`agi://host:port/route?key=SECRET`).

Protocol facts (Asterisk 22): `AGI(agi://host:port/route,arg1,...)` opens one TCP connection per
call and sends `agi_*: value` lines ending with a blank line; the route is agi_network_script (all
of the URL after host:port/, a query included) and arguments are agi_arg_N. When the caller hangs
up Asterisk writes an unsolicited `HANGUP` line and later commands get `511`; `HANGUP`,
`result=-1` and 511 all mean the call is over.
"""

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from cti.errors import IvrError, ProtocolError
from cti.ivr.agi_stream import AgiStream

logger = logging.getLogger(__name__)

DTMF_KEYS = frozenset("0123456789*#ABCD")
MAX_HEADER_LINES = 128
MAX_REPLY_LINES = 200  # a 520 usage text is a few dozen lines
# Three ASCII digits, then the end of the line, a space or '-' (520- starts a usage text).
_RESPONSE = re.compile(
    r"^(\d{3})(?:$|[ -](?:result=(-?[0-9*#A-D]*))?\s*(?:\((.*)\))?\s*(?:endpos=(\d+))?)",
    re.ASCII,
)
MAX_ENDPOS = 2**63 - 1  # a file offset


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
        """The DTMF key of STREAM FILE / WAIT FOR DIGIT (ASCII code in `result`), or None."""
        try:
            code = int(self.result)
        except ValueError:
            return None
        # Anything but a phone key's code is no key press (chr() of a large code even raised).
        key = chr(code) if 0 < code < 128 else ""
        return key if key in DTMF_KEYS else None


def parse_response(line: str) -> AgiResponse:
    """Parse `200 result=49 (timeout) endpos=1234`."""
    known = _COMMON.get(line)
    if known is not None:
        return known
    m = _RESPONSE.match(line)
    if not m:
        raise ProtocolError(f"unparseable AGI response {line[:200]!r}")
    endpos = None
    if m.group(4):
        # int() refuses more than 4300 digits with ValueError; a sample offset has at most 19.
        endpos = int(m.group(4)) if len(m.group(4)) <= 19 else MAX_ENDPOS + 1
        if endpos > MAX_ENDPOS:
            raise ProtocolError(f"AGI response with an impossible endpos: {line[:200]!r}")
    return AgiResponse(int(m.group(1)), m.group(2) or "", m.group(3) or "", endpos, line)


# The replies most commands get, parsed once (AgiResponse is immutable): SET VARIABLE's and
# EXEC's `200 result=0`/`1`, a key's code from STREAM FILE or WAIT FOR DIGIT.
_COMMON: dict[str, AgiResponse] = {}
_COMMON.update(
    (line, parse_response(line))
    for line in (f"200 result={n}" for n in (-1, 0, 1, *(ord(k) for k in sorted(DTMF_KEYS))))
)


def quote(arg: str) -> str:
    """An AGI command argument: quoted, with quotes and backslashes escaped, no line breaks."""
    if "\n" in arg or "\r" in arg:
        raise IvrError("AGI argument contains a line break")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


class AgiChannel:
    """One call's FastAGI session."""

    def __init__(
        self, stream: AgiStream, env: dict[str, str], command_timeout: float = 600.0
    ) -> None:
        self.stream = stream
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
        """The path of agi://host:port/<route>[?key=...]."""
        return script_route(self.env)

    def arg(self, n: int) -> str:
        """agi_arg_N, or ''."""
        return self.env.get(f"agi_arg_{n}", "")

    async def command(self, cmd: str, *args: str, raw: tuple[str, ...] = ()) -> AgiResponse:
        """Send one command (quoted args, then raw args) and return its response."""
        if self.hung_up:
            raise AgiHangup(f"{cmd}: the call has hung up")
        line = " ".join([cmd, *(quote(a) for a in args), *raw])
        if self.stream.lost:
            self.hung_up = True
            raise AgiHangup(f"{cmd}: AGI connection closed")
        self.stream.write(line.encode() + b"\n")
        # One deadline and one line budget for the whole reply, however many lines it takes.
        self.stream.set_deadline(self.command_timeout)
        try:
            return await self._reply(cmd, line)
        finally:
            self.stream.set_deadline(None)

    async def _reply(self, cmd: str, line: str) -> AgiResponse:
        for _ in range(MAX_REPLY_LINES):
            raw_line = await self._readline()
            if raw_line == "HANGUP":
                # Unsolicited: the response to our command still follows.
                self.hung_up = True
                continue
            resp = parse_response(raw_line)
            if resp.code == 200:
                if resp.result == "-1" and cmd not in ("GET VARIABLE", "GET FULL VARIABLE"):
                    self.hung_up = True
                    raise AgiHangup(f"{cmd}: result=-1")
                return resp
            if resp.code == 520 and raw_line.startswith("520-"):
                for _ in range(MAX_REPLY_LINES):
                    if (await self._readline()).startswith("520 "):
                        raise IvrError(f"AGI usage error for {line!r}")
                raise ProtocolError(f"AGI usage text for {cmd} does not end")
            if resp.code == 511:
                self.hung_up = True
                raise AgiHangup(f"{cmd}: channel is dead")
            raise IvrError(f"AGI {cmd} failed: {raw_line}")
        raise ProtocolError(f"AGI {cmd}: no response in {MAX_REPLY_LINES} lines")

    async def _readline(self) -> str:
        raw = await self.stream.readline()
        if not raw:
            self.hung_up = True
            raise AgiHangup("AGI connection closed")
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
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def script_route(env: dict[str, str]) -> str:
    """The route of agi_network_script, without its query."""
    return env.get("agi_network_script", "").partition("?")[0].strip("/")


def script_key(env: dict[str, str]) -> str:
    """The `key` parameter of agi_network_script's query ('' if none)."""
    query = env.get("agi_network_script", "").partition("?")[2]
    return parse_qs(query).get("key", [""])[0]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@dataclass
class AgiAccess:
    """Who may open a FastAGI session: a peer among `allowed` (addresses, networks such as
    10.0.0.0/8, or host names, resolved again when an unknown peer knocks, at most every
    RESOLVE_EVERY seconds: a container's address changes when it is re-created), carrying
    `secret` in the URL when one is set."""

    allowed: tuple[str, ...] = ("127.0.0.1", "::1")
    secret: str = field(default="", repr=False)
    networks: list[IpNetwork] = field(init=False, default_factory=list)
    names: list[str] = field(init=False, default_factory=list)
    _resolved: set[str] = field(init=False, default_factory=set)
    _resolved_at: float = field(init=False, default=-1e9)

    RESOLVE_EVERY = 10.0

    def __post_init__(self) -> None:
        for entry in (a.strip() for a in self.allowed):
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.names.append(entry)

    async def allows_peer(self, peer: str) -> bool:
        """True if the connecting address is an allowed host."""
        ip = _address(peer)
        if ip is None:
            return False
        if any(ip in net for net in self.networks):
            return True
        if not self.names:
            return False
        now = time.monotonic()
        if str(ip) not in self._resolved and now - self._resolved_at >= self.RESOLVE_EVERY:
            self._resolved_at = now
            self._resolved = await self._resolve()
        return str(ip) in self._resolved

    async def _resolve(self) -> set[str]:
        loop = asyncio.get_running_loop()
        found: set[str] = set()
        for name in self.names:
            try:
                async with asyncio.timeout(2.0):
                    infos = await loop.getaddrinfo(name, None, type=socket.SOCK_STREAM)
            except (OSError, TimeoutError) as exc:
                logger.warning("FastAGI allow-list: cannot resolve %r: %s", name, exc)
                continue
            for info in infos:
                ip = _address(str(info[4][0]))
                if ip is not None:
                    found.add(str(ip))
        return found

    def allows_session(self, env: dict[str, str]) -> bool:
        """True if the session carries the shared secret (or none is set)."""
        if not self.secret:
            return True
        return hmac.compare_digest(script_key(env).encode(), self.secret.encode())


def no_delay(stream: AgiStream) -> None:
    """TCP_NODELAY on a connection's socket: each AGI command is one small write answered by one
    small reply, and Nagle's algorithm must never hold a command back waiting for an ACK.
    asyncio's and uvloop's transports set it already on TCP; this says so, whatever the loop."""
    sock = stream.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class AgiServer:
    """A FastAGI server: one coroutine per call, all owned and cancelled on stop."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        *,
        access: AgiAccess | None = None,
        header_timeout: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.handler = handler
        self.access = access or AgiAccess()
        self.header_timeout = header_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.calls = 0
        self.probes = 0
        self.failures = 0
        self.refused = 0

    async def start(self) -> None:
        """Listen."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: AgiStream(loop, self._connected), self.host, self.port
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

    def _connected(self, stream: AgiStream) -> None:
        task = stream.loop.create_task(self._accept(stream))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, stream: AgiStream) -> None:
        try:
            no_delay(stream)
            peer = stream.get_extra_info("peername")
            source = str(peer[0]) if peer else ""
            if not await self.access.allows_peer(source):
                self.refused += 1
                logger.warning("FastAGI connection from %s refused: not an allowed host", source)
                return
            env = await self._read_env(stream)
            if env is None:
                self.probes += 1
                return
            if not self.access.allows_session(env):
                self.refused += 1
                logger.warning(
                    "FastAGI session from %s refused: wrong or missing key linkedid=%s",
                    source,
                    env.get("agi_uniqueid", "-"),
                )
                return
            self.calls += 1
            channel = AgiChannel(stream, env)
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
            with contextlib.suppress(Exception):
                stream.close()

    async def _read_env(self, stream: AgiStream) -> dict[str, str] | None:
        """The agi_* header block, or None for a probe, a timeout or garbage."""
        env: dict[str, str] = {}
        stream.set_deadline(self.header_timeout)
        try:
            for _ in range(MAX_HEADER_LINES):
                raw = await stream.readline()
                if not raw:
                    return None
                line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
                if not line:
                    return env if "agi_network_script" in env or "agi_request" in env else None
                key, sep, value = line.partition(":")
                if not sep or not key.startswith("agi_"):
                    return None
                env[key.strip()] = value.strip()
        except (TimeoutError, ProtocolError):
            return None
        finally:
            stream.set_deadline(None)
        return None
