"""A live call as the tracker holds it: its explicit state, its offers, and its journal row.

Readers ask a call what it is doing (`call.state`) instead of re-deriving it from timestamps;
only the tracker moves a call from one state to another, along `TRANSITIONS`.
"""

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, overload

from cti.asterisks import DEFAULT_ASTERISK
from cti.types import QUEUE_STATUS_OUTCOME, CallOutcome, OfferResult, RecordSource

logger = logging.getLogger(__name__)


class CallState(StrEnum):
    """What the caller is doing now."""

    DIALPLAN = "dialplan"  # in the dialplan between steps (arrived, left a queue, overflowing)
    IVR = "ivr"  # in our FastAGI (menus, incident read-back, survey)
    WAITING = "waiting"  # in a queue, no agent's phone ringing
    RINGING = "ringing"  # in a queue, one or more agents' phones ringing
    TALKING = "talking"  # an agent answered; until the agent's part ends (AgentComplete)
    ENDED = "ended"  # the caller's channel hung up


S = CallState
# Asterisk is the truth: a move outside this table is still made (and logged, and counted), since
# events can be lost in an outage; the replayed real sessions make none (tests/unit/test_replay).
TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    # DIALPLAN -> TALKING: a colleague answered a blind transfer (CtiTransferAnswered).
    S.DIALPLAN: frozenset({S.IVR, S.WAITING, S.TALKING, S.ENDED}),
    S.IVR: frozenset({S.DIALPLAN, S.WAITING, S.ENDED}),
    # QueueCallerLeave comes just before AgentConnect; a ringing call stays ringing through it.
    S.WAITING: frozenset({S.RINGING, S.TALKING, S.DIALPLAN, S.ENDED}),
    S.RINGING: frozenset({S.WAITING, S.TALKING, S.DIALPLAN, S.ENDED}),
    # TALKING -> IVR: the agent hung up and the caller stays on for the survey (6.3.4).
    S.TALKING: frozenset({S.DIALPLAN, S.WAITING, S.IVR, S.ENDED}),
    S.ENDED: frozenset(),
}
IN_QUEUE = frozenset({S.WAITING, S.RINGING})


class StateCounter:
    """How many moves outside TRANSITIONS were made (for /healthz and the replay tests)."""

    unexpected = 0


@overload
def to_dt(ts: float) -> datetime: ...
@overload
def to_dt(ts: None) -> None: ...
@overload
def to_dt(ts: float | None) -> datetime | None: ...


