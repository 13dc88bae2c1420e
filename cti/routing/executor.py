"""The routing executor: once a second, every queue's live figures go through the back-up rules
(cti/routing/rules.py, pure); the decisions are carried out by the alerts, overflow and call-back
services. It reads live state (cti/live) and talks to the wallboard only through the bus."""

import asyncio
import contextlib
import logging
import time
from typing import Any

from cti.ami.client import AmiClient
from cti.db import SessionMaker
from cti.live.agents import AgentService
from cti.live.bus import Bus
from cti.live.queues import QueueBook
from cti.live.tracker import CallTracker
from cti.routing.alerts import AlertService
from cti.routing.callbacks import CallbackService
from cti.routing.config import RoutingConfig
from cti.routing.delivery import ImDelivery
from cti.routing.overflow import OverflowService
from cti.routing.ports import HandleTimes, Roster
from cti.routing.rules import Change, QueueState, evaluate

logger = logging.getLogger(__name__)

DEFAULT_AHT = 180.0  # seconds, for the predicted wait before the day's first answered call


class RoutingExecutor:
    """Owns the one-second loop and the services that carry its decisions out."""

    def __init__(
        self,
        *,
        sessions: SessionMaker,
        bus: Bus,
        client: AmiClient,
        tracker: CallTracker,
        agents: AgentService,
        queues: QueueBook,
        routing: RoutingConfig,
        roster: Roster,
        handle_times: HandleTimes,
        secret: str,
        public_url: str,
        device: Any,
    ) -> None:
        self.client = client
        self.queues = queues
        self.routing = routing
        self.handle_times = handle_times
        public = (routing.base_url or public_url).rstrip("/")
        self.delivery = ImDelivery(routing)
        self.alerts = AlertService(sessions, bus, self.delivery, routing.alert_channels, public)
        self.overflow = OverflowService(
            sessions,
            bus,
            client,
            tracker,
            roster,
            self.delivery,
            routing,
            secret,
            public,
            device,
        )
        self.callbacks = CallbackService(sessions, client, tracker, agents)
        self.states: dict[str, QueueState] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def apply(self, routing: RoutingConfig) -> None:
        """Put a new routing configuration in force from the next evaluation on (the lead's
        editor): rules, overflow actions, IM channels and take links. A queue's back-up state
        carries on, so an edit does not raise its alert again."""
        self.routing = routing
        self.delivery.routing = routing
        self.alerts.channels = routing.alert_channels
        self.overflow.routing = routing

    async def start(self) -> None:
        """Load what a previous run left pending and start the loop."""
        await self.delivery.start()
        await self.overflow.start()
        await self.callbacks.start()
        self._task = asyncio.create_task(self._run(), name="routing")

    async def close(self) -> None:
        """Stop the loop and the IM client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.delivery.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.client.connected:
                continue
            try:
                await self.tick(time.time())
            except Exception:
                logger.exception("routing evaluation failed")

    async def tick(self, now: float) -> None:
        """One evaluation of every queue, then the call-backs and the IM offers' expiry."""
        async with self._lock:
            for queue in sorted(self.queues.queues()):
                cfg = self.routing.for_queue(queue)
                aht = await self.handle_times.aht(queue) or DEFAULT_AHT
                snap = self.queues.snapshot(queue, now, aht)
                result = evaluate(cfg.rules, snap, self.states.get(queue, QueueState()), now)
                self.states[queue] = result.state
                if result.change == Change.RAISED:
                    since = result.state.backed_up_since or now
                    await self.alerts.raise_(queue, result.tripped, snap, since)
                elif result.change == Change.CLEARED:
                    await self.alerts.clear(queue)
                if result.state.backed_up:
                    since = result.state.backed_up_since or now
                    self.alerts.still(queue, result.tripped, since)
                    waiting = self.queues.waiting(queue, now)
                    await self.overflow.run(queue, cfg.overflow, waiting, now)
            self.overflow.settle_mobiles()
            await self.callbacks.dial(now)
            await self.overflow.expire_offers(now)
