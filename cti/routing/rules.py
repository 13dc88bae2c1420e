"""Queue back-up detection (6.3.1.4) and overflow choices, as pure functions of a snapshot.

A rule measures one figure of a queue and trips when it reaches `trip`; it clears only after the
figure has stayed below `clear` for `hold` seconds (hysteresis: one peak, one alert). A queue is
*backed up* while any of its rules is tripped; the lead is alerted when it becomes backed up,
not again for every rule that trips during the same peak.
"""

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from cti.erlang import predicted_wait


class Measure(StrEnum):
    """The figures a rule can watch."""

    WAITING_CALLS = "waiting_calls"
    LONGEST_WAIT = "longest_wait"
    WAITING_PER_READY_AGENT = "waiting_per_ready_agent"
    NO_AGENT_READY = "no_agent_ready"
    PREDICTED_WAIT = "predicted_wait"


@dataclass(frozen=True)
class QueueSnapshot:
    """What a queue looks like now."""

    queue: str
    waiting: int  # callers in the queue
    longest_wait: float  # seconds, of the longest-waiting caller
    ready: int  # agents ready (idle, not paused)
    staffed: int  # agents logged in and not paused (ready, ringing, on a call, in wrap-up)
    arrival_rate: float  # calls per second, recent
    aht: float  # seconds of agent time per call, recent


def measure(m: Measure, s: QueueSnapshot) -> float:
    """The value of a figure for a snapshot (inf for "cannot keep up")."""
    if m == Measure.WAITING_CALLS:
        return float(s.waiting)
    if m == Measure.LONGEST_WAIT:
        return s.longest_wait if s.waiting else 0.0
    if m == Measure.WAITING_PER_READY_AGENT:
        if not s.waiting:
            return 0.0
        return s.waiting / s.ready if s.ready else math.inf
    if m == Measure.NO_AGENT_READY:
        return 1.0 if s.waiting and not s.ready else 0.0
    if m == Measure.PREDICTED_WAIT:
        if not s.waiting and s.arrival_rate == 0:
            return 0.0
        return predicted_wait(s.staffed, s.arrival_rate, s.aht)
    raise ValueError(m)


@dataclass(frozen=True)
class Rule:
    """Trip at `trip`, clear once below `clear` for `hold` seconds."""

    measure: Measure
    trip: float
    clear: float
    hold: float = 15.0

    def __post_init__(self) -> None:
        if self.clear > self.trip:
            raise ValueError(
                f"{self.measure}: clear ({self.clear}) must not exceed trip ({self.trip})"
            )


@dataclass(frozen=True)
class RuleState:
    """One rule's memory between evaluations."""

    tripped: bool = False
    below_since: float | None = None
    value: float = 0.0


@dataclass(frozen=True)
class QueueState:
    """A queue's alert state."""

    rules: Mapping[Measure, RuleState] = field(default_factory=dict)
    backed_up_since: float | None = None

    @property
    def backed_up(self) -> bool:
        """True while any rule is tripped."""
        return self.backed_up_since is not None


class Change(StrEnum):
    """What an evaluation changed."""

    RAISED = "raised"  # the queue became backed up: alert the lead, start overflow
    CLEARED = "cleared"  # the peak is over


@dataclass(frozen=True)
class Evaluation:
    """The new state, what changed, and which rules are tripped (with their values)."""

    state: QueueState
    change: Change | None
    tripped: dict[Measure, float]


def evaluate(
    rules: Iterable[Rule], snap: QueueSnapshot, prev: QueueState, now: float
) -> Evaluation:
    """Apply the rules to a snapshot."""
    states: dict[Measure, RuleState] = {}
    for rule in rules:
        old = prev.rules.get(rule.measure, RuleState())
        value = measure(rule.measure, snap)
        if value >= rule.trip:
            states[rule.measure] = RuleState(True, None, value)
        elif old.tripped and value >= rule.clear:
            states[rule.measure] = replace(old, below_since=None, value=value)
        elif old.tripped:
            since = old.below_since if old.below_since is not None else now
            cleared = now - since >= rule.hold
            states[rule.measure] = RuleState(not cleared, None if cleared else since, value)
        else:
            states[rule.measure] = RuleState(False, None, value)
    tripped = {m: s.value for m, s in states.items() if s.tripped}
    change = None
    backed_up_since = prev.backed_up_since
    if tripped and backed_up_since is None:
        change, backed_up_since = Change.RAISED, now
    elif not tripped and backed_up_since is not None:
        change, backed_up_since = Change.CLEARED, None
    return Evaluation(QueueState(states, backed_up_since), change, tripped)


@dataclass(frozen=True)
class WaitingCall:
    """A caller in the queue, as overflow sees them."""

    uniqueid: str
    queued_at: float
    overflowed: bool = False  # already sent or offered somewhere


@dataclass(frozen=True)
class Target:
    """Somewhere a call can overflow to (an on-call mobile)."""

    name: str
    number: str
    busy: bool = False


def choose_overflow(
    waiting: Iterable[WaitingCall], targets: Iterable[Target], now: float, min_wait: float
) -> list[tuple[WaitingCall, Target]]:
    """Longest-waiting callers first, each to a free target, only after `min_wait` seconds of
    waiting, never a call already overflowed, never two calls to one target."""
    calls = sorted(
        (c for c in waiting if not c.overflowed and now - c.queued_at >= min_wait),
        key=lambda c: (c.queued_at, c.uniqueid),
    )
    free = [t for t in targets if not t.busy]
    return list(zip(calls, free, strict=False))


@dataclass(frozen=True)
class Callback:
    """A caller who asked to be called back, keeping their place (their original join time)."""

    uniqueid: str
    number: str
    queued_at: float
    dialling: bool = False
    done: bool = False


def next_callback(
    callbacks: Iterable[Callback], waiting: Iterable[WaitingCall], ready_agents: int
) -> Callback | None:
    """The callback to dial now, if any: only with an agent ready, only when no caller still in
    the queue joined before it, the oldest first, and never while another is being dialled."""
    pending = [c for c in callbacks if not c.done]
    if ready_agents <= 0 or any(c.dialling for c in pending):
        return None
    candidates = sorted((c for c in pending), key=lambda c: (c.queued_at, c.uniqueid))
    if not candidates:
        return None
    first = candidates[0]
    if any(w.queued_at < first.queued_at for w in waiting):
        return None
    return first
