"""The wallboard pusher: keeps the back-up banners (from the bus) and sends the board
(reports/wallboard.py builds it) whenever the bus says something changed — at most twice a
second, and every few seconds anyway."""

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import tzinfo
from typing import Any

from cti.db import SessionMaker
from cti.live.bus import (
    AgentStateChanged,
    BackupCleared,
    BackupRaised,
    Bus,
    CallEvent,
    DomainEvent,
    QueueChanged,
)
from cti.routing.alerts import describe
from cti.runtime import CtiCore
from desk.web.hub import Hub
from desk.web.messages import WALLBOARD as TOPIC
from desk.web.messages import MessageType
from reports.wallboard import DayChart, LiveSite, MetricSettings, snapshot

logger = logging.getLogger(__name__)


class Board:
    """What the wallboard's page and API read: the pusher on the node that owns the live state,
    the last board the owner relayed on the others (desk/web/nodes.py)."""

    async def snapshot(self, site: str | None = None) -> dict[str, Any]:
        """The board now, across every site or of one."""
        raise NotImplementedError

    def touch(self) -> None:
        """Something outside live state changed (announcements, the roster)."""
        raise NotImplementedError


class WallboardPusher(Board):
    """Keeps the back-up banners (from the bus) and pushes snapshots to the wallboard topic.

    With several nodes, `send` also hands each board to the other nodes, and boards are made
    whether or not anyone watches here (`always`)."""

    def __init__(
        self,
        sessions: SessionMaker,
        cores: Sequence[CtiCore],
        hub: Hub,
        tz: tzinfo,
        metrics: MetricSettings,
        thresholds: Mapping[str, tuple[float, float]],
        *,
        send: Callable[[dict[str, Any]], None] | None = None,
        always: bool = False,
    ) -> None:
        self.sessions = sessions
        self.send = send or (lambda board: hub.publish(TOPIC, board))
        self.always = always
        self.cores = list(cores)
        self.hub = hub
        self.tz = tz
        self.metrics = metrics
        self.thresholds = thresholds
        self.banners: dict[str, dict[str, Any]] = {}
        self.chart = DayChart(sessions, tz)
        self.pushed = 0
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe = []
        for core in self.cores:
            bus: Bus = core.bus
            self._unsubscribe += [
                bus.subscribe(kind, self._changed)
                for kind in (CallEvent, AgentStateChanged, QueueChanged)
            ]
        # Back-up banners: the routing executor works on the default Asterisk's bus.
        self._unsubscribe += [
            self.cores[0].bus.subscribe(BackupRaised, self._raised),
            self.cores[0].bus.subscribe(BackupCleared, self._cleared),
        ]

    def _changed(self, _event: DomainEvent) -> None:
        self._dirty.set()

    def _raised(self, e: BackupRaised) -> None:
        self.banners[e.queue] = {
            "queue": e.queue,
            "since": e.since,
            "alert_id": e.alert_id,
            "rules": dict(e.rules),
            # In words a person reads, in both languages (cti/routing/alerts.py's describe()).
            "text": {lang: describe(dict(e.rules), lang) for lang in ("zh", "en")},
        }
        self._dirty.set()

    def _cleared(self, e: BackupCleared) -> None:
        self.banners.pop(e.queue, None)
        self._dirty.set()

    def touch(self) -> None:
        """Something outside live state changed (announcements, the roster)."""
        self._dirty.set()

    def live(self) -> list[LiveSite]:
        """Each Asterisk's live queues and agents, with its site."""
        return [LiveSite(c.server.name, c.server.site, c.queues, c.agents) for c in self.cores]

    async def snapshot(self, site: str | None = None) -> dict[str, Any]:
        """The board now, across every site or of one."""
        return await snapshot(
            self.sessions,
            self.live(),
            self.tz,
            self.metrics,
            self.thresholds,
            self.banners,
            chart=self.chart,
            site=site,
        )

    def start(self) -> None:
        """Push from now on."""
        self._task = asyncio.create_task(self._run(), name="wallboard")

    async def close(self) -> None:
        """Stop pushing."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result when the
            # cancel of close() meets an event just set, and this loop then never ends (seen:
            # a test's server close waited forever on this task).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5.0):
                    await self._dirty.wait()
            self._dirty.clear()
            if not self.always and not self.hub.clients(TOPIC):
                continue  # nobody watches: no database work (a page gets one on connecting)
            try:
                board = await self.snapshot()
                self.send({"type": MessageType.WALLBOARD.value, **board})
                self.pushed += 1
            except Exception:
                logger.exception("wallboard snapshot failed")
            await asyncio.sleep(0.5)
