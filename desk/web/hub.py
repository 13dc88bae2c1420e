"""WebSocket fan-out: one bounded queue and one writer task per client, so a slow browser never
slows the AMI pump. Overflow policy: a client that falls `QUEUE_SIZE` messages behind loses its
backlog and gets one {"type": "resync"} message; the page then reloads its state over HTTP.

A socket lives no longer than the login session it was opened with: logging out closes it at
once, and every `recheck_seconds` it asks whether its session still holds (a password changed
with `cti staff add` in another process ends the sessions in the database)."""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from desk.web.messages import MessageType

logger = logging.getLogger(__name__)

QUEUE_SIZE = 256


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

    def __init__(self, recheck_seconds: float = 10.0) -> None:
        self._topics: dict[str, set[HubClient]] = defaultdict(set)
        self._sessions: dict[str, set[HubClient]] = defaultdict(set)
        self.published = 0
        self.recheck_seconds = recheck_seconds

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
        still_valid: Callable[[], Awaitable[bool]],
    ) -> web.WebSocketResponse:
        """Run one WebSocket until it closes or its login session ends; `hello` is sent first."""
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
        await ws.prepare(request)
        client = HubClient(ws, topics)
        for topic in topics:
            self._topics[topic].add(client)
        self._sessions[session_id].add(client)
        client.offer(hello)
        writer = asyncio.create_task(client.write())
        watcher = asyncio.create_task(self._watch(client, still_valid))
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
            for task in (writer, watcher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                    await task
        return ws

    async def _watch(self, client: HubClient, still_valid: Callable[[], Awaitable[bool]]) -> None:
        while not client.ws.closed:
            await asyncio.sleep(self.recheck_seconds)
            if not await still_valid():
                await client.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"session ended")
                return

    async def end_session(self, session_id: str) -> None:
        """Close every socket opened with this login session (its owner logged out)."""
        for client in list(self._sessions.get(session_id, ())):
            await client.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"logged out")
