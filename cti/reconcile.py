"""Filling in calls from what Asterisk recorded while we were not listening (pure functions).

Sources, in order of trust: AMI events we saw; Asterisk's queue_log (whole seconds); the steps
our own IVR journaled (a call that never queued is in no queue_log); Asterisk's CDRs (every call
it handled, queued or not, even when our IVR was unreachable; its times to the microsecond); a
live snapshot (CoreShowChannels / QueueStatus, whole seconds). Every field filled from these is
named in `call.inferred`, and such a call's `source` becomes "reconciled". A call seen by
several sources is one record: they are merged on the caller channel's Uniqueid, which is the
call's Linkedid (queue_log's callid, the IVR's agi_uniqueid, the CDR's uniqueid).
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from cti.cdr import CdrCall
from cti.live.model import LiveCall, Offer
from cti.phone import digits
from cti.queuelog import QueueLogEntry
from cti.types import CallOutcome, OfferResult

# queue_log events that end the caller's time in the queue, and where their wait time is.
_EXIT_WAIT_INDEX = {"ABANDON": 2, "EXITWITHTIMEOUT": 2, "EXITEMPTY": 2, "EXITWITHKEY": 3}
_EXIT_STATUS = {"EXITWITHTIMEOUT": "TIMEOUT", "EXITEMPTY": "LEAVEEMPTY"}


def group_by_call(entries: Iterable[QueueLogEntry]) -> dict[str, list[QueueLogEntry]]:
    """queue_log entries per callid, in file order, without queue-wide lines."""
    grouped: dict[str, list[QueueLogEntry]] = defaultdict(list)
    for e in entries:
        if e.callid not in ("NONE", "MANAGER", "REALTIME", ""):
            grouped[e.callid].append(e)
    return dict(grouped)


def call_from_queue_log(entries: list[QueueLogEntry]) -> LiveCall:
    """A record for a call we never saw: everything comes from queue_log."""
    first = entries[0]
    enter = next((e for e in entries if e.event == "ENTERQUEUE"), first)
    call = LiveCall(
        uniqueid=first.callid,
        linkedid=first.callid,
        channel="",
        arrived_at=float(enter.time),
        caller_number=enter.field(1) if enter.event == "ENTERQUEUE" else "",
        seen_since_link=False,
    )
    call.infer("arrived_at")
    apply_queue_log(call, entries)
    return call


def apply_queue_log(call: LiveCall, entries: list[QueueLogEntry]) -> None:
    """Fill what the call's record lacks from its queue_log lines; keep what was observed."""
    for e in entries:
        t = float(e.time)
        if e.event == "ENTERQUEUE":
            call.queue = call.queue or e.queue
            if call.queued_at is None:
                call.queued_at = t
                call.infer("queued_at")
        elif e.event == "DID":
            if not call.dialled_number:
                call.dialled_number = e.field(0)
                call.infer("dialled_number")
        elif e.event == "RINGNOANSWER":
            if not any(o.agent == e.agent and o.result == OfferResult.NO_ANSWER and
                       abs(o.ended_at - t) < 2 for o in call.offers if o.ended_at):  # fmt: skip
                ring = (e.int_field(0) or 0) / 1000.0
                call.offers.append(Offer(e.agent, "", t - ring, t, OfferResult.NO_ANSWER))
                call.ring_no_answer += 1
                call.infer("offers")
        elif e.event == "CONNECT":
            if call.answered_at is None:
                call.answered_at = t
                call.agent = e.agent
                call.queue = e.queue
                call.in_queue_since = None
                hold = e.int_field(0)
                if hold is not None:
                    call.wait_override = float(hold)
                call.infer("answered_at")
        elif e.event in ("COMPLETECALLER", "COMPLETEAGENT"):
            if call.talk_ended_at is None:
                call.talk_ended_at = t
                call.complete_reason = "caller" if e.event == "COMPLETECALLER" else "agent"
                talk = e.int_field(1)
                if talk is not None:  # an end in whole seconds: Asterisk's own talk figure
                    call.talk_override = float(talk)
                call.infer("talk_ended_at")
        elif e.event in ("TRANSFER", "BLINDTRANSFER", "ATTENDEDTRANSFER"):
            if call.talk_ended_at is None:
                call.talk_ended_at = t
                call.complete_reason = "transfer"
                call.infer("talk_ended_at")
        elif e.event in _EXIT_WAIT_INDEX and call.answered_at is None:
            # Asterisk's own wait figure, unless we watched the whole wait ourselves.
            if call.in_queue_since is not None or "queued_at" in call.inferred:
                wait = e.int_field(_EXIT_WAIT_INDEX[e.event])
                if wait is not None:
                    call.wait_override = float(wait)
            call.in_queue_since = None
            if e.event in _EXIT_STATUS and call.queue_status is None:
                call.queue_status = _EXIT_STATUS[e.event]
            call.infer("queue_exit")


