"""A TCP proxy between the CTI server and the real Asterisk, to break the link on purpose.

It forwards the real AMI bytes both ways and can cut every connection (a dropped link), stall
(a half-open link: bytes stop flowing, sockets stay open), inject raw bytes towards the client,
or split what Asterisk sends in the middle of its first multibyte UTF-8 character, with a pause,
so that the client reads the two halves separately.
"""

import asyncio
import contextlib


class TcpProxy:
    """Listens on 127.0.0.1:port and forwards to target_port."""

    def __init__(self, target_port: int, *, split_utf8: bool = False) -> None:
        self.target_port = target_port
        self.split_utf8 = split_utf8
        self.splits = 0
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.accepting = True
        self._server: asyncio.Server | None = None
        self._conns: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, port: int = 0) -> "TcpProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def cut(self) -> None:
        """Close every proxied connection now (both sides see a dropped TCP connection)."""
        for client, upstream in self._conns:
            for w in (client, upstream):
                with contextlib.suppress(Exception):
                    w.transport.abort()
        self._conns.clear()

    def stall(self, stalled: bool = True) -> None:
        """Stop (or resume) forwarding while keeping the sockets open: a half-open link."""
        if stalled:
            self._flowing.clear()
        else:
            self._flowing.set()

    def inject(self, data: bytes) -> None:
        """Send raw bytes to every connected client, as if Asterisk had sent them."""
        for client, _ in self._conns:
            client.write(data)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        if not self.accepting:
            cw.transport.abort()
            return
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            cw.transport.abort()
            return
        self._conns.append((cw, uw))
        for src, dst, to_client in ((cr, uw, False), (ur, cw, True)):
            task = asyncio.create_task(self._pipe(src, dst, to_client))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, to_client: bool
    ) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                await self._flowing.wait()
                cut = _first_multibyte(data) if to_client and self.split_utf8 else -1
                if cut > 0:
                    dst.write(data[:cut])
                    await dst.drain()
                    await asyncio.sleep(0.02)
                    dst.write(data[cut:])
                    await dst.drain()
                    self.splits += 1
                else:
                    dst.write(data)
                    await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()


def _first_multibyte(data: bytes) -> int:
    """Index just after the lead byte of the first multibyte UTF-8 character, or -1."""
    for i, b in enumerate(data):
        if b >= 0xC0:
            return i + 1
    return -1