def to_dt(ts: float | None) -> datetime | None:
    """Unix seconds to an aware UTC datetime."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def to_ts(dt: datetime | None) -> float | None:
    """An aware datetime to Unix seconds."""
    return None if dt is None else dt.timestamp()


@dataclass
class Offer:
    """One offer of the call to an agent (AgentCalled ... answered / no answer)."""

    agent: str
    interface: str
    at: float
    ended_at: float | None = None
    result: OfferResult = OfferResult.RINGING
    dest_uniqueid: str = ""


class OverflowKind(StrEnum):
    """Where an overflow step moved the caller."""

    MOBILE = "mobile"  # an on-call engineer's mobile
    IM = "im"  # an IM responder who took the call from a take link
    CALLBACK = "callback"  # a call-back was booked


class StepResult(StrEnum):
    """How an overflow step went (the Dial statuses, lower case, and our own)."""

    DIALLING = "dialling"
    ANSWERED = "answered"
    REQUESTED = "requested"  # a call-back booked
    NOANSWER = "noanswer"
    BUSY = "busy"
    CONGESTION = "congestion"
    CHANUNAVAIL = "chanunavail"
    CANCEL = "cancel"
    FAILED = "failed"  # any other status

    @classmethod
    def of_dial(cls, status: str) -> "StepResult":
        """The result a DIALSTATUS means."""
        try:
            return cls(status.lower())
        except ValueError:
            return cls.FAILED


@dataclass
class OverflowStep:
    """One move of the caller out of the queue (journaled on the call's `overflows`)."""

    kind: OverflowKind
    to: str
    at: float
    answered_at: float | None = None
    result: StepResult = StepResult.DIALLING

    @property
    def over(self) -> bool:
        """The attempt is over (and its target free again), unless answered and still talking."""
        return self.result not in (StepResult.DIALLING, StepResult.ANSWERED)

    def as_json(self) -> dict[str, Any]:
        """The journal's form (ISO times)."""
        return {
            "kind": self.kind.value,
            "to": self.to,
            "at": to_dt(self.at).isoformat(),
            "answered_at": to_dt(self.answered_at).isoformat() if self.answered_at else None,
            "result": self.result.value,
        }

    @classmethod
    def from_state(cls, raw: dict[str, Any]) -> "OverflowStep":
        """Back from the journal's live state (Unix times)."""
        return cls(
            OverflowKind(raw["kind"]),
            str(raw["to"]),
            float(raw["at"]),
            raw.get("answered_at"),
            StepResult(raw.get("result", "dialling")),
        )


@dataclass
class LiveCall:
    """A call from its first event to its hang-up. Times are Unix seconds (UTC)."""

    uniqueid: str  # the caller channel's Uniqueid: the record's key, and queue_log's callid
    linkedid: str
    channel: str
    arrived_at: float
    caller_number: str = ""
    caller_name: str = ""
    dialled_number: str = ""
    ivr_entered_at: float | None = None
    ivr_left_at: float | None = None
    queued_at: float | None = None
    answered_at: float | None = None
    talk_ended_at: float | None = None
    ended_at: float | None = None
    queue: str | None = None
    agent: str | None = None
    offers: list[Offer] = field(default_factory=list)
    ring_no_answer: int = 0
    queue_status: str | None = None
    complete_reason: str | None = None
    hangup_cause: int | None = None
    incident_number: str | None = None
    ivr_path: str | None = None
    language: str | None = None
    survey_score: int | None = None
    voicemail: bool = False
    overflowed: bool = False
    overflows: list[OverflowStep] = field(default_factory=list)
    callback_of: str | None = None
    transferred_to: str | None = None
    outcome: CallOutcome | None = None
    source: RecordSource = RecordSource.AMI
    inferred: set[str] = field(default_factory=set)
    # Working state.
    in_queue_since: float | None = None
    wait_accum: float = 0.0
    wait_override: float | None = None  # Asterisk's own figure when reconciled from queue_log
    talk_override: float | None = None
    seen_since_link: bool = True
    # The Asterisk the call lives on (its Uniqueid is unique there only).
    asterisk: str = DEFAULT_ASTERISK
    state: CallState = CallState.DIALPLAN
    # Hold (Asterisk's Hold/Unhold events on any leg of the call, while an agent talks).
    recording: str | None = None  # calls/<uniqueid>.wav, when the dialplan started MixMonitor
    # Each agent's part of an answered call (more than one after a transfer): agent, from, to.
    legs: list[dict[str, Any]] = field(default_factory=list)
    leg_since: float | None = None
    # An attended transfer under way: the colleague consulted (their page popped); their part
    # starts when the transfer completes (AMI AttendedTransfer), not when they answer.
    consulting: str | None = None
    holds: int = 0
    hold_accum: float = 0.0
    on_hold_since: float | None = None

    def move(self, to: CallState) -> None:
        """Change state (a no-op if already there); a move outside TRANSITIONS is logged."""
        if to == self.state:
            return
        if to not in TRANSITIONS[self.state]:
            StateCounter.unexpected += 1
            logger.warning(
                "call state %s -> %s is not in the table linkedid=%s", self.state, to, self.linkedid
            )
        self.state = to

    @property
    def in_ivr(self) -> bool:
        """In our FastAGI now."""
        return self.state == CallState.IVR

    @property
    def waiting(self) -> bool:
        """In a queue now (ringing or not)."""
        return self.state in IN_QUEUE

    @property
    def talking(self) -> bool:
        """Talking to an agent now."""
        return self.state == CallState.TALKING

    def waited(self, now: float) -> float:
        """Seconds in queues so far, including the current stint."""
        if self.wait_override is not None:
            return self.wait_override
        current = max(0.0, now - self.in_queue_since) if self.in_queue_since is not None else 0.0
        return self.wait_accum + current

    def rebuild_state(self) -> None:
        """The state of a call rebuilt from a journal row, queue_log or a snapshot (not events)."""
        if self.ended_at is not None:
            self.state = CallState.ENDED
        elif self.answered_at is not None and self.talk_ended_at is None:
            self.state = CallState.TALKING
        elif self.in_queue_since is not None:
            ringing = any(o.result == OfferResult.RINGING for o in self.offers)
            self.state = CallState.RINGING if ringing else CallState.WAITING
        elif self.state in IN_QUEUE or self.state == CallState.TALKING:
            self.state = CallState.DIALPLAN

    def infer(self, name: str) -> None:
        """Note that field `name` was inferred (snapshot, queue_log), not observed live."""
        self.inferred.add(name)
        self.source = RecordSource.RECONCILED

    @property
    def live(self) -> bool:
        """True until the caller's channel hangs up."""
        return self.ended_at is None

    def open_offer(self, interface: str) -> Offer | None:
        """The newest offer to `interface` still ringing."""
        for offer in reversed(self.offers):
            if offer.interface == interface and offer.result == OfferResult.RINGING:
                return offer
        return None

    def leave_queue(self, ts: float) -> None:
        """Close the current queue visit at `ts`."""
        if self.in_queue_since is not None:
            self.wait_accum += max(0.0, ts - self.in_queue_since)
            self.in_queue_since = None

    def hold(self, ts: float) -> bool:
        """The call went on hold at `ts`; False if it already was (or no agent talks)."""
        if self.on_hold_since is not None or self.answered_at is None:
            return False
        self.on_hold_since = ts
        self.holds += 1
        return True

    def unhold(self, ts: float) -> bool:
        """The call came off hold at `ts`; False if it was not on hold."""
        if self.on_hold_since is None:
            return False
        self.hold_accum += max(0.0, ts - self.on_hold_since)
        self.on_hold_since = None
        return True

    def start_leg(self, agent: str, ts: float, via: str) -> None:
        """`agent` starts talking to the caller at `ts` (the previous agent's part ends)."""
        self.end_leg(ts)
        self.agent = agent
        self.leg_since = ts
        self.legs.append({"agent": agent, "via": via, "from": ts, "to": None})

    def end_leg(self, ts: float) -> None:
        """The current agent's part ends at `ts`."""
        if self.leg_since is not None and self.legs:
            self.legs[-1]["to"] = ts
        self.leg_since = None

    def held(self, now: float) -> float:
        """Seconds on hold so far, the current hold included."""
        current = max(0.0, now - self.on_hold_since) if self.on_hold_since is not None else 0.0
        return self.hold_accum + current

    @property
    def hold_seconds(self) -> float | None:
        """Seconds on hold (part of talk_seconds, which runs from answer to the talk's end);
        None if no agent answered."""
        if self.answered_at is None:
            return None
        return round(self.hold_accum, 6)

    def finish(self, ts: float) -> None:
        """The caller's channel is gone: settle times and the outcome."""
        self.ended_at = ts
        self.unhold(ts)
        self.end_leg(ts)
        self.leave_queue(ts)
        if self.in_ivr and self.ivr_left_at is None:
            self.ivr_left_at = ts
        self.move(CallState.ENDED)
        if self.answered_at is not None and self.talk_ended_at is None:
            self.talk_ended_at = ts
        for offer in self.offers:
            if offer.result == OfferResult.RINGING:
                offer.result, offer.ended_at = OfferResult.LOST, ts
        if self.outcome is None:
            self.outcome = self.decide_outcome()

    def decide_outcome(self) -> CallOutcome:
        """The outcome from what was observed (the order matters: see CallOutcome)."""
        if self.answered_at is not None:
            return CallOutcome.ANSWERED
        if self.queue_status in QUEUE_STATUS_OUTCOME:
            return QUEUE_STATUS_OUTCOME[self.queue_status]
        if self.overflowed:
            return CallOutcome.OVERFLOWED
        if self.transferred_to:
            return CallOutcome.TRANSFERRED
        if self.voicemail:
            return CallOutcome.VOICEMAIL
        if self.queued_at is not None:
            return CallOutcome.ABANDONED
        return CallOutcome.ENDED_IN_IVR

    @property
    def wait_seconds(self) -> float | None:
        """Seconds spent waiting in queues (None if the call never queued)."""
        if self.wait_override is not None:
            return self.wait_override
        if self.queued_at is None:
            return None
        return round(self.wait_accum, 6)

    @property
    def talk_seconds(self) -> float | None:
        """Seconds from answer to the end of the conversation (None if not answered)."""
        if self.talk_override is not None:
            return self.talk_override
        if self.answered_at is None or self.talk_ended_at is None:
            return None
        return round(max(0.0, self.talk_ended_at - self.answered_at), 6)

    def to_row(self, now: float) -> dict[str, Any]:
        """The journal row (calls table) for this call."""
        return {
            "asterisk": self.asterisk,
            "uniqueid": self.uniqueid,
            "linkedid": self.linkedid,
            "channel": self.channel,
            "caller_number": self.caller_number,
            "caller_name": self.caller_name,
            "dialled_number": self.dialled_number,
            "arrived_at": to_dt(self.arrived_at),
            "ivr_entered_at": to_dt(self.ivr_entered_at),
            "ivr_left_at": to_dt(self.ivr_left_at),
            "queued_at": to_dt(self.queued_at),
            "answered_at": to_dt(self.answered_at),
            "talk_ended_at": to_dt(self.talk_ended_at),
            "ended_at": to_dt(self.ended_at),
            "queue": self.queue,
            "agent": self.agent,
            "offers": [_offer_json(o) for o in self.offers],
            "overflows": [o.as_json() for o in self.overflows],
            "callback_of": self.callback_of,
            "ring_no_answer": self.ring_no_answer,
            "outcome": self.outcome.value if self.outcome else None,
            "queue_status": self.queue_status,
            "complete_reason": self.complete_reason,
            "hangup_cause": self.hangup_cause,
            "wait_seconds": self.wait_seconds if self.ended_at is not None else None,
            "talk_seconds": self.talk_seconds if self.ended_at is not None else None,
            "hold_seconds": self.hold_seconds if self.ended_at is not None else None,
            "legs": [_leg_json(leg) for leg in self.legs],
            "holds": self.holds,
            "incident_number": self.incident_number,
            "ivr_path": self.ivr_path,
            "language": self.language,
            "survey_score": self.survey_score,
            "source": self.source.value,
            "inferred": sorted(self.inferred),
            "live_state": None if self.ended_at is not None else self._live_state(),
            "updated_at": to_dt(now),
        }

    def _live_state(self) -> dict[str, Any]:
        return {
            "in_queue_since": self.in_queue_since,
            "wait_accum": self.wait_accum,
            "state": self.state.value,
            "voicemail": self.voicemail,
            "overflowed": self.overflowed,
            "overflows": [asdict(o) for o in self.overflows],
            "transferred_to": self.transferred_to,
            "offers": [asdict(o) for o in self.offers],
            "hold_accum": self.hold_accum,
            "on_hold_since": self.on_hold_since,
            "recording": self.recording,
            "legs": self.legs,
            "leg_since": self.leg_since,
            # Asterisk's own figures (queue_log) of a call rebuilt after a gap: a process that
            # resumes the call must not recount them from the wait it never watched.
            "wait_override": self.wait_override,
            "talk_override": self.talk_override,
        }

    @classmethod
    def from_row(cls, row: Any) -> "LiveCall":
        """Resume a call that a previous server process left open in the journal."""
        state: dict[str, Any] = row.live_state or {}
        call = cls(
            uniqueid=row.uniqueid,
            linkedid=row.linkedid,
            channel=row.channel,
            arrived_at=to_ts(row.arrived_at) or 0.0,
            caller_number=row.caller_number,
            caller_name=row.caller_name,
            dialled_number=row.dialled_number,
            ivr_entered_at=to_ts(row.ivr_entered_at),
            ivr_left_at=to_ts(row.ivr_left_at),
            queued_at=to_ts(row.queued_at),
            answered_at=to_ts(row.answered_at),
            talk_ended_at=to_ts(row.talk_ended_at),
            queue=row.queue,
            agent=row.agent,
            ring_no_answer=row.ring_no_answer,
            queue_status=row.queue_status,
            complete_reason=row.complete_reason,
            incident_number=row.incident_number,
            ivr_path=row.ivr_path,
            language=row.language,
            survey_score=row.survey_score,
            callback_of=row.callback_of,
            source=RecordSource(row.source),
            inferred=set(row.inferred or []),
            in_queue_since=state.get("in_queue_since"),
            wait_accum=float(state.get("wait_accum", 0.0)),
            wait_override=state.get("wait_override"),
            talk_override=state.get("talk_override"),
            voicemail=bool(state.get("voicemail", False)),
            overflowed=bool(state.get("overflowed", False)),
            overflows=[OverflowStep.from_state(o) for o in state.get("overflows", [])],
            transferred_to=state.get("transferred_to"),
            hangup_cause=row.hangup_cause,
            seen_since_link=False,
            holds=row.holds or 0,
            hold_accum=float(state.get("hold_accum", 0.0)),
            on_hold_since=state.get("on_hold_since"),
            recording=state.get("recording"),
            legs=list(state.get("legs", [])),
            leg_since=state.get("leg_since"),
            asterisk=row.asterisk,
        )
        call.offers = [
            Offer(**{**o, "result": OfferResult(o["result"])}) for o in state.get("offers", [])
        ]
        if "state" in state:
            call.state = CallState(state["state"])
        else:  # a row written before states were explicit
            call.state = CallState.IVR if state.get("in_ivr") else CallState.DIALPLAN
            call.rebuild_state()
        return call


def _leg_json(leg: dict[str, Any]) -> dict[str, Any]:
    start, end = leg["from"], leg.get("to")
    return {
        "agent": leg["agent"],
        "via": leg["via"],
        "answered_at": to_dt(start).isoformat(),
        "ended_at": to_dt(end).isoformat() if end is not None else None,
        "talk_seconds": round(max(0.0, end - start), 3) if end is not None else None,
    }


def _offer_json(o: Offer) -> dict[str, Any]:
    ended = to_dt(o.ended_at)
    return {
        "agent": o.agent,
        "interface": o.interface,
        "at": to_dt(o.at).isoformat(),
        "ended_at": ended.isoformat() if ended else None,
        "result": o.result.value,
    }


@dataclass(frozen=True, slots=True)
class OfferView:
    """An offer of a call to an agent, as plain data."""

    agent: str
    interface: str
    at: float
    result: OfferResult
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class CallView:
    """A live call at one moment, as plain data (what the bus carries; a broker could too)."""

    uniqueid: str
    linkedid: str
    channel: str
    state: CallState
    caller_number: str
    caller_name: str
    dialled_number: str
    queue: str | None
    agent: str | None
    incident_number: str | None
    ivr_path: str | None
    language: str | None
    arrived_at: float
    queued_at: float | None
    answered_at: float | None
    ended_at: float | None
    wait_seconds: float  # in queues so far, the current stint included
    outcome: CallOutcome | None
    overflowed: bool
    callback_of: str | None
    ringing: tuple[str, ...] = ()  # agents whose phones ring for this call now
    offered_to: tuple[str, ...] = ()  # every agent the call was offered to, in order
    on_hold: bool = False
    hold_seconds: float = 0.0  # on hold so far, the current hold included
    recording: str | None = None
    asterisk: str = DEFAULT_ASTERISK


def view_of(call: LiveCall, now: float) -> CallView:
    """The call as plain data, at `now`."""
    return CallView(
        uniqueid=call.uniqueid,
        linkedid=call.linkedid,
        channel=call.channel,
        state=call.state,
        caller_number=call.caller_number,
        caller_name=call.caller_name,
        dialled_number=call.dialled_number,
        queue=call.queue,
        agent=call.agent,
        incident_number=call.incident_number,
        ivr_path=call.ivr_path,
        language=call.language,
        arrived_at=call.arrived_at,
        queued_at=call.queued_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        wait_seconds=round(call.waited(call.ended_at or now), 3),
        outcome=call.outcome,
        overflowed=call.overflowed,
        callback_of=call.callback_of,
        ringing=tuple(o.agent for o in call.offers if o.result == OfferResult.RINGING),
        offered_to=tuple(dict.fromkeys(o.agent for o in call.offers)),
        on_hold=call.on_hold_since is not None,
        recording=call.recording,
        hold_seconds=round(call.held(call.ended_at or now), 3),
        asterisk=call.asterisk,
    )


def offer_view(offer: Offer) -> OfferView:
    """The offer as plain data."""
    return OfferView(offer.agent, offer.interface, offer.at, offer.result, offer.ended_at)


class AgentState(StrEnum):
    """What the agent page and the wallboard show."""

    LOGGED_OUT = "logged_out"
    READY = "ready"
    RINGING = "ringing"
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"
    PAUSED = "paused"


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent at one moment, as plain data."""

    ext: str
    state: AgentState
    reason: str
    since: float
    queues: tuple[str, ...]
    wrapup_until: float | None
