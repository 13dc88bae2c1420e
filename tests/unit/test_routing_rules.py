"""Back-up rules, hysteresis and overflow choices: table-driven, no I/O."""

import math

import pytest

from cti.routing.rules import (
    Callback,
    Change,
    Measure,
    QueueSnapshot,
    QueueState,
    Rule,
    Target,
    WaitingCall,
    choose_overflow,
    evaluate,
    measure,
    next_callback,
)

M = Measure


def snap(waiting: int = 0, longest: float = 0, ready: int = 1, staffed: int = 2,
         rate: float = 0.0, aht: float = 180.0) -> QueueSnapshot:  # fmt: skip
    return QueueSnapshot("helpdesk", waiting, longest, ready, staffed, rate, aht)


@pytest.mark.parametrize(
    ("m", "s", "expected"),
    [
        (M.WAITING_CALLS, snap(waiting=4), 4),
        (M.LONGEST_WAIT, snap(waiting=2, longest=75), 75),
        (M.LONGEST_WAIT, snap(waiting=0, longest=75), 0),  # stale figure of an empty queue
        (M.WAITING_PER_READY_AGENT, snap(waiting=6, ready=2), 3),
        (M.WAITING_PER_READY_AGENT, snap(waiting=1, ready=0), math.inf),
        (M.WAITING_PER_READY_AGENT, snap(waiting=0, ready=0), 0),
        (M.NO_AGENT_READY, snap(waiting=1, ready=0), 1),
        (M.NO_AGENT_READY, snap(waiting=0, ready=0), 0),  # nobody waits: nothing to report
        (M.NO_AGENT_READY, snap(waiting=3, ready=1), 0),
        # 10 Erlangs on 14 staffed agents: ASA 7.8 s (the reference example); overloaded: inf.
        (M.PREDICTED_WAIT, snap(waiting=1, staffed=14, rate=100 / 1800, aht=180), 0.1741319335950498 * 45),
        (M.PREDICTED_WAIT, snap(waiting=1, staffed=10, rate=100 / 1800, aht=180), math.inf),
        (M.PREDICTED_WAIT, snap(waiting=0, staffed=0, rate=0.0), 0),
    ],
)  # fmt: skip
def test_measures(m: Measure, s: QueueSnapshot, expected: float) -> None:
    assert measure(m, s) == pytest.approx(expected)


RULES = [
    Rule(M.WAITING_CALLS, trip=5, clear=2, hold=10),
    Rule(M.LONGEST_WAIT, trip=60, clear=20, hold=10),
]


@pytest.mark.parametrize(
    ("timeline", "changes"),
    [
        # One peak with wobble around the trip point: one alert, one clear.
        ([(0, snap(3)), (5, snap(5)), (6, snap(4)), (7, snap(6)), (8, snap(3)), (9, snap(1)),
          (15, snap(1)), (19, snap(1)), (20, snap(0))],
         {5: Change.RAISED, 19: Change.CLEARED}),
        # Dropping below `clear` and coming back before `hold` resets the clock.
        ([(0, snap(5)), (1, snap(1)), (5, snap(3)), (8, snap(1)), (12, snap(1)), (18, snap(1))],
         {0: Change.RAISED, 18: Change.CLEARED}),
        # A second rule tripping in the same peak raises nothing new.
        ([(0, snap(5, 10)), (3, snap(5, 70)), (4, snap(1, 70)), (5, snap(0, 0)), (16, snap(0, 0))],
         {0: Change.RAISED, 16: Change.CLEARED}),
        # Two separate peaks: two alerts.
        ([(0, snap(6)), (1, snap(0)), (12, snap(0)), (13, snap(7)), (14, snap(0)), (30, snap(0))],
         {0: Change.RAISED, 12: Change.CLEARED, 13: Change.RAISED, 30: Change.CLEARED}),
        # Never reaching the threshold: nothing at all.
        ([(0, snap(4, 59)), (10, snap(4, 59)), (20, snap(0))], {}),
    ],
)  # fmt: skip
def test_hysteresis(
    timeline: list[tuple[float, QueueSnapshot]], changes: dict[float, Change]
) -> None:
    state = QueueState()
    seen = {}
    for now, s in timeline:
        result = evaluate(RULES, s, state, now)
        state = result.state
        if result.change:
            seen[now] = result.change
        assert state.backed_up == bool(result.tripped)
    assert seen == changes


def test_a_rule_cannot_clear_above_its_trip() -> None:
    with pytest.raises(ValueError):
        Rule(M.WAITING_CALLS, trip=2, clear=5)


def test_overflow_takes_the_longest_waiting_first_to_free_targets() -> None:
    waiting = [WaitingCall("c", 30), WaitingCall("a", 10), WaitingCall("b", 20, overflowed=True),
               WaitingCall("d", 95)]  # fmt: skip
    targets = [
        Target("王工", "13900000002"),
        Target("李工", "13900000003", busy=True),
        Target("赵工", "13900000004"),
    ]
    chosen = choose_overflow(waiting, targets, now=100, min_wait=30)
    assert [(c.uniqueid, t.name) for c, t in chosen] == [("a", "王工"), ("c", "赵工")]
    assert choose_overflow(waiting, targets, now=35, min_wait=30) == []  # nobody waited long enough
    assert choose_overflow(waiting, [], now=100, min_wait=0) == []


@pytest.mark.parametrize(
    ("callbacks", "waiting", "ready", "expected"),
    [
        ([Callback("x", "139", 50), Callback("y", "138", 40)], [], 1, "y"),  # oldest first
        ([Callback("x", "139", 50)], [WaitingCall("w", 45)], 1, None),  # an earlier caller waits
        ([Callback("x", "139", 50)], [WaitingCall("w", 55)], 1, "x"),  # a later one does not
        ([Callback("x", "139", 50)], [], 0, None),  # no agent ready
        ([Callback("x", "139", 50, dialling=True), Callback("y", "138", 60)], [], 3, None),  # one at a time
        ([Callback("x", "139", 50, done=True), Callback("y", "138", 60)], [], 1, "y"),
        ([], [], 5, None),
    ],
)  # fmt: skip
def test_callbacks_keep_their_place(callbacks: list[Callback], waiting: list[WaitingCall], ready: int,
                                    expected: str | None) -> None:  # fmt: skip
    got = next_callback(callbacks, waiting, ready)
    assert (got.uniqueid if got else None) == expected
