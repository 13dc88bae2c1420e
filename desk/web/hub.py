"""WebSocket fan-out: one bounded queue and one writer task per client, so a slow browser never
slows the AMI pump. Overflow policy: a client that falls `QUEUE_SIZE` messages behind loses its
backlog and gets one {"type": "resync"} message; the page then reloads its state over HTTP."""

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from aiohttp import WSMsgType, web

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

    def __init__(self) -> None:
        self._topics: dict[str, set[HubClient]] = defaultdict(set)
        self.published = 0

    def publish(self, topic: str, message: dict[str, Any]) -> None:
        """Send to every client of `topic` (never blocks, never raises)."""
        self.published += 1
        for client in list(self._topics.get(topic, ())):
            client.offer(message)

    def clients(self, topic: str) -> int:
        """How many clients listen to a topic."""
        return len(self._topics.get(topic, ()))

    async def serve(
        self, request: web.Request, topics: set[str], hello: dict[str, Any]
    ) -> web.WebSocketResponse:
        """Run one WebSocket until it closes; `hello` is sent first."""
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
        await ws.prepare(request)
        client = HubClient(ws, topics)
        for topic in topics:
            self._topics[topic].add(client)
        client.offer(hello)
        writer = asyncio.create_task(client.write())
        try:
            async for msg in ws:  # the pages send nothing we act on; reading keeps pings flowing
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            for topic in topics:
                self._topics[topic].discard(client)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await writer
        return ws
