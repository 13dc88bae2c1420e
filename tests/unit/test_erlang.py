"""Erlang C against published reference figures: 100 calls in 30 minutes, 180 s handle time,
80 % answered within 20 s (Call Centre Helper's worked example, also pyworkforce's documented
example: 14 agents, service level 0.8883500191794669, P(wait) 0.1741319335950498, occupancy
0.714; with 13 agents 0.795..., with 15 agents 0.941...)."""

import math

import pytest

from cti.erlang import agents_needed, erlang_c, evaluate, predicted_wait

RATE = 100 / 1800
AHT = 180.0


def test_the_published_example() -> None:
    r = evaluate(14, RATE, AHT, 20)
    assert r.traffic == pytest.approx(10.0)
    assert r.service_level == pytest.approx(0.8883500191794669, rel=1e-9)
    assert r.p_wait == pytest.approx(0.1741319335950498, rel=1e-9)
    assert r.occupancy == pytest.approx(0.7142857142857143)
    assert math.floor(evaluate(13, RATE, AHT, 20).service_level * 1000) == 795
    assert math.floor(evaluate(15, RATE, AHT, 20).service_level * 1000) == 941
    # ASA = P(wait) x AHT / (N - A)
    assert r.asa == pytest.approx(0.1741319335950498 * 180 / 4)


def test_agents_needed_for_80_in_20() -> None:
    assert agents_needed(RATE, AHT, 0.8, 20).agents == 14
    assert agents_needed(RATE, AHT, 0.8, 20, max_occupancy=0.7).agents == 15


def test_overload_and_edges() -> None:
    assert erlang_c(10, 10.0) == 1.0 and math.isinf(predicted_wait(10, RATE, AHT))
    assert erlang_c(3, 0.0) == 0.0 and predicted_wait(3, 0.0, AHT) == 0.0
    assert evaluate(1, 0.001, 10, 20).p_wait == pytest.approx(0.01)  # M/M/1: P(wait) = rho
    with pytest.raises(ValueError):
        agents_needed(RATE, AHT, 1.5, 20)
    with pytest.raises(ValueError):
        evaluate(-1, RATE, AHT, 20)
