"""The AMI link: login, reconnect with back-off, watchdog, actions under timeouts, one event queue.

Everything that arrives from Asterisk goes through one callback (`dispatch`) that never raises and
puts typed events on one bounded queue. Overflow policy: when the consumer falls that far behind,
new events are dropped and counted, and a StreamGap marker goes on the queue as soon as it has room,
so the consumer rebuilds its state from Asterisk exactly as after a reconnect.
"""

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

from panoramisk.message import Message

from cti.ami.events import AmiEvent, LinkDown, LinkUp, StreamGap, known_events, parse_event
from cti.ami.protocol import CtiAction, CtiAmiProtocol
from cti.errors import (
    AmiActionFailed,
    AmiAuthError,
    AmiDisconnected,
    AmiError,
    AmiTimeout,
    InvalidInput,
    ProtocolError,
)

logger = logging.getLogger(__name__)

# A header value; a list is sent as the same header repeated (Originate's Variable).
Header = str | list[str]


@dataclass
class AmiOptions:
    """How to reach Asterisk and how patient to be."""

    host: str
    port: int
    username: str
    secret: str
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    ping_interval: float = 5.0
    ping_timeout: float = 5.0
    backoff_initial: float = 0.5
    backoff_max: float = 15.0
    queue_size: int = 20000

    def __repr__(self) -> str:
        return f"AmiOptions({self.username}@{self.host}:{self.port})"


@dataclass
class AmiStats:
    """Counters for /healthz and the logs."""

    connected: bool = False
    connected_since: float | None = None
    logins: int = 0
    events: int = 0
    queued: int = 0
    dropped: int = 0
    garbled: int = 0
    last_error: str = ""


