"""The broker between server nodes: Redis Streams (redis-py's asyncio client).

Why Redis Streams: one small server from Debian (`redis-server`) with users, passwords and ACLs;
a stream keeps the last entries (bounded by MAXLEN), so a node whose broker link blinks reads on
from the last entry it saw instead of losing what was published meanwhile, and entries come out
in the order the one publisher wrote them. NATS JetStream would do as well; Redis also gives the
operators one familiar tool (`redis-cli XRANGE`) to look at what went between the nodes.

Each channel is a stream `cti:<channel>`; an entry is one JSON object {"node": sender,
"data": ...}. A node skips its own entries (it delivered them locally already). `publish` never
blocks and never raises: entries wait in a bounded queue for the one writer task (in order);
when the broker is away longer than the queue lasts, the oldest are dropped and counted.
"""

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as redis
from redis.exceptions import RedisError

from cti.live.bus import EVENT_TYPES, Bus, DomainEvent, decode, encode

logger = logging.getLogger(__name__)

PREFIX = "cti:"
# Entries a stream keeps (about: Redis trims whole macro nodes).
MAXLEN = 10000
# Entries waiting for the broker before the oldest are dropped.
QUEUE_SIZE = 10000
# An entry larger than this is refused (a wallboard snapshot is some tens of kB).
MAX_ENTRY = 1 << 20
BLOCK_MS = 1000


@dataclass
class BrokerStats:
    """Counters for /healthz and /metrics."""

    connected: bool = False
    sent: int = 0
    received: int = 0
    dropped: int = 0
    bad: int = 0
    errors: int = 0
    last_error: str = ""


class Broker:
    """Publish to and listen on named channels shared by every node."""

    def __init__(self, url: str, node: str) -> None:
        self.url = url
        self.node = node
        self.stats = BrokerStats()
        self._handlers: dict[str, list[Callable[[Any], None]]] = defaultdict(list)
        self._out: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue(QUEUE_SIZE)
        self._redis: redis.Redis | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def listen(self, channel: str, handler: Callable[[Any], None]) -> None:
        """Call `handler` with the data of every entry other nodes publish on `channel` (set up
        before `start`)."""
        self._handlers[channel].append(handler)

    async def start(self) -> None:
        """Connect (a wrong password or an unreachable broker raises here) and run."""
        self._redis = redis.from_url(self.url, socket_connect_timeout=5, health_check_interval=10)
        await self._redis.ping()
        self.stats.connected = True
        ids: dict[str, bytes] = {}
        for channel in self._handlers:
            last: Any = await self._redis.xrevrange(PREFIX + channel, count=1)
            ids[PREFIX + channel] = last[0][0] if last else b"0-0"
        self._tasks = [asyncio.create_task(self._write(), name="broker-writer")]
        if ids:
            self._tasks.append(asyncio.create_task(self._read(ids), name="broker-reader"))

    def publish(self, channel: str, data: Any) -> None:
        """Queue `data` (JSON-ready) for every other node; never blocks."""
        entry = json.dumps({"node": self.node, "data": data}, ensure_ascii=False).encode()
        if len(entry) > MAX_ENTRY:
            self.stats.dropped += 1
            logger.error("broker: a %d-byte entry on %s is too large; dropped", len(entry), channel)
            return
        while True:
            try:
                self._out.put_nowait((PREFIX + channel, entry))
                return
            except asyncio.QueueFull:
                self._out.get_nowait()
                self.stats.dropped += 1

    async def close(self) -> None:
        """Send what is queued (briefly), stop, disconnect."""
        if self._tasks and not self._out.empty():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2):
                    await self._out.join()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        self.stats.connected = False

    def _failed(self, exc: Exception) -> None:
        self.stats.errors += 1
        self.stats.connected = False
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        logger.warning("broker: %s", self.stats.last_error)

    async def _write(self) -> None:
        assert self._redis is not None
        while True:
            stream, entry = await self._out.get()
            while True:
                try:
                    await self._redis.xadd(stream, {"m": entry}, maxlen=MAXLEN, approximate=True)
                    self.stats.sent += 1
                    self.stats.connected = True
                    break
                except (RedisError, OSError) as exc:
                    self._failed(exc)
                    await asyncio.sleep(0.5)
            self._out.task_done()

    async def _read(self, ids: dict[str, bytes]) -> None:
        assert self._redis is not None
        while True:
            try:
                batches: Any = await self._redis.xread(
                    dict(ids),  # type: ignore[arg-type]
                    block=BLOCK_MS,
                    count=500,
                )
                self.stats.connected = True
            except (RedisError, OSError) as exc:
                self._failed(exc)
                await asyncio.sleep(0.5)
                continue  # from the last entry seen: nothing published meanwhile is lost
            for stream, entries in batches:
                key = stream.decode() if isinstance(stream, bytes) else str(stream)
                for entry_id, fields in entries:
                    ids[key] = entry_id
                    self._deliver(key[len(PREFIX) :], fields)

    def _deliver(self, channel: str, fields: dict[bytes, bytes]) -> None:
        try:
            message = json.loads(fields[b"m"])
            sender, data = str(message["node"]), message["data"]
        except (KeyError, TypeError, ValueError):
            self.stats.bad += 1
            logger.error("broker: a malformed entry on %s was skipped", channel)
            return
        if sender == self.node:
            return
        self.stats.received += 1
        for handler in self._handlers.get(channel, ()):
            try:
                handler(data)
            except Exception:
                self.stats.bad += 1
                logger.exception("broker: handling an entry on %s failed", channel)


BUS_CHANNEL = "bus"


class BusRelay:
    """Domain events between nodes: every event of an attached (owning) bus goes to this node's
    `sink` bus and to the other nodes, whose relays publish it on their sinks. The pages of every
    node listen on their node's sink, so a pop or a wallboard change reaches a browser whichever
    node it is connected to."""

    def __init__(self, broker: Broker, sink: Bus) -> None:
        self.broker = broker
        self.sink = sink
        broker.listen(BUS_CHANNEL, self._remote)

    def attach(self, source: Bus) -> Callable[[], None]:
        """Relay every event `source` publishes; returns the detach function."""
        unsubscribe = [source.subscribe(kind, self._local) for kind in EVENT_TYPES.values()]

        def detach() -> None:
            for undo in unsubscribe:
                undo()

        return detach

    def _local(self, event: DomainEvent) -> None:
        self.sink.publish(event)
        self.broker.publish(BUS_CHANNEL, encode(event))

    def _remote(self, data: Any) -> None:
        try:
            event = decode(data)
        except (ValueError, TypeError, AttributeError):
            self.broker.stats.bad += 1
            logger.error("broker: an undecodable bus event was skipped")
            return
        self.sink.publish(event)
