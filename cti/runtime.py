"""The CTI core of one server process: AMI link -> event pump -> live state -> bus -> journal.

Start order: journal resume (take back open calls), AMI login, then the pump and the writers.
Stop order is the reverse, with a last flush, so a clean stop loses nothing.
"""

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from cti.ami import actions
from cti.ami import events as ev
from cti.ami.client import AmiClient, AmiOptions
from cti.asterisks import AsteriskServer
from cti.cdr import CdrTable
from cti.db import SessionMaker, create_engine
from cti.errors import AmiActionFailed, AmiError, ConfigError
from cti.journal.agent_states import StateLog
from cti.journal.recordings import Recorder
from cti.journal.service import JournalService
from cti.live.agents import AgentService
from cti.live.bus import Bus, LiveResynced
from cti.live.model import CallState, StateCounter
from cti.live.queues import QueueBook
from cti.live.tracker import CallTracker
from cti.queuelog import QueueLogFile, QueueLogSource, QueueLogTable
from cti.settings import Settings
from cti.sitesecrets import is_placeholder

logger = logging.getLogger(__name__)

NOT_CHECKED = "not checked yet"
# The dialplan contexts a call passes through after the inbound one (asterisk-conf/extensions.conf).
FLOW_CONTEXTS = ("cti-next",)


def queue_log_source(server: AsteriskServer) -> QueueLogSource | None:
    """The Asterisk's realtime queue_log table when a database is set for it, else its file."""
    if server.queue_log_database_url:
        return QueueLogTable(create_engine(server.queue_log_database_url),
                             server.queue_log_table)  # fmt: skip
    if server.queue_log_path:
        return QueueLogFile(Path(server.queue_log_path))
    return None


def cdr_source(server: AsteriskServer) -> CdrTable | None:
    """The Asterisk's CDR table, when a database is set for it."""
    if not server.cdr_database_url:
        return None
    return CdrTable(create_engine(server.cdr_database_url), server.cdr_table)


