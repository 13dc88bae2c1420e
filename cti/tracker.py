"""The call tracker: the single owner of live call state.

It consumes typed AMI events in order, keeps one LiveCall per call keyed by the caller channel's
Uniqueid (with an explicit Linkedid map for the other legs), marks changed calls for the journal
writer, and tells subscribers what happened (call_arrived, call_queued, agent_ringing,
call_answered, call_ended) so that nothing live can disagree with the journal.
"""

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cti.ami import events as ev
from cti.calls import LiveCall, Offer
from cti.types import OfferResult

logger = logging.getLogger(__name__)


class CallEventKind(StrEnum):
    """Domain events the tracker publishes."""

    CALL_ARRIVED = "call_arrived"
    CALL_QUEUED = "call_queued"
    AGENT_RINGING = "agent_ringing"
    AGENT_RING_ENDED = "agent_ring_ended"
    CALL_ANSWERED = "call_answered"
    CALL_ENDED = "call_ended"
    # The agent's part of an answered call is over (AgentComplete): the survey may follow.
    TALK_ENDED = "talk_ended"
    QUEUE_MEMBER = "queue_member"
    # Live state was rebuilt from Asterisk after a reconnect or an event gap (call is None).
    RESYNCED = "resynced"


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A domain event; `call` is the live call (read it, do not change it)."""

    kind: CallEventKind
    call: LiveCall | None
    offer: Offer | None = None
    member: ev.QueueMemberEvent | ev.QueueMemberRemoved | None = None


Listener = Callable[[CallEvent], None]


class CallTracker:
    """Turns the AMI event stream into call records."""

    def __init__(self, inbound_contexts: Iterable[str], clock: Callable[[], float] = time.time):
        self.inbound_contexts = frozenset(inbound_contexts)
        self.clock = clock
        self.calls: dict[str, LiveCall] = {}  # caller Uniqueid -> call
        self.by_linkedid: dict[str, LiveCall] = {}
        self._created: dict[str, float] = {}  # Uniqueid -> Newchannel time, until hang-up
        self._dirty: dict[str, LiveCall] = {}
        self.listeners: list[Listener] = []
        self.last_event_at: float | None = None
        self._handlers: dict[type[ev.AmiEvent], Callable[[Any], None]] = {
            ev.Newchannel: self._newchannel,
            ev.Newexten: self._newexten,
            ev.Hangup: self._hangup,
            ev.QueueCallerJoin: self._join,
            ev.QueueCallerLeave: self._leave,
            ev.QueueCallerAbandon: self._abandon,
            ev.AgentCalled: self._agent_called,
            ev.AgentRingNoAnswer: self._agent_rna,
            ev.AgentDump: self._agent_dump,
            ev.AgentConnect: self._agent_connect,
            ev.AgentComplete: self._agent_complete,
            ev.UserEvent: self._user_event,
            ev.QueueMemberStatus: self._member,
            ev.QueueMemberAdded: self._member,
            ev.QueueMemberPause: self._member,
            ev.QueueMemberRemoved: self._member,
        }

    # -- plumbing -------------------------------------------------------------------------------

    def handle(self, event: ev.AmiEvent) -> None:
        """Apply one event. Unknown event types are ignored."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            self.last_event_at = event.timestamp
            handler(event)

    def _publish(self, kind: CallEventKind, call: LiveCall | None, **kw: Any) -> None:
        for listener in self.listeners:
            try:
                listener(CallEvent(kind, call, **kw))
            except Exception:
                logger.exception(
                    "listener failed on %s linkedid=%s", kind, call.linkedid if call else "-"
                )

    def _touch(self, call: LiveCall) -> None:
        call.seen_since_link = True
        self._dirty[call.uniqueid] = call

    def take_dirty(self) -> list[LiveCall]:
        """The calls changed since the last call (the writer stores them)."""
        dirty, self._dirty = list(self._dirty.values()), {}
        return dirty

    def mark_dirty(self, calls: Iterable[LiveCall]) -> None:
        """Mark calls for the writer again (after a failed write, or a reconciliation)."""
        for call in calls:
            self._dirty.setdefault(call.uniqueid, call)

    def adopt(self, call: LiveCall) -> None:
        """Take over a live call (resumed from the journal or found in a snapshot)."""
        self.calls[call.uniqueid] = call
        self.by_linkedid.setdefault(call.linkedid, call)

    def end_reconciled(self, call: LiveCall) -> None:
        """A call found to have ended while we were not listening: store it and tell listeners."""
        self._dirty[call.uniqueid] = call
        self.forget(call)
        logger.info(
            "call reconciled linkedid=%s outcome=%s inferred=%s",
            call.linkedid,
            call.outcome,
            ",".join(sorted(call.inferred)),
        )
        self._publish(CallEventKind.CALL_ENDED, call)

    def resynced(self) -> None:
        """Tell listeners that live state was rebuilt (they re-read what they mirror)."""
        self._publish(CallEventKind.RESYNCED, None)

    def forget(self, call: LiveCall) -> None:
        """Drop a finished call from live state (it stays dirty until written)."""
        self.calls.pop(call.uniqueid, None)
        if self.by_linkedid.get(call.linkedid) is call:
            del self.by_linkedid[call.linkedid]
        self._created.pop(call.uniqueid, None)

    def _call_of(self, e: ev.ChannelEvent) -> LiveCall | None:
        return self.calls.get(e.uniqueid) or self.by_linkedid.get(e.linkedid)

    def _new_call(self, e: ev.ChannelEvent, num: str, name: str, dialled: str) -> LiveCall:
        call = LiveCall(
            uniqueid=e.uniqueid,
            linkedid=e.linkedid,
            channel=e.channel,
            arrived_at=self._created.get(e.uniqueid, e.timestamp),
            caller_number=num,
            caller_name=name,
            dialled_number=dialled,
        )
        self.adopt(call)
        self._touch(call)
        logger.debug("call arrived linkedid=%s from %s", call.linkedid, num)
        self._publish(CallEventKind.CALL_ARRIVED, call)
        return call

    # -- channel and dialplan events --------------------------------------------------------------

    def _newchannel(self, e: ev.Newchannel) -> None:
        self._created[e.uniqueid] = e.timestamp

    def _newexten(self, e: ev.Newexten) -> None:
        call = self.calls.get(e.uniqueid)
        if call is None:
            if e.context in self.inbound_contexts and e.priority == 1:
                self._new_call(e, _cid(e.caller_num), _cid(e.caller_name), e.exten)
            return
        if e.application == "AGI":
            if call.ivr_entered_at is None:
                call.ivr_entered_at = e.timestamp
            call.in_ivr = True
            self._touch(call)
        elif call.in_ivr:
            call.ivr_left_at = e.timestamp
            call.in_ivr = False
            self._touch(call)
        if e.application == "VoiceMail":
            call.voicemail = True
            self._touch(call)

    def _hangup(self, e: ev.Hangup) -> None:
        self._created.pop(e.uniqueid, None)
        call = self.calls.get(e.uniqueid)
        if call is None:
            return
        call.hangup_cause = e.cause
        call.finish(e.timestamp)
        self._touch(call)
        self.forget(call)
        logger.debug("call ended linkedid=%s outcome=%s", call.linkedid, call.outcome)
        self._publish(CallEventKind.CALL_ENDED, call)

    def _user_event(self, e: ev.UserEvent) -> None:
        # UserEvents our dialplan and IVR raise on the caller's channel (see asterisk-conf);
        # CtiOverflowAnswered comes from the called party's channel and names the call.
        f = e.fields
        call = self.calls.get(f.get("Call", "") if e.name == "CtiOverflowAnswered" else e.uniqueid)
        if call is None:
            return
        if e.name == "CtiQueueResult":
            call.queue_status = f.get("Status") or None
        elif e.name == "CtiIncident":
            call.incident_number = f.get("Number") or call.incident_number
        elif e.name == "CtiIvr":
            call.ivr_path = f.get("Path") or call.ivr_path
            call.language = f.get("Lang") or call.language
            if f.get("Voicemail") == "1":
                call.voicemail = True
        elif e.name == "CtiTransfer":
            call.transferred_to = f.get("To") or "?"
        elif e.name in ("CtiOverflow", "CtiCallback"):
            call.overflowed = True
            kind = "callback" if e.name == "CtiCallback" else f.get("Kind", "mobile")
            to = f.get("To") or f.get("Number") or "?"
            result = "requested" if kind == "callback" else "dialling"
            call.overflows.append(
                {"kind": kind, "to": to, "at": e.timestamp, "answered_at": None, "result": result}
            )
        elif e.name == "CtiCallbackOf":
            call.callback_of = f.get("Call") or None
        elif e.name == "CtiOverflowAnswered" and call.overflows:
            call.overflows[-1].update(answered_at=e.timestamp, result="answered")
        elif e.name == "CtiOverflowResult" and call.overflows:
            last = call.overflows[-1]
            if last["result"] == "dialling":
                last["result"] = (f.get("Status") or "failed").lower()
        elif e.name == "CtiSurvey":
            score = f.get("Score", "")
            call.survey_score = int(score) if score.isdigit() else call.survey_score
        else:
            return
        self._touch(call)

    # -- queue events ---------------------------------------------------------------------------

    def _join(self, e: ev.QueueCallerJoin) -> None:
        call = self.calls.get(e.uniqueid)
        if call is None:
            # A call that reached a queue without passing an inbound context (an internal
            # transfer, a misconfigured context): it still gets a record.
            call = self._new_call(e, _cid(e.caller_num), _cid(e.caller_name), "")
        if call.queued_at is None:
            call.queued_at = e.timestamp
        call.queue = e.queue
        call.in_queue_since = e.timestamp
        call.queue_status = None
        self._touch(call)
        self._publish(CallEventKind.CALL_QUEUED, call)

    def _leave(self, e: ev.QueueCallerLeave) -> None:
        call = self.calls.get(e.uniqueid)
        if call is not None:
            call.leave_queue(e.timestamp)
            self._touch(call)

    def _abandon(self, e: ev.QueueCallerAbandon) -> None:
        # Also fires on timeout and on an emptied queue; the CtiQueueResult UserEvent that the
        # dialplan raises after Queue() says which (a caller who hung up raises none).
        call = self.calls.get(e.uniqueid)
        if call is not None:
            call.leave_queue(e.timestamp)
            self._touch(call)

    def _agent_called(self, e: ev.AgentCalled) -> None:
        call = self.calls.get(e.uniqueid)
        if call is None:
            return
        offer = Offer(e.member_name, e.interface, e.timestamp, dest_uniqueid=e.dest_uniqueid)
        call.offers.append(offer)
        self._touch(call)
        self._publish(CallEventKind.AGENT_RINGING, call, offer=offer)

    def _end_offer(self, call: LiveCall, interface: str, ts: float, result: OfferResult) -> None:
        offer = call.open_offer(interface)
        if offer is not None:
            offer.result, offer.ended_at = result, ts
            self._publish(CallEventKind.AGENT_RING_ENDED, call, offer=offer)

    def _agent_rna(self, e: ev.AgentRingNoAnswer) -> None:
        call = self.calls.get(e.uniqueid)
        if call is None:
            return
        call.ring_no_answer += 1
        self._end_offer(call, e.interface, e.timestamp, OfferResult.NO_ANSWER)
        self._touch(call)

    def _agent_dump(self, e: ev.AgentDump) -> None:
        call = self.calls.get(e.uniqueid)
        if call is not None:
            self._end_offer(call, e.interface, e.timestamp, OfferResult.REJECTED)
            self._touch(call)

    def _agent_connect(self, e: ev.AgentConnect) -> None:
        call = self.calls.get(e.uniqueid)
        if call is None:
            return
        call.leave_queue(e.timestamp)
        call.answered_at = e.timestamp
        call.agent = e.member_name
        call.queue = e.queue
        self._end_offer(call, e.interface, e.timestamp, OfferResult.ANSWERED)
        for offer in call.offers:  # ringall: the others lose the call
            if offer.result == OfferResult.RINGING:
                offer.result, offer.ended_at = OfferResult.LOST, e.timestamp
        self._touch(call)
        self._publish(CallEventKind.CALL_ANSWERED, call)

    def _agent_complete(self, e: ev.AgentComplete) -> None:
        call = self.calls.get(e.uniqueid)
        if call is None:
            return
        call.talk_ended_at = e.timestamp
        call.complete_reason = e.reason
        if "answered_at" in call.inferred:
            # The answer came from queue_log (whole seconds) while we were away: a precise end
            # minus it would be up to a second long, so take Asterisk's own talk figure.
            call.talk_override = float(e.talk_time)
        self._touch(call)
        self._publish(CallEventKind.TALK_ENDED, call)

    def _member(self, e: ev.QueueMemberEvent | ev.QueueMemberRemoved) -> None:
        self._publish(CallEventKind.QUEUE_MEMBER, None, member=e)


def _cid(value: str) -> str:
    # Asterisk writes "<unknown>" for an absent caller ID.
    return "" if value in ("<unknown>", "") else value


def mark_unseen(tracker: CallTracker) -> None:
    """The link went down: no live call has been confirmed by an event since."""
    for call in tracker.calls.values():
        call.seen_since_link = False
