"""One FastAGI connection's bytes: an asyncio Protocol that hands out lines, with a deadline.

Why not StreamReader/StreamWriter: with 50 calls stepping in lockstep against a real Asterisk,
every command is a wake-up of its own (one context switch per command, `perf stat`), so what
counts is the Python work per command. A StreamReader readline goes through readline →
readuntil → _wait_for_data, and an `asyncio.timeout` per command arms and cancels a timer
(a heap push in asyncio, a libuv timer in uvloop); bench.agi measures the difference.

Here data_received only appends to a buffer and wakes the one waiting reader; `readline` finds
the line itself; the deadline is one timer per connection armed lazily: a command moves the
deadline, and the timer, when it fires early, re-arms itself at the new one. The limits are
StreamReader's: a line over MAX_LINE is a ProtocolError (and is dropped), reading pauses while
over 2 x MAX_LINE bytes wait unread.
"""

import asyncio
from collections.abc import Callable
from typing import Any, cast

from cti.errors import ProtocolError

MAX_LINE = 8192


class AgiStream(asyncio.Protocol):
    """A FastAGI connection: lines in (bounded, under a deadline), bytes out."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        connected: Callable[["AgiStream"], object] | None = None,
    ) -> None:
        self.loop = loop
        self._connected = connected  # called once the transport is there
        self.transport: asyncio.Transport | None = None
        self.lost = False  # the connection is gone: nothing more to read or write
        self._buffer = bytearray()
        self._eof = False
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol --------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is no subclass of asyncio.Transport, but has its methods).
        self.transport = cast(asyncio.Transport, transport)
        if self._connected is not None:
            self._connected(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._wake()
        if not self._paused and len(self._buffer) > 2 * MAX_LINE and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self._eof = True
        self._wake()
        return True  # half-open, as StreamReader keeps it: we close when the session ends

    def connection_lost(self, exc: Exception | None) -> None:
        self._eof = True
        self.lost = True
        self._wake()
        self._stop_timer()

    # -- reading -----------------------------------------------------------------------------------

    def set_deadline(self, seconds: float | None) -> None:
        """Reads fail with TimeoutError once `seconds` from now have passed (None: no deadline)."""
        if seconds is None:
            self._deadline = None
            return
        deadline = self._deadline = self.loop.time() + seconds
        timer = self._timer
        if timer is not None and timer.when() > deadline:  # a shorter deadline than before
            timer.cancel()
            self._timer = None

    async def readline(self) -> bytes:
        """The next line with its b'\\n'; at EOF what is left (b'' when nothing). ProtocolError
        for a line over MAX_LINE bytes (the line, or what there is of it, is dropped)."""
        buffer = self._buffer
        while True:
            end = buffer.find(b"\n")
            if end >= 0:
                if end >= MAX_LINE:
                    del buffer[: end + 1]
                    self._resume()
                    raise ProtocolError(f"AGI line longer than {MAX_LINE} bytes")
                line = bytes(buffer[: end + 1])
                del buffer[: end + 1]
                if self._paused:
                    self._resume()
                return line
            if len(buffer) > MAX_LINE:
                buffer.clear()
                self._resume()
                raise ProtocolError(f"AGI line longer than {MAX_LINE} bytes")
            if self._eof:
                line = bytes(buffer)
                buffer.clear()
                return line
            await self._wait()

    async def _wait(self) -> None:
        if self._timer is None and self._deadline is not None:
            # Also when the deadline has passed already: the timer then fires at once.
            self._timer = self.loop.call_at(self._deadline, self._expire)
        self._waiter = self.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _expire(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self.loop.time() < self._deadline:  # moved on by a later command: wait for that one
            self._timer = self.loop.call_at(self._deadline, self._expire)
        elif self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(TimeoutError())

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _resume(self) -> None:
        if self._paused and len(self._buffer) <= MAX_LINE and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()

    def _stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- writing -----------------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send `data` (a command line is small: the transport's buffer holds it)."""
        assert self.transport is not None
        self.transport.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The transport's `peername`, `socket`, ..."""
        return default if self.transport is None else self.transport.get_extra_info(name, default)

    def close(self) -> None:
        """Close the connection (buffered output is still sent)."""
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()