class CtiCore:
    """Owns one Asterisk's AMI client, the live state on it (calls, agents, queues), the bus,
    the journal of its calls and their tasks. Several Asterisks: one CtiCore each."""

    def __init__(
        self,
        settings: Settings,
        sessions: SessionMaker,
        bus: Bus | None = None,
        server: AsteriskServer | None = None,
    ) -> None:
        self.settings = settings
        # The Asterisk this core works with (default: the one of the CTI_AMI_* settings).
        self.server = server = server or settings.asterisk_servers[0]
        self.sessions = sessions
        self.bus = bus or Bus()
        self.client = AmiClient(
            AmiOptions(
                host=server.ami_host,
                port=server.ami_port,
                username=server.ami_user,
                secret=server.ami_secret,
                action_timeout=settings.ami_action_timeout,
                ping_interval=settings.ami_ping_interval,
                ping_timeout=settings.ami_ping_timeout,
                queue_size=settings.ami_event_queue,
            )
        )
        self.tracker = CallTracker(settings.inbound_contexts, self.bus, asterisk=server.name)
        self.agents = AgentService(
            self.client, self.bus, settings.agent_device, settings.wrapup_seconds, server.name
        )
        self.queues = QueueBook(self.tracker, self.agents, self.bus)
        self.agent_log = StateLog(sessions, self.bus, asterisk=server.name)
        reader = queue_log_source(server)
        if reader is None:
            logger.warning(
                "no queue_log configured for Asterisk %s: calls missed during an outage cannot "
                "be recovered",
                server.name,
            )
        self.journal = JournalService(
            sessions,
            self.tracker,
            reader,
            flush_interval=settings.journal_flush_interval,
            call_contexts=frozenset(settings.inbound_contexts) | frozenset(FLOW_CONTEXTS),
            cdr=cdr_source(server),
            asterisk=server.name,
        )
        self.recorder = Recorder(self.bus, sessions)
        self._tasks: list[asyncio.Task[None]] = []
        # Whether Asterisk's PJSIP passwords were checked for shipped placeholders, for /healthz.
        self.sip_secrets = NOT_CHECKED
        self.events_handled = 0
        self.event_errors = 0
        self.resyncs = 0
        # Seconds between Asterisk stamping the last event and our applying it (for /metrics).
        self.event_lag = 0.0

    async def start(self) -> None:
        """Resume the journal and connect to Asterisk (a wrong AMI secret raises here, and so
        does a placeholder secret, ours or Asterisk's: ConfigError)."""
        if is_placeholder(self.server.ami_secret):
            where = (
                "CTI_AMI_SECRET"
                if self.server.is_default
                else f"CTI_ASTERISKS' {self.server.name}.ami_secret"
            )
            raise ConfigError(
                f"{where} is empty or the placeholder asterisk-conf ships (change-me…): "
                "give Asterisk's [cti] AMI user a secret of this site's own, e.g. with "
                "`cti asterisk-secrets /etc/asterisk` (see SECURITY.md)"
            )
        await self.journal.resume()
        await self.queues.preload(self.sessions)
        await self.client.start()
        if self.client.connected:
            try:
                await self.check_sip_secrets()
            except AmiError as exc:
                logger.warning("PJSIP passwords not checked: %s", exc)
            except BaseException:
                await self.client.close()
                raise
        self.agent_log.start()
        await self.agents.refresh()
        self._tasks = [
            asyncio.create_task(self._pump(), name="cti-pump"),
            asyncio.create_task(
                self.journal.run_writer(lambda: self.client.connected), name="journal-writer"
            ),
        ]

    async def check_sip_secrets(self) -> None:
        """Refuse an Asterisk whose PJSIP auths still have a shipped placeholder password
        (anyone could register as an agent's phone or use the trunk). Asterisk lists them only
        to an AMI user with write=system, which ours deliberately lacks (it would allow the
        System() application): then this says so in the log and /healthz, and the check is the
        deploy's (`cti asterisk-secrets`, the container's entrypoint)."""
        try:
            auths = await actions.pjsip_auths(self.client)
        except AmiActionFailed as exc:
            self.sip_secrets = f"not checked: {exc}"
            logger.warning(
                "cannot check Asterisk's PJSIP passwords for placeholders (%s); "
                "make sure they were set at deploy (SECURITY.md)",
                exc,
            )
            return
        weak = sorted({a.name for a in auths if is_placeholder(a.password)})
        if weak:
            self.sip_secrets = f"placeholders: {', '.join(weak)}"
            raise ConfigError(
                f"Asterisk {self.server.name} at {self.server.ami_host} still has the placeholder "
                f"passwords asterisk-conf ships for the PJSIP auths {', '.join(weak)}: anyone "
                "could register as those phones. Give each a password of its own "
                "(`cti asterisk-secrets /etc/asterisk`, then reload pjsip; see SECURITY.md)"
            )
        self.sip_secrets = f"checked: {len(auths)} auths, no placeholder"

    async def stop(self) -> None:
        """Stop the pump, flush the journal, log off."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.recorder.close()
        await self.agents.close()
        await self.agent_log.close()
        self.queues.close()
        self.journal.close()
        if self.journal.reader is not None:
            await self.journal.reader.close()
        if self.journal.cdr is not None:
            await self.journal.cdr.close()
        await self.client.close()

    def _drain(self) -> list[ev.AmiEvent]:
        """Apply the events already queued; return the link markers among them."""
        markers: list[ev.AmiEvent] = []
        for _ in range(self.client.events.qsize()):
            event = self.client.events.get_nowait()
            if isinstance(event, ev.LinkUp | ev.LinkDown | ev.StreamGap):
                # The pump handles it next (a new gap means another resync).
                markers.append(event)
                self._pending_marker = event
                break
            else:
                self._apply(event)
        return markers

    _pending_marker: ev.AmiEvent | None = None

    async def _pump(self) -> None:
        """The one consumer of AMI events. A failure on one event never stops the others."""
        while True:
            event = self._pending_marker or await self.client.events.get()
            self._pending_marker = None
            try:
                if isinstance(event, ev.LinkUp | ev.StreamGap):
                    await self._resync(event)
                elif isinstance(event, ev.LinkDown):
                    await self.journal.link_down(event)
                else:
                    self._apply(event)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.event_errors += 1
                logger.exception("failed to handle %s", type(event).__name__)

    def _apply(self, event: ev.AmiEvent) -> None:
        try:
            if isinstance(event, ev.QueueMemberEvent | ev.QueueMemberRemoved):
                self.tracker.last_event_at = event.timestamp
                self.agents.on_member(event)
            else:
                self.tracker.handle(event)
            self.events_handled += 1
            self.event_lag = max(0.0, time.time() - event.timestamp)
        except Exception:
            self.event_errors += 1
            logger.exception(
                "failed to handle %s linkedid=%s",
                type(event).__name__,
                getattr(event, "linkedid", "-"),
            )

    async def _resync(self, event: ev.AmiEvent) -> None:
        if isinstance(event, ev.StreamGap):
            logger.error("%d AMI events were dropped: rebuilding state", event.dropped)
        if isinstance(event, ev.LinkUp) and self.sip_secrets == NOT_CHECKED:
            # Asterisk was not reachable at start: check now (too late to refuse; say it loudly).
            try:
                await self.check_sip_secrets()
            except ConfigError as exc:
                logger.error("%s", exc)
            except AmiError as exc:
                logger.warning("PJSIP passwords not checked: %s", exc)
        try:
            await self.journal.resync(self.client, self._drain)
            self.resyncs += 1
            await self._rings_under_way()
            self.bus.publish(LiveResynced())
        except AmiError as exc:
            # The link dropped again mid-resync; the next LinkUp resyncs.
            logger.warning("resync interrupted: %s", exc)

    async def _rings_under_way(self) -> None:
        """Rings that began while nobody listened (the link down, a node taking over) have had no
        AgentCalled here: found as live channels to a queue member's device that belong to a
        waiting call (the same Linkedid), they get their offer and the agent their pop now."""
        calls = {c.linkedid: c for c in self.tracker.calls.values()
                 if c.state in (CallState.WAITING, CallState.RINGING)}  # fmt: skip
        if not calls:
            return
        devices: dict[str, tuple[str, str]] = {}  # channel name prefix -> (agent, interface)
        for agent in self.agents.agents.values():
            for member in agent.queues.values():
                # Local/1001@sim-agent/n rings as Local/1001@sim-agent-0000001a;1,
                # PJSIP/1001 as PJSIP/1001-0000000b.
                base = "/".join(member.interface.split("/")[:2])
                devices[base + "-"] = (agent.ext, member.interface)
        found = 0
        for chan in await actions.core_show_channels(self.client):
            call = calls.get(chan.linkedid)
            if call is None or chan.uniqueid == call.uniqueid or chan.channel.endswith(";2"):
                continue  # (a Local channel's ;1 half is the one AgentCalled names)
            for prefix, (ext, interface) in devices.items():
                if chan.channel.startswith(prefix):
                    found += self.tracker.ring_seen(
                        call.uniqueid, ext, interface, chan.uniqueid, time.time()
                    )
        if found:
            logger.warning("%d rings were under way at the resync: their pops are sent now", found)

    def health(self) -> dict[str, Any]:
        """AMI and journal state for /healthz."""
        s = self.client.stats
        return {
            "asterisk": self.server.name,
            "site": self.server.site,
            "ami": {
                "connected": s.connected,
                "host": f"{self.client.options.host}:{self.client.options.port}",
                "connected_since": s.connected_since,
                "logins": s.logins,
                "events": s.events,
                "skipped_unparsed": self.client.skipped,
                "dropped": s.dropped,
                "garbled": s.garbled,
                "queue_depth": self.client.events.qsize(),
                "last_error": s.last_error,
                "sip_secrets": self.sip_secrets,
            },
            "tracker": {
                "live_calls": len(self.tracker.calls),
                "events_handled": self.events_handled,
                "event_errors": self.event_errors,
                "last_event_at": self.tracker.last_event_at,
                "unexpected_state_moves": StateCounter.unexpected,
                "bus_published": self.bus.published,
                "bus_subscriber_failures": self.bus.failures,
                # Memberships read back from Asterisk after a change (QueueStatus per agent).
                "agent_readbacks": self.agents.readbacks,
            },
            "journal": {
                "last_flush_at": self.journal.last_flush_at,
                "flush_errors": self.journal.flush_errors,
                # Calls whose row the database refused (set aside so the others are written).
                "rejected_rows": self.journal.rejected_rows,
                "rejected": [
                    {"uniqueid": uid, "at": at, "error": error}
                    for uid, (at, error) in self.journal.rejected.items()
                ],
                "resyncs": self.resyncs,
                "reconciled_calls": self.journal.reconciled_total,
                "outage_open_since": self.journal.outage_started_at,
                "queue_log": self.journal.reader.describe() if self.journal.reader else None,
                "cdr": self.journal.cdr.describe() if self.journal.cdr else None,
            },
        }