class AmiClient:
    """One AMI session to Asterisk, kept alive until `close()`."""

    def __init__(self, options: AmiOptions) -> None:
        self.options = options
        self.events: asyncio.Queue[AmiEvent] = asyncio.Queue(options.queue_size)
        self.stats = AmiStats()
        self._protocol: CtiAmiProtocol | None = None
        self._lost: asyncio.Future[str] | None = None
        self._booted: asyncio.Event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._gap = 0
        self._closing = False
        self._skipped_before = 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and log in. A wrong secret raises AmiAuthError; a refused or failed connection
        is logged and retried in the background with back-off."""
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(first), name="ami-link")
        try:
            await first
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Log off and stop reconnecting."""
        self._closing = True
        if self._protocol is not None:
            with contextlib.suppress(AmiError):
                await self.action("Logoff", timeout=1.0)
            self._protocol.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    @property
    def skipped(self) -> int:
        """Unsolicited events dropped unread (nothing parses them), over every connection."""
        return self._skipped_before + (self._protocol.skipped if self._protocol else 0)

    @property
    def connected(self) -> bool:
        """True while logged in."""
        return self.stats.connected

    async def wait_connected(self, timeout: float) -> None:
        """Wait until the link is up (raise AmiTimeout otherwise)."""
        deadline = time.monotonic() + timeout
        while not self.connected:
            if time.monotonic() > deadline:
                raise AmiTimeout(f"AMI not connected within {timeout}s")
            await asyncio.sleep(0.05)

    async def _run(self, first: asyncio.Future[None]) -> None:
        attempt = 0
        while not self._closing:
            try:
                await self._session(first)
                attempt = 0
            except AmiAuthError as exc:
                self.stats.last_error = str(exc)
                if not first.done():
                    first.set_exception(exc)
                    return
                logger.critical("AMI login refused: %s; retrying in case it is fixed", exc)
                attempt = max(attempt, 6)
            except (OSError, TimeoutError, AmiError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                level = logging.WARNING if attempt == 0 else logging.DEBUG
                logger.log(
                    level,
                    "AMI %s:%s unreachable (%s); retrying",
                    self.options.host,
                    self.options.port,
                    self.stats.last_error,
                )
            if not first.done():
                first.set_result(None)
            if self._closing:
                return
            delay = min(self.options.backoff_max, self.options.backoff_initial * 2**attempt)
            attempt += 1
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))

    async def _session(self, first: asyncio.Future[None]) -> None:
        opts = self.options
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(opts.connect_timeout):
            _, protocol = await loop.create_connection(CtiAmiProtocol, opts.host, opts.port)
        protocol.factory = self
        protocol.encoding = "utf-8"
        self._protocol = protocol
        self._lost = loop.create_future()
        self._booted.clear()
        try:
            resp = await self._send(
                protocol,
                {"Action": "Login", "Username": opts.username, "Secret": opts.secret},
                as_list=False,
                timeout=opts.action_timeout,
            )
            assert isinstance(resp, Message)
            if not resp.success:
                raise AmiAuthError(
                    f"Asterisk refused AMI user {opts.username!r} at {opts.host}:{opts.port}: "
                    f"{resp.get('Message', 'authentication failed')}"
                )
            # FullyBooted follows the login once Asterisk is up (read=system); only then is
            # QueueStatus complete after an Asterisk restart.
            try:
                async with asyncio.timeout(60):
                    await self._booted.wait()
            except TimeoutError:
                logger.warning("AMI: no FullyBooted within 60s after login; going on")
            self.stats.connected = True
            self.stats.connected_since = time.time()
            self.stats.logins += 1
            logger.info("AMI logged in to %s:%s as %s", opts.host, opts.port, opts.username)
            self._put(LinkUp(time.time(), reconnect=self.stats.logins > 1))
            if not first.done():
                first.set_result(None)
            watchdog = asyncio.create_task(self._watchdog(protocol), name="ami-watchdog")
            try:
                reason = await self._lost
            finally:
                watchdog.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watchdog
            logger.warning("AMI connection lost: %s", reason)
            self.stats.last_error = reason
        finally:
            protocol.close()
            self._skipped_before += protocol.skipped
            self._protocol = None
            if self.stats.connected:
                self.stats.connected = False
                self._put(LinkDown(time.time(), self.stats.last_error))

    async def _watchdog(self, protocol: CtiAmiProtocol) -> None:
        """Ping every interval; no answer in time means a half-open connection: drop it."""
        opts = self.options
        while True:
            await asyncio.sleep(opts.ping_interval)
            try:
                await self._send(
                    protocol, {"Action": "Ping"}, as_list=False, timeout=opts.ping_timeout
                )
            except AmiTimeout:
                logger.error(
                    "AMI: no answer to Ping within %ss; dropping the connection", opts.ping_timeout
                )
                protocol.transport.abort()
                self.connection_lost(AmiTimeout("ping unanswered (half-open connection)"))
                return
            except AmiDisconnected:
                return

    # -- callbacks from the protocol (must never raise) ------------------------------------------

    # The events worth parsing: the protocol drops every other unsolicited event unread.
    wanted_events = known_events()

    def dispatch(self, message: Mapping[str, Any]) -> None:
        """The one event callback: parse, count, queue. Never raises."""
        try:
            self.stats.events += 1
            name = message.get("Event")
            if name == "FullyBooted":
                self._booted.set()
            event = parse_event(message)
            if name == "Shutdown":
                logger.warning("Asterisk is shutting down")
        except ProtocolError as exc:
            self.stats.garbled += 1
            logger.warning("AMI event skipped: %s: %.600r", exc, dict(message.items()))
            return
        except Exception:
            self.stats.garbled += 1
            logger.exception("AMI event could not be parsed")
            return
        if event is not None:
            self._put(event)

    def connection_lost(self, exc: object) -> None:
        """Called by the protocol when the transport closes or Asterisk shuts down."""
        if isinstance(exc, Message):  # panoramisk passes the Shutdown event itself
            reason = f"Asterisk shut down ({exc.get('Shutdown', '')})"
        else:
            reason = str(exc) if exc else "closed by peer"
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(reason)

    def _put(self, event: AmiEvent) -> None:
        if self._gap:
            try:
                self.events.put_nowait(StreamGap(time.time(), self._gap))
            except asyncio.QueueFull:
                self._gap += 1
                self.stats.dropped += 1
                return
            self._gap = 0
        try:
            self.events.put_nowait(event)
            self.stats.queued += 1
        except asyncio.QueueFull:
            if not self._gap:
                logger.error("AMI event queue full (%d): dropping events", self.events.maxsize)
            self._gap += 1
            self.stats.dropped += 1

    # -- actions ---------------------------------------------------------------------------------

    @overload
    async def action(
        self,
        name: str,
        *,
        as_list: Literal[False] = False,
        timeout: float | None = None,
        **headers: str,
    ) -> Message: ...

    @overload
    async def action(
        self, name: str, *, as_list: Literal[True], timeout: float | None = None, **headers: str
    ) -> list[Message]: ...

    async def action(
        self, name: str, *, as_list: bool = False, timeout: float | None = None, **headers: str
    ) -> Message | list[Message]:
        """Send an AMI action and wait (under a timeout) for its complete response.

        Raises AmiDisconnected when not connected or when the link drops meanwhile (the action is
        not replayed later), AmiTimeout, or AmiActionFailed when Asterisk answers with an error.
        """
        return await self._request(name, headers, as_list=as_list, timeout=timeout)

    async def request(
        self, name: str, headers: Mapping[str, Header], *, timeout: float | None = None
    ) -> Message:
        """`action` for headers built at run time (a single response)."""
        resp = await self._request(name, headers, as_list=False, timeout=timeout)
        assert isinstance(resp, Message)
        return resp

    async def _request(
        self, name: str, headers: Mapping[str, Header], *, as_list: bool, timeout: float | None
    ) -> Message | list[Message]:
        protocol = self._protocol
        if protocol is None or not self.stats.connected:
            raise AmiDisconnected(f"{name}: not connected to Asterisk")
        resp = await self._send(
            protocol,
            {"Action": name, **headers},
            as_list=as_list,
            timeout=timeout or self.options.action_timeout,
        )
        first = resp[0] if isinstance(resp, list) else resp
        if first.get("Response") in ("Error", "Fail", "Failure"):
            raise AmiActionFailed(f"{name}: {first.get('Message', 'error')}")
        return resp

    async def _send(
        self,
        protocol: CtiAmiProtocol,
        headers: dict[str, Header],
        *,
        as_list: bool,
        timeout: float,
    ) -> Message | list[Message]:
        for key, value in headers.items():
            for line in value if isinstance(value, list) else [value]:
                if "\r" in line or "\n" in line:
                    raise InvalidInput(f"AMI header {key} contains a line break")
        act = CtiAction(headers, as_list=as_list)
        future = protocol.send(act, as_list=as_list)
        try:
            async with asyncio.timeout(timeout):
                result: Message | list[Message] = await future
        except TimeoutError:
            protocol.responses.pop(act.id, None)
            raise AmiTimeout(
                f"{headers['Action']}: no complete response within {timeout}s"
            ) from None
        return result
