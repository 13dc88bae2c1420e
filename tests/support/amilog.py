"""A raw AMI listener for tests: every event as a dict of headers, for checks on events the CTI
server does not parse (Hold, DTMFEnd, BlindTransfer, RTCPReceived). Speaks AMI over a socket
itself so nothing of the server's AMI stack is under test twice."""

import asyncio
import contextlib
import time
from collections.abc import Callable

Event = dict[str, str]


class AmiEventLog:
    """Logs in with `user`/`secret` and records events until `close()`."""

    def __init__(self, host: str, port: int, user: str, secret: str) -> None:
        self.host, self.port, self.user, self.secret = host, port, user, secret
        self.events: list[Event] = []
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        """Connect and log in (raises on a refused login)."""
        reader, self._writer = await asyncio.open_connection(self.host, self.port)
        await reader.readline()  # "Asterisk Call Manager/..."
        self._writer.write(
            f"Action: Login\r\nUsername: {self.user}\r\nSecret: {self.secret}\r\n"
            "Events: on\r\n\r\n".encode()
        )
        first = await self._block(reader)
        if first.get("Response") != "Success":
            raise RuntimeError(f"AMI login refused: {first}")
        self._task = asyncio.create_task(self._read(reader))

    async def _block(self, reader: asyncio.StreamReader) -> Event:
        raw = await reader.readuntil(b"\r\n\r\n")
        out: Event = {}
        for line in raw.decode(errors="replace").split("\r\n"):
            key, sep, value = line.partition(": ")
            if sep:
                out.setdefault(key, value)
        return out

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                block = await self._block(reader)
                if "Event" in block:
                    self.events.append(block)

    def find(self, name: str, where: Callable[[Event], bool] = lambda e: True) -> list[Event]:
        """The events called `name` (that `where` accepts)."""
        return [e for e in self.events if e["Event"] == name and where(e)]

    async def wait_for(
        self, name: str, where: Callable[[Event], bool] = lambda e: True, timeout: float = 15
    ) -> Event:
        """The first event called `name` that `where` accepts, waiting for it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find(name, where)
            if found:
                return found[0]
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {name} event within {timeout}s")

    async def close(self) -> None:
        """Stop listening."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()
