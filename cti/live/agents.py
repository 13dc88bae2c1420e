"""Agent states, mirrored from Asterisk's queue members (Asterisk is the source of truth).

States: logged out (a member of no queue), ready, ringing, on a call, wrap-up (after-call work:
paused with the reason "wrap-up", on its own timer, so the queue offers no call), paused with a
reason. An agent's actions are sent to Asterisk (QueueAdd, QueueRemove, QueuePause) and the page
changes only when Asterisk's QueueMember* events say the change happened; after an AMI reconnect
the members are read again with QueueStatus. So the page and Asterisk never disagree.

Asterisk builds a member event under the queue's lock and publishes it afterwards, so when a
device state change (the agent's phone going idle as a call ends) races with a pause, the older
snapshot can arrive last. After a pause or unpause it made, the service therefore watches the
agent's member events for a few seconds, and when one contradicts the change it reads the agent's
memberships back with QueueStatus (filtered by member) and corrects itself; after a log-in or
log-out it always reads back. (Reading back after every pause — two per call, for the wrap-up —
cost a QueueStatus listing every waiting caller each time, most of the AMI traffic at desk scale.)
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from cti.ami import actions
from cti.ami import events as ev
from cti.ami.client import AmiClient
from cti.ami.responses import QueueMember
from cti.asterisks import DEFAULT_ASTERISK
from cti.errors import InvalidInput
from cti.live.bus import (
    AgentStateChanged,
    Bus,
    CallEvent,
    CallEventKind,
    LiveResynced,
    WrapupEnded,
)
from cti.live.model import AgentState, AgentView
from cti.tasks import Background

logger = logging.getLogger(__name__)

WRAP_UP = "wrap-up"
# How long after a pause or unpause we made a contradicting member event is taken as stale.
EXPECT_WINDOW = 5.0
# app_queue's member (device) status codes.
RINGING_CODES = {6, 7}
BUSY_CODES = {2, 3, 8}


@dataclass
class Membership:
    """One queue membership as Asterisk reported it."""

    interface: str
    status: int = 1
    paused: bool = False
    reason: str = ""
    in_call: bool = False


@dataclass
class Agent:
    """An agent (by extension = queue member name) and its memberships."""

    ext: str
    queues: dict[str, Membership] = field(default_factory=dict)
    state: AgentState = AgentState.LOGGED_OUT
    reason: str = ""
    since: float = field(default_factory=time.time)
    wrapup_until: float | None = None
    wrapup_call: str | None = None  # the call whose after-call work this is
    wrapup_started: float | None = None
    wrapup_left: float = 0.0  # when the agent last left wrap-up

    def derive(self) -> tuple[AgentState, str]:
        """The state Asterisk's membership data means."""
        if not self.queues:
            return AgentState.LOGGED_OUT, ""
        m = list(self.queues.values())
        if any(x.status in RINGING_CODES for x in m):
            return AgentState.RINGING, ""
        if any(x.in_call or x.status in BUSY_CODES for x in m):
            return AgentState.ON_CALL, ""
        paused = [x for x in m if x.paused]
        if paused and len(paused) == len(m):
            reason = paused[0].reason
            return (AgentState.WRAP_UP, "") if reason == WRAP_UP else (AgentState.PAUSED, reason)
        return AgentState.READY, ""

    def view(self) -> AgentView:
        """The agent as plain data."""
        return AgentView(
            self.ext,
            self.state,
            self.reason,
            self.since,
            tuple(sorted(self.queues)),
            self.wrapup_until if self.state == AgentState.WRAP_UP else None,
        )


