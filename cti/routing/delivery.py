"""IM delivery: one HTTP POST per message and channel, each outcome kept (status or error)."""

import logging
import time
from collections import deque
from typing import Any

import aiohttp

from cti.routing.config import ImChannel, RoutingConfig
from cti.routing.im import Message, build

logger = logging.getLogger(__name__)


class ImDelivery:
    """Sends IM messages to the channels of routing.yaml; never raises on a failed delivery."""

    def __init__(self, routing: RoutingConfig, timeout: float = 10.0) -> None:
        self.routing = routing
        self.timeout = timeout
        self.http: aiohttp.ClientSession | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=100)  # for the lead's alerts view

    async def start(self) -> None:
        """Open the HTTP client."""
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))

    async def close(self) -> None:
        """Close the HTTP client."""
        if self.http is not None:
            await self.http.close()

    async def send(self, names: tuple[str, ...], msg: Message) -> list[dict[str, Any]]:
        """Send `msg` to each named channel; the delivery records."""
        return [await self.send_one(self.routing.channels[name], msg) for name in names]

    async def send_one(self, channel: ImChannel, msg: Message) -> dict[str, Any]:
        """Send `msg` to one channel; its delivery record (status, or error)."""
        req = build(channel, msg, time.time())
        record: dict[str, Any] = {"channel": channel.name, "kind": msg.kind, "at": time.time()}
        if self.http is None:
            record["error"] = "IM delivery is not running"
        else:
            try:
                async with self.http.post(req.url, data=req.body, headers=req.headers) as resp:
                    record["status"] = resp.status
                    if resp.status >= 300:
                        record["error"] = (await resp.text())[:200]
            except (aiohttp.ClientError, TimeoutError) as exc:
                record["error"] = f"{type(exc).__name__}: {exc}"
                logger.warning("IM %s to %s failed: %s", msg.kind, channel.name, exc)
        self.recent.append(record)
        return record