def finish_gone(
    call: LiveCall, entries: list[QueueLogEntry], outage_start: float, cdr: CdrCall | None = None
) -> None:
    """Close a call whose channel vanished while we were not listening.

    The end time is when its CDR says the channel hung up; without a CDR, the last thing
    queue_log says about it (the queue exit or the end of the conversation); without either,
    the start of the outage, and a call that was waiting in a queue with no recorded exit is
    DROPPED (Asterisk stopped or crashed).
    """
    apply_queue_log(call, entries)
    if cdr is not None:
        apply_cdr(call, cdr)
        end = max(call.arrived_at, cdr.ended)
    else:
        end = max([outage_start, call.arrived_at, *(float(e.time) for e in entries)])
    had_exit = any(e.event in _EXIT_WAIT_INDEX for e in entries) or any(
        e.event.startswith("COMPLETE") for e in entries
    )
    waiting = call.in_queue_since is not None and call.answered_at is None
    call.finish(end)
    call.infer("ended_at")
    if waiting and not had_exit:
        call.outcome = CallOutcome.DROPPED


@dataclass(frozen=True)
class IvrStepSeen:
    """One step the IVR journaled (ivr_steps): when it started, how long it took, what it did."""

    at: float
    route: str
    menu: str
    step: str
    digits: str
    result: str
    seconds: float


# The IVR keeps a voicemail when the file is over this size (cti/ivr/flow.py, record_message).
_VOICEMAIL_BYTES = 1000


def call_from_ivr(uniqueid: str, steps: list[IvrStepSeen], cdr: CdrCall | None = None) -> LiveCall:
    """A record for a call that began and ended inside the IVR while we were not listening:
    everything comes from the steps the IVR journaled (its `lookup` step carries the caller's
    number, its `incident` step the incident it opened, its voicemail `record` step the size),
    and from its CDR when there is one (the exact arrival and hang-up, the number dialled)."""
    steps = sorted(steps, key=lambda s: s.at)
    first = steps[0]
    lookup = next((s for s in steps if s.step == "lookup"), None)
    call = LiveCall(
        uniqueid=uniqueid,
        linkedid=uniqueid,
        channel="",
        arrived_at=first.at,
        caller_number=lookup.digits if lookup else "",
        seen_since_link=False,
    )
    call.infer("arrived_at")
    apply_ivr(call, steps)
    end = max(s.at + max(s.seconds, 0.0) for s in steps)
    if cdr is not None:
        apply_cdr(call, cdr)
        end = max(cdr.ended, call.arrived_at)
    call.finish(end)
    call.infer("ended_at")
    return call


def apply_ivr(call: LiveCall, steps: list[IvrStepSeen]) -> None:
    """Fill what the call's record lacks from the IVR's steps; keep what was observed."""
    ivr = [s for s in steps if s.route in ("ivr", "voicemail")]
    if not ivr:
        return
    if call.ivr_entered_at is None:
        call.ivr_entered_at = min(s.at for s in ivr)
        call.infer("ivr_entered_at")
    if call.ivr_left_at is None:
        call.ivr_left_at = max(s.at + max(s.seconds, 0.0) for s in ivr)
        call.infer("ivr_left_at")
    incident = next((s.result for s in ivr if s.step == "incident" and s.result), None)
    if incident and not call.incident_number:
        call.incident_number = incident
        call.infer("incident_number")
    for s in ivr:
        if s.step == "record" and not call.voicemail:
            size = s.result.split(" ", 1)[0]
            if digits(size) and int(size) > _VOICEMAIL_BYTES:
                call.voicemail = True
                call.infer("voicemail")


def call_from_cdr(cdr: CdrCall) -> LiveCall:
    """A record for a call only Asterisk's CDR knows (it never reached a queue, and our IVR did
    not see it, e.g. the CTI server was down and the queue turned the caller away)."""
    call = LiveCall(
        uniqueid=cdr.uniqueid,
        linkedid=cdr.linkedid,
        channel=cdr.channel,
        arrived_at=cdr.started,
        caller_number=cdr.caller_number,
        caller_name=cdr.caller_name,
        dialled_number=cdr.did,
        seen_since_link=False,
    )
    call.infer("arrived_at")
    apply_cdr(call, cdr)
    call.finish(cdr.ended)
    call.infer("ended_at")
    return call


def apply_cdr(call: LiveCall, cdr: CdrCall) -> None:
    """Fill what the call's record lacks from its CDR; keep what was observed. The CDR's start
    is the call's real arrival (queue_log's first line is only its queue entry, the IVR's first
    step a moment after the answer)."""
    if "arrived_at" in call.inferred and cdr.started < call.arrived_at:
        call.arrived_at = cdr.started
    for name, value in (
        ("channel", cdr.channel),
        ("caller_number", cdr.caller_number),
        ("caller_name", cdr.caller_name),
        ("dialled_number", cdr.did),
    ):
        if value and not getattr(call, name):
            setattr(call, name, value)
            if name != "channel":
                call.infer(name)
    if cdr.linkedid and call.linkedid == call.uniqueid != cdr.linkedid:
        call.linkedid = cdr.linkedid
    if cdr.queue_status and call.queue_status is None and call.queued_at is None:
        # Queue() turned the caller away before they joined (JOINEMPTY, FULL ...): no queue_log.
        # (The queue stays unset, as in a record made from AMI events: the caller never joined.)
        call.queue_status = cdr.queue_status
        call.infer("queue_status")
