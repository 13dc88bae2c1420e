"""WebSocket fan-out: one bounded queue and one writer task per client, so a slow browser never
slows the AMI pump. Overflow policy: a client that falls `QUEUE_SIZE` messages behind loses its
backlog and gets one {"type": "resync"} message; the page then reloads its state over HTTP.

A socket lives no longer than the login session it was opened with: logging out closes it at
once, and every `recheck_seconds` the hub asks which sessions still hold (a password changed
with `cti staff add` in another process ends the sessions in the database) — one question for
every open socket, not one per socket: 200 agents' sockets asked 20 times a second each on their
own, about a tenth of the server's CPU at 30 calls a second."""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from desk.web.messages import MessageType

logger = logging.getLogger(__name__)

QUEUE_SIZE = 256
# The login sessions among these ids that still hold.
SessionCheck = Callable[[Collection[str]], Awaitable[set[str]]]


class HubClient:
    """One browser's WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, topics: set[str]) -> None:
        self.ws = ws
        self.topics = topics
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.dropped = 0

    def offer(self, message: dict[str, Any]) -> None:
        """Queue a message without waiting."""
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped += 1
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait({"type": MessageType.RESYNC.value})

    async def write(self) -> None:
        """Send queued messages until the socket closes."""
        while not self.ws.closed:
            message = await self.queue.get()
            await self.ws.send_json(message)


class Hub:
    """Topics ("agent:1001", "wallboard", ...) to subscribed clients."""

    def __init__(self, live_sessions: SessionCheck, recheck_seconds: float = 10.0) -> None:
        self._topics: dict[str, set[HubClient]] = defaultdict(set)
        self._sessions: dict[str, set[HubClient]] = defaultdict(set)
        self.published = 0
        self.live_sessions = live_sessions
        self.recheck_seconds = recheck_seconds
        # Runs while any socket is open (started by the first, ends after the last).
        self._watcher: asyncio.Task[None] | None = None

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        """Send to every client of `topic` (never blocks, never raises)."""
        self.published += 1
        for client in list(self._topics.get(topic, ())):
            client.offer(message)

    def clients(self, topic: str) -> int:
        """How many clients listen to a topic."""
        return len(self._topics.get(topic, ()))

    def clients_by_kind(self) -> dict[str, int]:
        """Connected WebSocket clients per topic kind ("agent", "wallboard", ...), for /metrics."""
        kinds: dict[str, set[HubClient]] = defaultdict(set)
        for topic, clients in self._topics.items():
            kinds[topic.partition(":")[0]].update(clients)
        return {kind: len(clients) for kind, clients in kinds.items()}

    async def serve(
        self,
        request: web.Request,
        topics: set[str],
        hello: dict[str, Any],
        *,
        session_id: str,
    ) -> web.WebSocketResponse:
        """Run one WebSocket until it closes or its login session ends; `hello` is sent first."""
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
        await ws.prepare(request)
        client = HubClient(ws, topics)
        for topic in topics:
            self._topics[topic].add(client)
        self._sessions[session_id].add(client)
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._watch(), name="hub-sessions")
        client.offer(hello)
        writer = asyncio.create_task(client.write())
        try:
            async for msg in ws:  # the pages send nothing we act on; reading keeps pings flowing
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            for topic in topics:
                self._topics[topic].discard(client)
            self._sessions[session_id].discard(client)
            if not self._sessions[session_id]:
                del self._sessions[session_id]
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer
        return ws

    async def _watch(self) -> None:
        """Every `recheck_seconds`, close the sockets whose login session no longer holds."""
        while True:
            await asyncio.sleep(self.recheck_seconds)
            if not self._sessions:
                self._watcher = None  # (no await since the test: the next socket starts another)
                return
            sids = list(self._sessions)
            try:
                live = await self.live_sessions(sids)
            except Exception:
                logger.exception("login sessions not rechecked (tried again later)")
                continue
            for sid in sids:
                if sid not in live:
                    for client in list(self._sessions.get(sid, ())):
                        await client.ws.close(
                            code=WSCloseCode.POLICY_VIOLATION, message=b"session ended"
                        )

    async def close(self) -> None:
        """Stop rechecking sessions (the sockets themselves close with the server)."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def end_session(self, session_id: str) -> None:
        """Close every socket opened with this login session (its owner logged out)."""
        for client in list(self._sessions.get(session_id, ())):
            await client.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"logged out")
