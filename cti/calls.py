"""A live call as the tracker holds it, and its conversion to a journal row."""

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, overload

from cti.types import QUEUE_STATUS_OUTCOME, CallOutcome, OfferResult, RecordSource


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
    overflows: list[dict[str, Any]] = field(default_factory=list)
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
    in_ivr: bool = False
    seen_since_link: bool = True

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

    def finish(self, ts: float) -> None:
        """The caller's channel is gone: settle times and the outcome."""
        self.ended_at = ts
        self.leave_queue(ts)
        if self.in_ivr and self.ivr_left_at is None:
            self.ivr_left_at = ts
            self.in_ivr = False
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
            "overflows": [_overflow_json(o) for o in self.overflows],
            "callback_of": self.callback_of,
            "ring_no_answer": self.ring_no_answer,
            "outcome": self.outcome.value if self.outcome else None,
            "queue_status": self.queue_status,
            "complete_reason": self.complete_reason,
            "hangup_cause": self.hangup_cause,
            "wait_seconds": self.wait_seconds if self.ended_at is not None else None,
            "talk_seconds": self.talk_seconds if self.ended_at is not None else None,
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
            "in_ivr": self.in_ivr,
            "voicemail": self.voicemail,
            "overflowed": self.overflowed,
            "overflows": self.overflows,
            "transferred_to": self.transferred_to,
            "offers": [asdict(o) for o in self.offers],
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
            in_ivr=bool(state.get("in_ivr", False)),
            voicemail=bool(state.get("voicemail", False)),
            overflowed=bool(state.get("overflowed", False)),
            overflows=list(state.get("overflows", [])),
            transferred_to=state.get("transferred_to"),
            hangup_cause=row.hangup_cause,
            seen_since_link=False,
        )
        call.offers = [
            Offer(**{**o, "result": OfferResult(o["result"])}) for o in state.get("offers", [])
        ]
        return call


def _overflow_json(o: dict[str, Any]) -> dict[str, Any]:
    return {
        **o,
        "at": to_dt(o["at"]).isoformat(),
        "answered_at": to_dt(o["answered_at"]).isoformat() if o.get("answered_at") else None,
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
