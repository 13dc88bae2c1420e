"""What the pages are told, and when: the one place that turns bus events into WebSocket messages
(and builds screen pops for the agent whose phone rings). Message kinds are `MessageType`."""

import logging
import time
from typing import Any

from cti.live.bus import (
    AgentStateChanged,
    BackupRaised,
    Bus,
    CallEvent,
    CallEventKind,
    OfferTaken,
)
from cti.live.model import AgentView, CallState, CallView
from cti.tasks import Background
from desk.pop import PopBuilder, call_json
from desk.web.hub import Hub
from desk.web.messages import WALLBOARD, MessageType, agent_topic

logger = logging.getLogger(__name__)


def agent_json(agent: AgentView) -> dict[str, Any]:
    """An agent's state as the pages show it."""
    return {
        "ext": agent.ext,
        "state": agent.state.value,
        "reason": agent.reason,
        "since": agent.since,
        "wrapup_until": agent.wrapup_until,
        "queues": list(agent.queues),
    }


class Notifier:
    """Subscribes to the bus; publishes to the hub's topics."""

    def __init__(self, bus: Bus, hub: Hub, pops: PopBuilder) -> None:
        self.hub = hub
        self.pops = pops
        self.tasks = Background(logger)
        self._alerted: set[int] = set()
        self.pops_sent = 0  # screen pops handed to the hub (for /metrics)
        self.pops_failed = 0
        self._unsubscribe = [
            bus.subscribe(CallEvent, self._call),
            bus.subscribe(AgentStateChanged, self._agent),
            bus.subscribe(BackupRaised, self._backup),
            bus.subscribe(OfferTaken, self._taken),
        ]

    def _call(self, event: CallEvent) -> None:
        call, offer, kind = event.call, event.offer, event.kind
        if kind == CallEventKind.AGENT_RINGING and offer is not None:
            self.tasks.spawn(self._pop(offer.agent, call, offer.at))
        elif kind == CallEventKind.CALL_ANSWERED and call.agent:
            self._to_agent(call.agent, MessageType.ANSWERED, call=call_json(call))
        elif kind == CallEventKind.CALL_CHANGED and call.agent and call.state == CallState.TALKING:
            self._to_agent(
                call.agent,
                MessageType.HOLD,
                uniqueid=call.uniqueid,
                on_hold=call.on_hold,
                hold_seconds=round(call.hold_seconds, 1),
            )
        elif kind == CallEventKind.AGENT_RING_ENDED and offer is not None:
            if offer.result.value != "answered":
                self._to_agent(
                    offer.agent,
                    MessageType.RING_ENDED,
                    uniqueid=call.uniqueid,
                    result=offer.result.value,
                )
        elif kind == CallEventKind.TALK_ENDED and call.agent:
            self._to_agent(
                call.agent, MessageType.ENDED, uniqueid=call.uniqueid, outcome="answered"
            )
        elif kind == CallEventKind.CALL_ENDED:
            outcome = call.outcome.value if call.outcome else None
            for agent in {*call.offered_to, *([call.agent] if call.agent else [])}:
                self._to_agent(agent, MessageType.ENDED, uniqueid=call.uniqueid, outcome=outcome)

    async def _pop(self, agent: str, call: CallView, rang_at: float) -> None:
        try:
            pop = {"type": MessageType.POP.value, **await self.pops.build(call, "ringing")}
            pop["event_at"] = rang_at  # the AMI event's own timestamp (for latency measurement)
            pop["sent_at"] = time.time()
            self.hub.publish(agent_topic(agent), pop)
            self.pops_sent += 1
        except Exception:
            self.pops_failed += 1
            logger.exception("screen pop failed linkedid=%s", call.linkedid)

    def _to_agent(self, ext: str, kind: MessageType, **fields: Any) -> None:
        self.hub.publish(agent_topic(ext), {"type": kind.value, **fields})

    def _agent(self, event: AgentStateChanged) -> None:
        self._to_agent(event.agent.ext, MessageType.AGENT_STATE, agent=agent_json(event.agent))

    def _backup(self, event: BackupRaised) -> None:
        # Raised again while it lasts (the banner follows the rules); the alert is said once.
        if event.alert_id is not None and event.alert_id not in self._alerted:
            self._alerted.add(event.alert_id)
            self.hub.publish(
                WALLBOARD,
                {"type": MessageType.ALERT.value, "queue": event.queue, "rules": dict(event.rules)},
            )

    def _taken(self, event: OfferTaken) -> None:
        self.hub.publish(
            WALLBOARD, {"type": MessageType.TAKEN.value, "uniqueid": event.uniqueid, "by": event.by}
        )

    async def close(self) -> None:
        """Stop listening; cancel pops in flight."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        await self.tasks.close()
