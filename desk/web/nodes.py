"""Several server nodes behind one address (CTI_BROKER_URL set; docs/nodes.md).

Every node serves the pages, the API and the WebSockets. Live events go through the broker
(cti/live/broker.py): the node that owns the AMI links publishes its buses' events to every
node's page bus, whose Notifier pops and tells the browsers connected *there*; the owner's
wallboard pusher hands each board to every node's wallboard clients.

Jobs that must run once per desk are held by leases in PostgreSQL (cti/live/lease.py): `ami` —
the AMI links of every configured Asterisk (one CtiCore each: live state, the journal writer),
overflow and alerts (the routing executor) and the wallboard across every site — and `scheduler`
— scheduled reports and retention. One lease for all the Asterisks, not one each: the wallboard
and its per-site rows and totals are made from every Asterisk's live state in one process, as
on a single node; split across owners, each board would need the others' live state over the
broker and a merge whose parts can be of different moments. When the holder dies, another node
takes the lease within a few `lease_interval`s and starts the job the way a restarted server
does: for each Asterisk it takes back the open calls from the journal, logs in and resyncs as
after an AMI drop (reconciling from that Asterisk's queue_log what happened meanwhile).
"""

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cti.errors import CtiError, InvalidInput
from cti.live.broker import Broker, BusRelay
from cti.live.bus import Bus
from cti.live.lease import Lease
from cti.routing.config import RoutingConfig
from cti.routing.executor import RoutingExecutor
from cti.runtime import CtiCore
from cti.tasks import Background
from desk.web.keys import (
    ARCHIVE,
    CORE,
    CORES,
    HUB,
    NOTIFIER,
    POP,
    ROUTING,
    ROUTING_CONFIG,
    SCHEDULER,
    SESSIONS,
    SETTINGS,
    WALLBOARD,
)
from desk.web.messages import WALLBOARD as WALLBOARD_TOPIC
from desk.web.notifier import Notifier
from desk.web.pusher import Board, WallboardPusher
from desk.web.supervise import REAPER, SpyReaper
from reports.service import Scheduler
from reports.wallboard import MetricSettings, of_site

logger = logging.getLogger(__name__)

# The lease of every configured Asterisk's AMI link at once (and what needs them: live state,
# journal, overflow, the wallboard's boards), and the lease of the report scheduler.
AMI_LEASE = "ami"
SCHEDULER_LEASE = "scheduler"
HUB_CHANNEL = "hub"
TOUCH_CHANNEL = "touch"
# What only the owner of the AMI link can do (take a call from a take link, change an agent's
# state), asked from another node and answered back.
ASK_CHANNEL = "ask"
ANSWER_CHANNEL = "answer"
ASK_TIMEOUT = 10.0


class NotOwned(CtiError):
    """No node holds the AMI link now (a takeover under way)."""


# Topics another node may push to this node's browsers (the owner's wallboard).
RELAYED_TOPICS = frozenset({WALLBOARD_TOPIC})
# Seconds a job may take to stop when its lease is lost (a database that is away can hang it).
STOP_TIMEOUT = 10.0


class RelayedBoard(Board):
    """The wallboard on a node that does not own the live state: the owner's last board."""

    def __init__(self, node: "Node") -> None:
        self.node = node
        self.last: dict[str, Any] | None = None
        self._arrived = asyncio.Event()

    def received(self, board: dict[str, Any]) -> None:
        """The owner pushed a board."""
        self.last = board
        self._arrived.set()

    async def snapshot(self, site: str | None = None) -> dict[str, Any]:
        """The owner's last board (asked for, and awaited briefly, when none came yet), across
        every site or of one."""
        if self.last is None:
            self.touch()
            try:
                async with asyncio.timeout(3.0):
                    await self._arrived.wait()
            except TimeoutError:
                return {}
        assert self.last is not None
        board = {k: v for k, v in self.last.items() if k != "type"}
        return board if site is None else of_site(board, site)

    def touch(self) -> None:
        """Ask the owner for a fresh board."""
        self.node.broker.publish(TOUCH_CHANNEL, {})


@dataclass
class _AmiJob:
    cores: list[CtiCore]
    board: WallboardPusher
    reaper: SpyReaper
    executor: RoutingExecutor
    detach: Any
    on_routing: Any