class AgentService:
    """Keeps every agent's state and carries out their state changes over AMI."""

    def __init__(
        self,
        client: AmiClient,
        bus: Bus,
        interface: Callable[[str], str],
        wrapup_seconds: float,
        asterisk: str = DEFAULT_ASTERISK,
    ) -> None:
        self.client = client
        # The Asterisk whose phones these agents log in at (an agent of another site is another
        # AgentService's).
        self.asterisk = asterisk
        self.bus = bus
        self.interface = interface
        self.wrapup_seconds = wrapup_seconds
        self.agents: dict[str, Agent] = {}
        self._timers: dict[str, asyncio.Task[None]] = {}
        self.tasks = Background(logger)
        # Member events seen per agent: a read-back that raced with an event is read again.
        self._events: dict[str, int] = {}
        # The pause state we just asked Asterisk for, per agent, and when (see the docstring).
        self._expect: dict[str, tuple[bool, float]] = {}
        self.readbacks = 0
        self._unsubscribe = [
            bus.subscribe(CallEvent, self._on_call),
            bus.subscribe(LiveResynced, lambda _e: self.tasks.spawn(self.refresh())),
        ]

    def agent(self, ext: str) -> Agent:
        """The agent with this extension (logged out if unknown)."""
        return self.agents.setdefault(ext, Agent(ext))

    def count(self, state: AgentState, queue: str | None = None) -> int:
        """Agents in `state` (in `queue`, or in any)."""
        return sum(
            1
            for a in self.agents.values()
            if a.state == state and (queue is None or queue in a.queues)
        )

    # -- from Asterisk -------------------------------------------------------------------------

    def _on_call(self, event: CallEvent) -> None:
        """The end of an answered call starts the agent's wrap-up."""
        if event.call.asterisk != self.asterisk:
            return
        if event.kind == CallEventKind.TALK_ENDED and event.call.agent:
            agent = self.agent(event.call.agent)
            self._record_wrapup(agent)  # the previous call's, if not yet settled
            agent.wrapup_call, agent.wrapup_started = event.call.uniqueid, time.time()
            self.tasks.spawn(self.start_wrapup(event.call.agent))

    def on_member(self, e: ev.QueueMemberEvent | ev.QueueMemberRemoved) -> None:
        """A QueueMember* event from Asterisk."""
        agent = self.agent(e.member_name)
        self._events[agent.ext] = self._events.get(agent.ext, 0) + 1
        if isinstance(e, ev.QueueMemberRemoved):
            agent.queues.pop(e.queue, None)
        else:
            self._check_expected(agent.ext, e.paused)
            m = agent.queues.setdefault(e.queue, Membership(e.interface))
            m.interface, m.status, m.paused, m.reason, m.in_call = (
                e.interface,
                e.status,
                e.paused,
                e.paused_reason,
                e.in_call,
            )
        self._update(agent)

    def _check_expected(self, ext: str, paused: bool) -> None:
        """A member event that says the opposite of the pause we just made is suspect: read back."""
        expected = self._expect.get(ext)
        if expected is None:
            return
        want, at = expected
        if time.monotonic() - at > EXPECT_WINDOW:
            del self._expect[ext]
        elif paused != want:
            del self._expect[ext]
            self.tasks.spawn(self.verify(ext))

    def _update(self, agent: Agent) -> None:
        state, reason = agent.derive()
        if (state, reason) == (agent.state, agent.reason):
            return
        was = agent.state
        agent.state, agent.reason, agent.since = state, reason, time.time()
        if was == AgentState.WRAP_UP and state != AgentState.WRAP_UP and agent.wrapup_call:
            # Settled a moment later: a stale event corrected by the read-back is no end.
            agent.wrapup_left = agent.since
            self.tasks.spawn(self._settle_wrapup(agent, agent.wrapup_call))
        timer = self._timers.get(agent.ext)
        if state == AgentState.WRAP_UP and (timer is None or timer.done()):
            # Wrap-up without our timer (after a restart, or back after a corrected stale event):
            # the time left, or a full wrap-up.
            left = (agent.wrapup_until or 0) - time.time()
            seconds = left if left > 0 else None
            self.tasks.spawn(self.start_wrapup(agent.ext, seconds, pause=False))
        self.bus.publish(AgentStateChanged(agent.view()))

    async def refresh(self) -> None:
        """Rebuild every membership from QueueStatus (after a reconnect)."""
        try:
            status = await actions.queue_status(self.client)
        except Exception as exc:
            logger.warning("agent states not refreshed: %s", exc)
            return
        seen = _memberships(status.members)
        for ext in set(self.agents) | set(seen):
            agent = self.agent(ext)
            agent.queues = seen.get(ext, {})
            self._update(agent)

    async def verify(self, ext: str, delay: float = 0.3) -> None:
        """Read one agent's memberships back from Asterisk (after a change we made)."""
        for _ in range(5):
            await asyncio.sleep(delay)
            before = self._events.get(ext, 0)
            try:
                status = await actions.queue_status(self.client, member=ext, timeout=10)
            except Exception as exc:
                logger.warning("agent %s not read back: %s", ext, exc)
                return
            if self._events.get(ext, 0) != before:
                continue  # an event crossed the answer: which is newer is unknown, read again
            self.readbacks += 1
            agent = self.agent(ext)
            queues = _memberships(status.members).get(ext, {})
            if queues != agent.queues:
                logger.info("agent %s corrected from Asterisk: %s", ext, queues)
                agent.queues = queues
                self._update(agent)
            return

    # -- agent actions -------------------------------------------------------------------------

    async def login(self, ext: str, queues: list[str]) -> None:
        """Join the agent's queues (ready)."""
        iface = self.interface(ext)
        for queue in queues:
            await actions.queue_add(self.client, queue, iface, ext)
        self.tasks.spawn(self.verify(ext))

    async def logout(self, ext: str) -> None:
        """Leave every queue."""
        for queue, m in list(self.agent(ext).queues.items()):
            await actions.queue_remove(self.client, queue, m.interface)
        self.tasks.spawn(self.verify(ext))

    async def set_paused(self, ext: str, paused: bool, reason: str = "") -> None:
        """Pause (with a reason) or unpause on every queue of the agent."""
        agent = self.agent(ext)
        if not agent.queues:
            raise InvalidInput("log in first")
        if paused and not reason.strip():
            raise InvalidInput("a pause needs a reason")
        if len(reason) > 60:
            raise InvalidInput("the reason is longer than 60 characters")
        self._expect[ext] = (paused, time.monotonic())
        for m in agent.queues.values():
            await actions.queue_pause(self.client, m.interface, paused, reason)

    async def start_wrapup(
        self, ext: str, seconds: float | None = None, *, pause: bool = True
    ) -> None:
        """After-call work: paused as "wrap-up" until the timer ends (or the agent is ready)."""
        agent = self.agent(ext)
        if not agent.queues:
            return
        seconds = self.wrapup_seconds if seconds is None else seconds
        agent.wrapup_until = time.time() + seconds
        old = self._timers.pop(ext, None)
        if old is not None:
            old.cancel()
        timer = self._timers[ext] = asyncio.create_task(self._end_wrapup(ext, seconds))
        if pause:
            try:
                await self.set_paused(ext, True, WRAP_UP)
            except Exception as exc:
                logger.warning("wrap-up for %s not started: %s", ext, exc)
                timer.cancel()
                if self._timers.get(ext) is timer:
                    del self._timers[ext]
                return
        self.bus.publish(AgentStateChanged(agent.view()))

    async def _settle_wrapup(self, agent: Agent, call: str, delay: float = 2.0) -> None:
        """Record the after-call work of `call` once the agent has really left wrap-up."""
        await asyncio.sleep(delay)
        if agent.wrapup_call == call:
            self._record_wrapup(agent)

    def _record_wrapup(self, agent: Agent) -> None:
        """The agent's last call's after-call work, from wrap-up start to when they left it."""
        if agent.wrapup_call is None or agent.state == AgentState.WRAP_UP:
            return
        started = agent.wrapup_started or agent.wrapup_left
        self.bus.publish(
            WrapupEnded(agent.wrapup_call, agent.ext, max(0.0, agent.wrapup_left - started))
        )
        agent.wrapup_call = agent.wrapup_started = None

    async def _end_wrapup(self, ext: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._timers.pop(ext, None)
        if self.agent(ext).state == AgentState.WRAP_UP:
            try:
                await self.set_paused(ext, False)
            except Exception as exc:
                logger.warning("wrap-up for %s not ended: %s", ext, exc)

    async def close(self) -> None:
        """Cancel timers and pending work."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        timers = list(self._timers.values())
        for task in timers:
            task.cancel()
        for task in timers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.tasks.close()


def _memberships(rows: Iterable[QueueMember]) -> dict[str, dict[str, Membership]]:
    """QueueStatus's member rows: member name -> queue -> membership."""
    seen: dict[str, dict[str, Membership]] = {}
    for m in rows:
        seen.setdefault(m.name, {})[m.queue] = Membership(
            m.interface, m.status, m.paused, m.paused_reason, m.in_call
        )
    return seen
