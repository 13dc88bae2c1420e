"""GET /metrics: the server's health in Prometheus' text format, read from the live objects at
scrape time (nothing is counted twice, nothing is kept here).

Who may read it: a scraper sending `Authorization: Bearer <CTI_METRICS_SECRET>`, or logged-in
staff of the lead role or above. Call counts by state and queue depths say how busy the desk is,
so strangers get 401.
"""

import hmac
from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from cti.live.model import CallState
from desk.models import Role
from desk.staff import RANKS
from desk.web.auth import current
from desk.web.keys import CORE, HUB, IVR, NOTIFIER, ROUTING, SCHEDULER, SETTINGS
from desk.web.nodes import NODE

METRICS_KEY = web.AppKey("metrics_registry", CollectorRegistry)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


class ServerCollector(Collector):
    """Reads the application's live objects (AMI link, tracker, journal, hub, IVR, routing)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def collect(self) -> Iterable[Metric]:
        """Every family, from whatever parts of the server run in this process."""
        yield from self._core()
        yield from self._web()
        yield from self._ivr()
        yield from self._routing()
        yield from self._retention()
        yield from self._node()

    def _node(self) -> Iterator[Metric]:
        node = self.app.get(NODE)
        if node is None:
            return
        held = GaugeMetricFamily(
            "cti_lease_held", "1 while this node holds the lease (several nodes).", labels=["lease"]
        )
        for lease in (node.ami, node.scheduling):
            held.add_metric([lease.name], float(lease.held))
        yield held
        b = node.broker.stats
        yield _gauge("cti_broker_up", "1 while the broker (Redis) answers.", float(b.connected))
        yield _counter("cti_broker_sent", "Entries this node published to the broker.", b.sent)
        yield _counter("cti_broker_received", "Entries from other nodes.", b.received)
        yield _counter(
            "cti_broker_dropped", "Entries dropped (the broker away too long).", b.dropped
        )

    def _core(self) -> Iterator[Metric]:
        core = self.app.get(CORE)
        if core is None:
            return
        s = core.client.stats
        yield _gauge("cti_ami_up", "1 while the AMI link is logged in.", float(s.connected))
        yield _counter("cti_ami_logins", "AMI logins (a reconnect is one more).", s.logins)
        yield _counter("cti_ami_events", "AMI events received.", s.events)
        yield _counter("cti_ami_events_dropped", "AMI events dropped (queue full).", s.dropped)
        yield _gauge(
            "cti_ami_event_queue", "Events waiting for the pump.", core.client.events.qsize()
        )
        yield _gauge(
            "cti_event_lag_seconds",
            "Asterisk's Timestamp of the last applied event to the moment it was applied.",
            core.event_lag,
        )
        yield _counter("cti_events_handled", "Events applied to live state.", core.events_handled)
        yield _counter("cti_event_errors", "Events that failed to apply.", core.event_errors)
        yield _counter("cti_resyncs", "State rebuilds after a link drop or gap.", core.resyncs)
        by_state = GaugeMetricFamily("cti_calls", "Live calls by state.", labels=["state"])
        counts = dict.fromkeys(CallState, 0)
        for call in list(core.tracker.calls.values()):
            counts[call.state] += 1
        for state, n in counts.items():
            by_state.add_metric([state.value], n)
        yield by_state
        j = core.journal
        yield _gauge(
            "cti_journal_last_flush_timestamp_seconds",
            "Unix time of the last successful journal flush (0: none yet).",
            j.last_flush_at or 0.0,
        )
        yield _gauge(
            "cti_journal_flush_seconds",
            "How long the last journal flush took.",
            j.last_flush_seconds,
        )
        yield _counter("cti_journal_rows", "Call rows written by the journal.", j.flushed_rows)
        yield _counter("cti_journal_flush_errors", "Journal flushes that failed.", j.flush_errors)
        yield _counter(
            "cti_journal_rejected_rows", "Call rows the database refused.", j.rejected_rows
        )
        yield _counter(
            "cti_journal_reconciled_calls",
            "Calls filled in from queue_log, the IVR or the CDRs after an outage.",
            j.reconciled_total,
        )
        yield _gauge(
            "cti_ami_outage_open",
            "1 while an AMI outage is open.",
            float(bool(j.outage_started_at)),
        )

    def _web(self) -> Iterator[Metric]:
        hub = self.app.get(HUB)
        if hub is not None:
            clients = GaugeMetricFamily(
                "cti_websocket_clients",
                "Connected WebSocket clients by page kind.",
                labels=["kind"],
            )
            for kind, n in sorted(hub.clients_by_kind().items()):
                clients.add_metric([kind], n)
            yield clients
            yield _counter("cti_hub_messages", "Messages published to pages.", hub.published)
        notifier = self.app.get(NOTIFIER)
        if notifier is not None:
            yield _counter("cti_pops_sent", "Screen pops sent to agents.", notifier.pops_sent)
            yield _counter("cti_pops_failed", "Screen pops that failed.", notifier.pops_failed)

    def _ivr(self) -> Iterator[Metric]:
        ivr = self.app.get(IVR)
        if ivr is None:
            return
        yield _gauge("cti_agi_sessions_active", "FastAGI sessions running now.", ivr.active)
        total = CounterMetricFamily(
            "cti_agi_sessions", "FastAGI sessions by route.", labels=["route"]
        )
        for route, n in sorted(ivr.sessions_by_route.items()):
            total.add_metric([route], n)
        yield total

    def _routing(self) -> Iterator[Metric]:
        routing = self.app.get(ROUTING)
        if routing is None:
            return
        actions = CounterMetricFamily(
            "cti_overflow_actions", "Overflow actions carried out, by kind.", labels=["kind"]
        )
        for kind in ("mobile", "im_offer", "im", "callback"):
            actions.add_metric([kind], routing.overflow.actions.get(kind, 0))
        yield actions

    def _retention(self) -> Iterator[Metric]:
        scheduler = self.app.get(SCHEDULER)
        last = scheduler.last_retention if scheduler is not None else None
        if last is None:
            return
        removed = GaugeMetricFamily(
            "cti_retention_removed",
            "What the last retention sweep deleted or blanked, by kind.",
            labels=["kind"],
        )
        for kind, n in sorted(last.counts().items()):
            removed.add_metric([kind], n)
        yield removed
        yield _gauge(
            "cti_retention_last_run_timestamp_seconds",
            "Unix time of the last retention sweep.",
            last.at.timestamp(),
        )


def _allowed(request: web.Request) -> bool:
    secret = request.app[SETTINGS].metrics_secret
    header = request.headers.get("Authorization", "")
    if secret and header.startswith("Bearer "):
        supplied = header[len("Bearer ") :].strip().encode()
        if hmac.compare_digest(supplied, secret.encode()):
            return True
    staff = current(request)
    return staff is not None and RANKS[Role(staff.role)] >= RANKS[Role.LEAD]


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics (Prometheus text format) for the scraper's token or a lead."""
    if not _allowed(request):
        staff = current(request)
        if staff is not None:
            raise web.HTTPForbidden(text="403: not for your role", content_type="text/plain")
        raise web.HTTPUnauthorized(
            text="401: send Authorization: Bearer <CTI_METRICS_SECRET>, or log in as a lead",
            content_type="text/plain",
            headers={"WWW-Authenticate": 'Bearer realm="cti-metrics"'},
        )
    body = generate_latest(request.app[METRICS_KEY])
    return web.Response(
        body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
    )


def setup(app: web.Application) -> None:
    """The registry (this application's own, not the process-wide default) and the route."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServerCollector(app))
    app[METRICS_KEY] = registry
    app.router.add_get("/metrics", metrics)
