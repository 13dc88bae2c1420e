"""The call tracker: the owner of live call state.

It consumes typed AMI events in order, keeps one LiveCall per call keyed by the caller channel's
Uniqueid (with an explicit Linkedid map for the other legs), moves each call along its state
table, marks changed calls for the journal writer, and publishes what happened on the bus
(CallEvent: arrived, queued, agent ringing, answered, talk ended, ended), so that nothing live
can disagree with the journal.
"""

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cti.ami import events as ev
from cti.ami.responses import cid
from cti.asterisks import DEFAULT_ASTERISK
from cti.live.bus import Bus, CallEvent, CallEventKind, QueueChanged
from cti.live.model import (
    CallState,
    LiveCall,
    Offer,
    OverflowKind,
    OverflowStep,
    StepResult,
    offer_view,
    view_of,
)
from cti.phone import digits
from cti.types import OfferResult

logger = logging.getLogger(__name__)
# The interface of an offer made by a blind transfer (the dialplan dials the colleague's phone).
TRANSFER = "transfer"


class CallTracker:
    """Turns the AMI event stream into call records."""

    def __init__(
        self,
        inbound_contexts: Iterable[str],
        bus: Bus | None = None,
        clock: Callable[[], float] = time.time,
        asterisk: str = DEFAULT_ASTERISK,
    ):
        self.inbound_contexts = frozenset(inbound_contexts)
        # The Asterisk whose events these are: every call made or adopted here is stamped with it.
        self.asterisk = asterisk
        self.bus = bus or Bus()
        self.clock = clock
        self.calls: dict[str, LiveCall] = {}  # caller Uniqueid -> call
        self.by_linkedid: dict[str, LiveCall] = {}
        self._created: dict[str, float] = {}  # Uniqueid -> Newchannel time, until hang-up
        self._dirty: dict[str, LiveCall] = {}
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
            ev.Hold: self._hold,
            ev.Unhold: self._unhold,
            ev.AttendedTransfer: self._attended_transfer,
        }

    # -- plumbing -------------------------------------------------------------------------------

    def handle(self, event: ev.AmiEvent) -> None:
        """Apply one event. Unknown event types are ignored."""
        handler = self._handlers.get(type(event))
        if handler is not None:
            self.last_event_at = event.timestamp
            handler(event)

    def _publish(self, kind: CallEventKind, call: LiveCall, offer: Offer | None = None) -> None:
        now = self.last_event_at or self.clock()
        self.bus.publish(
            CallEvent(kind, view_of(call, now), offer_view(offer) if offer is not None else None)
        )

    def waiting_in(self, queue: str) -> int:
        """Callers in `queue` now."""
        return sum(1 for c in self.calls.values() if c.queue == queue and c.waiting)

    def _queue_changed(self, queue: str | None) -> None:
        if queue:
            self.bus.publish(QueueChanged(queue, self.waiting_in(queue)))

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
        call.asterisk = self.asterisk
        self.calls[call.uniqueid] = call
        self.by_linkedid.setdefault(call.linkedid, call)

    def end_reconciled(self, call: LiveCall) -> None:
        """A call found to have ended while we were not listening: store it and tell listeners."""
        call.asterisk = self.asterisk
        self._dirty[call.uniqueid] = call
        self.forget(call)
        logger.info(
            "call reconciled linkedid=%s outcome=%s inferred=%s",
            call.linkedid,
            call.outcome,
            ",".join(sorted(call.inferred)),
        )
        self._publish(CallEventKind.CALL_ENDED, call)
        self._queue_changed(call.queue)

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
                self._new_call(e, cid(e.caller_num), cid(e.caller_name), e.exten)
            return
        if e.application == "AGI":
            if call.ivr_entered_at is None:
                call.ivr_entered_at = e.timestamp
            call.move(CallState.IVR)
            self._touch(call)
        elif call.in_ivr:
            call.ivr_left_at = e.timestamp
            call.move(CallState.DIALPLAN)
            self._touch(call)
            self._publish(CallEventKind.CALL_CHANGED, call)
        elif call.state == CallState.RINGING and call.in_queue_since is None:
            # Out of the queue while a phone still rang (a timeout): the dialplan goes on.
            call.move(CallState.DIALPLAN)
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
        was_waiting = call.waiting
        # Still talking: the caller's Hangup came before app_queue's AgentComplete, which then
        # finds no call. The talk ends here, and the agent's wrap-up starts from it (seen in a
        # test: the agent went from the call straight back to ready).
        talk_ends = call.talking and bool(call.agent)
        call.finish(e.timestamp)
        self._touch(call)
        self.forget(call)
        logger.debug("call ended linkedid=%s outcome=%s", call.linkedid, call.outcome)
        if talk_ends:
            self._publish(CallEventKind.TALK_ENDED, call)
        self._publish(CallEventKind.CALL_ENDED, call)
        if was_waiting:
            self._queue_changed(call.queue)

    def _user_event(self, e: ev.UserEvent) -> None:
        # UserEvents our dialplan and IVR raise on the caller's channel (see asterisk-conf);
        # Cti{Overflow,Transfer}Answered come from the called party's channel and name the call.
        f = e.fields
        on_callee = e.name in ("CtiOverflowAnswered", "CtiTransferAnswered") or (
            # An attended transfer's consultation leg names the call it belongs to.
            e.name in ("CtiTransferTo", "CtiTransferResult") and "Call" in f
        )
        if on_callee:
            # The Linkedid is the call's too when the variable did not reach the new channel.
            call = self.calls.get(f.get("Call", "")) or self.by_linkedid.get(e.linkedid)
        else:
            call = self.calls.get(e.uniqueid)
        if call is None:
            return
        if e.name == "CtiQueueResult":
            call.queue_status = f.get("Status") or None
        elif e.name == "CtiIncident":
            call.incident_number = f.get("Number") or call.incident_number
        elif e.name == "CtiIvr":
            call.incident_number = f.get("Incident") or call.incident_number
            call.ivr_path = f.get("Path") or call.ivr_path
            call.language = f.get("Lang") or call.language
            if f.get("Voicemail") == "1":
                call.voicemail = True
        elif e.name == "CtiRecording":
            name = f.get("File", "")
            # Only the name our dialplan gives (calls/<this call's uniqueid>.wav) is believed.
            call.recording = name if name == f"calls/{call.uniqueid}.wav" else call.recording
        elif e.name == "CtiTransferTo":
            self._transfer_to(call, f, e.timestamp)
            return
        elif e.name == "CtiTransferAnswered":
            self._transfer_answered(call, e.timestamp)
            return
        elif e.name == "CtiTransferResult":
            status = f.get("Status") or ""
            if f.get("Mode") == "attended" and call.consulting:
                # The consultation leg is over; a completed transfer was seen before (its
                # AttendedTransfer event), so a colleague still consulted here was cancelled.
                # If they had answered, the call never became theirs: their page is told.
                colleague, call.consulting = call.consulting, None
                talked = next((o for o in reversed(call.offers) if o.interface == TRANSFER
                               and o.agent == colleague), None)  # fmt: skip
                if talked is not None and talked.result == OfferResult.ANSWERED:
                    talked.result = OfferResult.LOST
                    self._publish(CallEventKind.AGENT_RING_ENDED, call, offer=talked)
            if status != "ANSWER":
                missed = OfferResult.NO_ANSWER if status == "NOANSWER" else OfferResult.REJECTED
                self._end_offer(call, TRANSFER, e.timestamp, missed)
        elif e.name == "CtiTransfer":
            call.transferred_to = f.get("To") or "?"
        elif e.name in ("CtiOverflow", "CtiCallback"):
            call.overflowed = True
            if e.name == "CtiCallback":
                kind, result = OverflowKind.CALLBACK, StepResult.REQUESTED
            else:
                raw = f.get("Kind", "mobile")
                if raw not in OverflowKind.__members__.values():
                    logger.warning("CtiOverflow with kind %r linkedid=%s", raw, call.linkedid)
                    raw = "mobile"
                kind, result = OverflowKind(raw), StepResult.DIALLING
            to = f.get("To") or f.get("Number") or "?"
            call.overflows.append(OverflowStep(kind, to, e.timestamp, None, result))
        elif e.name == "CtiCallbackOf":
            call.callback_of = f.get("Call") or None
        elif e.name == "CtiOverflowAnswered" and call.overflows:
            last = call.overflows[-1]
            last.answered_at, last.result = e.timestamp, StepResult.ANSWERED
        elif e.name == "CtiOverflowResult" and call.overflows:
            last = call.overflows[-1]
            if last.result == StepResult.DIALLING:
                last.result = StepResult.of_dial(f.get("Status") or "failed")
        elif e.name == "CtiSurvey":
            score = f.get("Score", "")
            call.survey_score = int(score) if digits(score) else call.survey_score
        else:
            return
        self._touch(call)
        self._publish(CallEventKind.CALL_CHANGED, call)

    def _hold(self, e: ev.Hold) -> None:
        # Raised on the channel that held: the agent's phone (any leg of the call's Linkedid).
        call = self._call_of(e)
        if call is not None and call.talking and call.hold(e.timestamp):
            logger.debug("call on hold linkedid=%s by %s", call.linkedid, e.channel)
            self._touch(call)
            self._publish(CallEventKind.CALL_CHANGED, call)

    def _unhold(self, e: ev.Unhold) -> None:
        call = self._call_of(e)
        if call is not None and call.unhold(e.timestamp):
            self._touch(call)
            self._publish(CallEventKind.CALL_CHANGED, call)

    def _transfer_to(self, call: LiveCall, f: Mapping[str, str], ts: float) -> None:
        # The agent page blind-transferred the caller (asterisk-conf [cti-transfer]), or started
        # an attended one ([cti-atxfer]: the agent keeps the caller until it completes).
        kind, to = f.get("Kind", ""), f.get("To", "")
        call.transferred_to = f"{kind}:{to}" if kind else to or "?"
        ends_part = False
        if f.get("Mode") == "attended":
            call.consulting = to or None
        else:
            # The agent's part ends at the transfer, as in an attended one: not at app_queue's
            # AgentComplete, which under load comes after the colleague has answered.
            ends_part = call.leg_since is not None and bool(call.agent)
            call.end_leg(ts)
        self._touch(call)
        self._publish(CallEventKind.CALL_CHANGED, call)
        if ends_part:
            self._publish(CallEventKind.TALK_ENDED, call)
        if kind == "agent" and to:
            # The colleague's phone rings: an offer, so their page pops with the incident.
            offer = Offer(to, TRANSFER, ts)
            call.offers.append(offer)
            self._publish(CallEventKind.AGENT_RINGING, call, offer=offer)

    def _transfer_answered(self, call: LiveCall, ts: float) -> None:
        offer = call.open_offer(TRANSFER)
        if offer is None:
            return
        offer.result, offer.ended_at = OfferResult.ANSWERED, ts
        if call.consulting == offer.agent:
            # An attended transfer: the colleague talks to the agent, not yet to the caller.
            self._touch(call)
            self._publish(CallEventKind.AGENT_RING_ENDED, call, offer=offer)
            return
        call.start_leg(offer.agent, ts, "transfer")
        call.talk_ended_at = None
        call.move(CallState.TALKING)
        self._touch(call)
        self._publish(CallEventKind.AGENT_RING_ENDED, call, offer=offer)
        self._publish(CallEventKind.CALL_ANSWERED, call)

    def _attended_transfer(self, e: ev.AttendedTransfer) -> None:
        # The agent hung up (or completed from the page) while consulting: the caller is now the
        # colleague's. Their part starts here; the agent's ends (their page gets "ended").
        call = self.calls.get(e.transferee_uniqueid) or self.by_linkedid.get(e.transferee_linkedid)
        if call is None or call.consulting is None or e.result != "Success":
            return
        target, call.consulting = call.consulting, None
        # The caller waited on hold during the consultation; joined to the colleague, they are
        # not (Asterisk sends no Unhold for a transferee moved into the colleague's bridge).
        call.unhold(e.timestamp)
        if call.agent != target and call.leg_since is not None:
            call.end_leg(e.timestamp)
            self._publish(CallEventKind.TALK_ENDED, call)
        call.start_leg(target, e.timestamp, "transfer")
        call.talk_ended_at = None
        call.move(CallState.TALKING)
        self._touch(call)
        self._publish(CallEventKind.CALL_ANSWERED, call)

    # -- queue events ---------------------------------------------------------------------------

    def _join(self, e: ev.QueueCallerJoin) -> None:
        call = self.calls.get(e.uniqueid)
        if call is None:
            # A call that reached a queue without passing an inbound context (an internal
            # transfer, a misconfigured context): it still gets a record.
            call = self._new_call(e, cid(e.caller_num), cid(e.caller_name), "")
        if call.queued_at is None:
            call.queued_at = e.timestamp
        call.queue = e.queue
        call.in_queue_since = e.timestamp
        call.queue_status = None
        call.move(CallState.WAITING)
        self._touch(call)
        self._publish(CallEventKind.CALL_QUEUED, call)
        self._queue_changed(call.queue)

    def _leave(self, e: ev.QueueCallerLeave) -> None:
        call = self.calls.get(e.uniqueid)
        if call is not None:
            call.leave_queue(e.timestamp)
            # Asterisk sends QueueCallerLeave just before AgentConnect: a call whose phone rings
            # stays "ringing" until the answer (or the ring's end) says where it went.
            if call.state != CallState.RINGING:
                call.move(CallState.DIALPLAN)
            self._touch(call)
            self._publish(CallEventKind.CALL_CHANGED, call)
            self._queue_changed(call.queue)

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
        known = call.open_offer(e.interface)
        if known is not None and known.dest_uniqueid == e.dest_uniqueid:
            return  # already found ringing in the snapshot after a (re)connect (ring_seen)
        offer = Offer(e.member_name, e.interface, e.timestamp, dest_uniqueid=e.dest_uniqueid)
        call.offers.append(offer)
        call.move(CallState.RINGING)
        self._touch(call)
        self._publish(CallEventKind.AGENT_RINGING, call, offer=offer)

    def ring_seen(
        self, uniqueid: str, agent: str, interface: str, dest_uniqueid: str, at: float
    ) -> bool:
        """A ring found under way in a snapshot after a (re)connect or a takeover, whose
        AgentCalled nobody heard: open its offer and publish it (the agent's pop)."""
        call = self.calls.get(uniqueid)
        if call is None or call.state not in (CallState.WAITING, CallState.RINGING):
            return False
        if call.agent or call.answered_at is not None or call.open_offer(interface) is not None:
            return False
        offer = Offer(agent, interface, at, dest_uniqueid=dest_uniqueid)
        call.offers.append(offer)
        call.move(CallState.RINGING)
        self._touch(call)
        self._publish(CallEventKind.AGENT_RINGING, call, offer=offer)
        return True

    def _end_offer(self, call: LiveCall, interface: str, ts: float, result: OfferResult) -> None:
        offer = call.open_offer(interface)
        if offer is not None:
            offer.result, offer.ended_at = result, ts
            if (
                result != OfferResult.ANSWERED
                and call.state == CallState.RINGING
                and not any(o.result == OfferResult.RINGING for o in call.offers)
            ):
                in_queue = call.in_queue_since is not None
                call.move(CallState.WAITING if in_queue else CallState.DIALPLAN)
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
        # A caller transferred to a queue is answered a second time: one call, a second leg.
        first = call.answered_at is None
        if first:
            call.answered_at = e.timestamp
        call.start_leg(e.member_name, e.timestamp, "queue" if first else "transfer")
        call.talk_ended_at = None
        call.queue = e.queue
        self._end_offer(call, e.interface, e.timestamp, OfferResult.ANSWERED)
        for offer in call.offers:  # ringall: the others lose the call
            if offer.result == OfferResult.RINGING:
                offer.result, offer.ended_at = OfferResult.LOST, e.timestamp
        call.move(CallState.TALKING)
        self._touch(call)
        self._publish(CallEventKind.CALL_ANSWERED, call)

    def _agent_complete(self, e: ev.AgentComplete) -> None:
        call = self.calls.get(e.uniqueid)
        if call is None:
            return
        if call.talking and call.agent and e.member_name != call.agent:
            # The queue's agent transferred the caller (attended) to a colleague who talks now:
            # the call's talk goes on; only that agent's part was over (already recorded).
            self._touch(call)
            return
        # A blind transfer ended this agent's part (and said so) already.
        told = call.agent == e.member_name and call.leg_since is None and bool(call.transferred_to)
        call.talk_ended_at = e.timestamp
        call.unhold(e.timestamp)
        if call.agent == e.member_name:
            call.end_leg(e.timestamp)
        call.complete_reason = e.reason
        if "answered_at" in call.inferred:
            # The answer came from queue_log (whole seconds) while we were away: a precise end
            # minus it would be up to a second long, so take Asterisk's own talk figure.
            call.talk_override = float(e.talk_time)
        if call.state == CallState.TALKING:
            call.move(CallState.DIALPLAN)
        self._touch(call)
        if not told:
            self._publish(CallEventKind.TALK_ENDED, call)


def mark_unseen(tracker: CallTracker) -> None:
    """The link went down: no live call has been confirmed by an event since."""
    for call in tracker.calls.values():
        call.seen_since_link = False
