"""Erlang C: the queueing model behind predicted waits (wallboard, back-up rules) and staffing
(forward-looking report, `cti staffing`).

Calls arrive at random (Poisson) at `rate` per second and each takes `aht` seconds of an agent's
time; `agents` answer them in order. Traffic A = rate x aht (Erlangs). For agents N > A:

    P(wait)  = C(N, A), computed from Erlang B by the stable recurrence
               B(0) = 1, B(k) = A B(k-1) / (k + A B(k-1)),  C = N B / (N - A (1 - B))
    ASA      = C x aht / (N - A)
    SL(t)    = 1 - C x exp(-(N - A) t / aht)      (share answered within t seconds)

With N <= A the queue grows without bound: P(wait) = 1, ASA = inf, SL = 0.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class ErlangC:
    """The model's answer for one staffing level."""

    agents: int
    traffic: float  # Erlangs
    p_wait: float
    asa: float  # seconds
    service_level: float  # share answered within the threshold
    occupancy: float


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a call waits (C(N, A))."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = 1.0
    for k in range(1, agents + 1):
        b = traffic * b / (k + traffic * b)
    return agents * b / (agents - traffic * (1 - b))


def evaluate(agents: int, rate: float, aht: float, threshold: float) -> ErlangC:
    """Erlang C figures for `agents` at `rate` calls/s, `aht` s per call, SL threshold in s."""
    if rate < 0 or aht < 0 or agents < 0:
        raise ValueError("rate, handle time and agents must not be negative")
    a = rate * aht
    c = erlang_c(agents, a)
    if agents <= a:
        return ErlangC(agents, a, 1.0, math.inf, 0.0, 1.0 if agents else 0.0)
    asa = c * aht / (agents - a) if aht else 0.0
    sl = 1 - c * math.exp(-(agents - a) * threshold / aht) if aht else 1.0
    return ErlangC(agents, a, c, asa, sl, a / agents)


def agents_needed(
    rate: float,
    aht: float,
    target: float,
    threshold: float,
    max_occupancy: float = 1.0,
    limit: int = 10000,
) -> ErlangC:
    """The fewest agents whose service level reaches `target` within `threshold` seconds and
    whose occupancy stays at or under `max_occupancy`."""
    if not 0 < target < 1:
        raise ValueError("the target service level is a fraction between 0 and 1")
    a = rate * aht
    n = max(1, math.floor(a) + 1)
    while n <= limit:
        r = evaluate(n, rate, aht, threshold)
        if r.service_level >= target and r.occupancy <= max_occupancy:
            return r
        n += 1
    raise ValueError(f"no staffing up to {limit} agents meets the target")


def predicted_wait(agents: int, rate: float, aht: float) -> float:
    """The expected wait of a new caller (ASA) with `agents` staffed; inf when overloaded."""
    return evaluate(agents, rate, aht, 0.0).asa