class Node:
    """This node: the broker link, the page bus, the leases and the jobs they hold."""

    def __init__(self, app: web.Application, make_executor: Any, metrics: MetricSettings) -> None:
        s = app[SETTINGS]
        self.app = app
        self.name = s.effective_node_name
        self.make_executor = make_executor
        self.metrics = metrics
        self.broker = Broker(s.broker_url, self.name)
        self.pages = Bus()
        self.relay = BusRelay(self.broker, self.pages)
        self.board = RelayedBoard(self)
        self.broker.listen(HUB_CHANNEL, self._hub_remote)
        self.broker.listen(TOUCH_CHANNEL, self._touch_remote)
        self.broker.listen(ASK_CHANNEL, self._ask_remote)
        self.broker.listen(ANSWER_CHANNEL, self._answer_remote)
        self._asks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._answers: dict[str, Callable[[dict[str, Any]], Awaitable[Any]]] = {}
        self.answers("take", self._take)
        self.tasks = Background(logger)
        url, every = s.database_url, s.lease_interval
        self.ami = Lease(url, AMI_LEASE, self.name, self._own_ami, self._drop_ami, every)
        self.scheduling = Lease(url, SCHEDULER_LEASE, self.name,
                                self._own_scheduler, self._drop_scheduler, every)  # fmt: skip
        self._job: _AmiJob | None = None
        self._ready = asyncio.Event()  # set while the AMI job runs here

    async def start(self) -> None:
        """Connect to the broker, listen, and start competing for the leases."""
        await self.broker.start()
        self.app[WALLBOARD] = self.board
        self.app[NOTIFIER] = Notifier(self.pages, self.app[HUB], self.app[POP])
        self.ami.start()
        self.scheduling.start()

    async def close(self) -> None:
        """Give the leases back (stopping their jobs here), then leave the broker."""
        await self.tasks.close()
        await self.scheduling.close()
        await self.ami.close()
        await self.app[NOTIFIER].close()
        await self.broker.close()

    def share(self, topic: str, message: dict[str, Any]) -> None:
        """Send to this node's clients of `topic` and to every other node's."""
        self.app[HUB].publish(topic, message)
        self.broker.publish(HUB_CHANNEL, {"topic": topic, "message": message})

    def _hub_remote(self, data: Any) -> None:
        topic, message = data.get("topic"), data.get("message")
        if topic not in RELAYED_TOPICS or not isinstance(message, dict):
            self.broker.stats.bad += 1
            return
        if topic == WALLBOARD_TOPIC and message.get("type") == "wallboard":
            self.board.received(message)
        self.app[HUB].publish(topic, message)

    def _touch_remote(self, _data: Any) -> None:
        if self._job is not None:
            self._job.board.touch()

    # -- asking the owner ---------------------------------------------------------------------

    def answers(self, kind: str, handler: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        """On the owner of the AMI link, `handler(payload)` answers the question `kind` from any
        node (an InvalidInput or CtiError it raises goes back as an error)."""
        self._answers[kind] = handler

    async def ask(self, kind: str, payload: dict[str, Any], timeout: float = ASK_TIMEOUT) -> Any:
        """The owner's answer to `kind` (this node's own handler when it owns the link, once its
        job has started); raises NotOwned when no node answers in `timeout` seconds, the
        handler's error otherwise."""
        if self.ami.held:  # taken here: answer once the job runs
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                raise NotOwned("the link to Asterisk is being taken over") from None
            return await self._answers[kind](payload)
        ask = secrets.token_hex(8)
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._asks[ask] = answer
        try:
            self.broker.publish(ASK_CHANNEL, {"id": ask, "kind": kind, "payload": payload})
            async with asyncio.timeout(timeout):
                reply = await answer
        except TimeoutError:
            raise NotOwned("no node holds the link to Asterisk now") from None
        finally:
            self._asks.pop(ask, None)
        if "error" in reply:
            raise (InvalidInput if reply.get("invalid") else CtiError)(str(reply["error"]))
        return reply.get("result")

    def _ask_remote(self, data: Any) -> None:
        if not self.ami.held or not isinstance(data, dict):
            return  # the owner answers (a node taking over answers once its job runs)
        ask, kind, payload = data.get("id"), data.get("kind"), data.get("payload")
        handler = self._answers.get(str(kind))
        if not isinstance(ask, str) or handler is None or not isinstance(payload, dict):
            self.broker.stats.bad += 1
            return

        async def answer() -> None:
            reply: dict[str, Any]
            try:
                async with asyncio.timeout(ASK_TIMEOUT):
                    await self._ready.wait()
                reply = {"result": await handler(payload)}
            except TimeoutError:
                return  # the asker gives up as well
            except InvalidInput as exc:
                reply = {"error": str(exc), "invalid": True}
            except CtiError as exc:
                reply = {"error": str(exc)}
            self.broker.publish(ANSWER_CHANNEL, {"id": ask, **reply})

        self.tasks.spawn(answer())

    def _answer_remote(self, data: Any) -> None:
        if not isinstance(data, dict):
            return
        answer = self._asks.get(str(data.get("id")))
        if answer is not None and not answer.done():
            answer.set_result(data)

    async def _take(self, payload: dict[str, Any]) -> dict[str, Any]:
        assert self._job is not None
        try:
            return (await self._job.executor.overflow.take(str(payload["token"]))).as_json()
        except (ValueError, KeyError) as exc:
            return {"ok": False, "state": "invalid", "reason": str(exc)}

    # -- the AMI link and what needs it -------------------------------------------------------

    async def _own_ami(self) -> None:
        app, s = self.app, self.app[SETTINGS]
        cores = [CtiCore(s, app[SESSIONS], server=server) for server in s.asterisk_servers]
        detaches = [self.relay.attach(core.bus) for core in cores]

        def detach() -> None:
            for undo in detaches:
                undo()

        routing = app[ROUTING_CONFIG]
        board = WallboardPusher(
            app[SESSIONS], cores, app[HUB], s.tz, self.metrics, routing.current.thresholds,
            send=lambda message: self.share(WALLBOARD_TOPIC, message), always=True,
        )  # fmt: skip

        def on_routing(config: RoutingConfig) -> None:
            board.thresholds = config.thresholds

        routing.listen(on_routing)
        started: list[CtiCore] = []
        try:
            for core in cores:
                await core.start()
                started.append(core)
        except BaseException:
            routing.unlisten(on_routing)
            detach()
            await board.close()
            for core in reversed(cores[: len(started) + 1]):  # the one that failed too
                await core.stop()
            raise
        board.start()
        # Overflow, back-up alerts, call-backs and supervision work on the default Asterisk (as
        # on one node).
        executor: RoutingExecutor = self.make_executor(app, cores[0])
        await executor.start()
        routing.listen(executor.apply)
        reaper = SpyReaper(cores[0].bus, cores[0].client, s.agent_device)
        self._job = _AmiJob(cores, board, reaper, executor, detach, on_routing)
        app[CORE], app[ROUTING], app[WALLBOARD] = cores[0], executor, board
        app[CORES] = {core.server.name: core for core in cores}
        app[REAPER] = reaper
        self._ready.set()
        logger.warning(
            "node %s: owns the AMI links of %s",
            self.name,
            ", ".join(core.server.name for core in cores),
        )

    async def _drop_ami(self) -> None:
        self._ready.clear()
        job, self._job = self._job, None
        if job is None:
            return
        app = self.app
        app[WALLBOARD] = self.board
        app.pop(CORE, None)
        app.pop(CORES, None)
        app.pop(ROUTING, None)
        app.pop(REAPER, None)
        app[ROUTING_CONFIG].unlisten(job.executor.apply)
        app[ROUTING_CONFIG].unlisten(job.on_routing)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await job.executor.close()
                await job.reaper.close()
                await job.board.close()
                job.detach()
                for core in reversed(job.cores):
                    await core.stop()
        except TimeoutError:
            logger.error("node %s: the AMI job did not stop in %.0f s", self.name, STOP_TIMEOUT)
            job.detach()
            for core in job.cores:
                await core.client.close()

    # -- the report scheduler ------------------------------------------------------------------

    async def _own_scheduler(self) -> None:
        app = self.app
        scheduler = Scheduler(app[SESSIONS], app[SETTINGS], app[ARCHIVE])
        if app[SETTINGS].report_schedule:
            scheduler.start()
        app[SCHEDULER] = scheduler

    async def _drop_scheduler(self) -> None:
        scheduler = self.app.get(SCHEDULER)
        if scheduler is not None:
            self.app.pop(SCHEDULER, None)
            await scheduler.close()

    def health(self) -> dict[str, Any]:
        """This node, its leases and its broker link, for /healthz."""
        b = self.broker.stats
        return {
            "name": self.name,
            "leases": {
                lease.name: {
                    "held": lease.held,
                    "acquired_at": lease.state.acquired_at,
                    "acquisitions": lease.state.acquisitions,
                    "losses": lease.state.losses,
                    "last_error": lease.state.last_error,
                }
                for lease in (self.ami, self.scheduling)
            },
            "broker": {
                "connected": b.connected,
                "sent": b.sent,
                "received": b.received,
                "dropped": b.dropped,
                "bad": b.bad,
                "errors": b.errors,
                "last_error": b.last_error,
            },
        }


# This node among several (CTI_BROKER_URL): the broker link, the leases.
NODE = web.AppKey("node", Node)


def runs_desk_jobs(app: web.Application) -> bool:
    """Whether the desk's periodic jobs (the SLA sweep, the directory sync, the mailbox and the
    publications) run here: always on a lone node; with several, on the one holding the
    `scheduler` lease (so no breach is warned of twice, no mail filed twice)."""
    if not app[SETTINGS].broker_url:
        return True
    node = app.get(NODE)
    return node is not None and node.scheduling.held
