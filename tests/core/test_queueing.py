"""The queue model behind the ``slo`` policy: Erlang C, the G/G/k waiting tail and the
smallest replica count that meets a budget, against textbook values and invariants."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.core.queueing import EXACT_UP_TO, erlang_c, replicas_needed, wait_tail


def erlang_c_closed_form(servers: int, offered: float) -> float:
    """Erlang C from its textbook sum, independent of the code's Erlang B recursion."""
    top = offered**servers / math.factorial(servers) * servers / (servers - offered)
    bottom = sum(offered**i / math.factorial(i) for i in range(servers)) + top
    return top / bottom


# (servers, offered Erlangs, P(wait > 0))
KNOWN = [
    pytest.param(1, 0.5, 0.5, id="mm1-rho-half"),
    pytest.param(1, 0.9, 0.9, id="mm1-rho-0.9"),
    pytest.param(2, 1.0, 1 / 3, id="mm2-a1"),
    pytest.param(10, 8.0, 0.4092, id="mm10-a8"),
    pytest.param(5, 0.0, 0.0, id="no-load"),
    pytest.param(3, 3.0, 1.0, id="saturated"),
    pytest.param(3, 4.5, 1.0, id="overloaded"),
]


@pytest.mark.parametrize(("servers", "offered", "want"), KNOWN)
def test_erlang_c_textbook(servers: int, offered: float, want: float) -> None:
    assert erlang_c(servers, offered) == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize(
    ("servers", "offered"), [(1, 0.3), (4, 2.5), (12, 9.7), (30, 21.0), (60, 55.5)]
)
def test_erlang_c_matches_closed_form(servers: int, offered: float) -> None:
    assert erlang_c(servers, offered) == pytest.approx(
        erlang_c_closed_form(servers, offered), rel=1e-9
    )


def test_wait_tail_mm1_exponential() -> None:
    # M/M/1, rho 0.5, S 1: P(W > t) = rho exp(-(1 - rho) t / S)
    assert wait_tail(1, 0.5, 1.0, 1.0, 1.0) == pytest.approx(0.5 * math.exp(-0.5), rel=1e-12)
    assert wait_tail(1, 0.5, 1.0, 1.0, 0.0) == pytest.approx(0.5, rel=1e-12)


def test_wait_tail_allen_cunneen_stretch() -> None:
    # Deterministic service (scv 0) with Poisson arrivals: the tail's time scale halves, so the
    # exponent doubles; scv 3 doubles the time scale, halving the exponent.
    c = erlang_c(4, 3.0)
    assert wait_tail(4, 3.0, 2.0, 0.0, 1.0) == pytest.approx(c * math.exp(-1.0 * 1.0 / 1.0))
    assert wait_tail(4, 3.0, 2.0, 3.0, 1.0) == pytest.approx(c * math.exp(-1.0 * 1.0 / 4.0))
    # bursty arrivals (ca2 3) stretch like bursty service
    assert wait_tail(4, 3.0, 2.0, 1.0, 1.0, arrival_scv=3.0) == pytest.approx(
        wait_tail(4, 3.0, 2.0, 3.0, 1.0)
    )


@pytest.mark.parametrize(("servers", "offered"), [(2, 2.0), (2, 5.0)])
def test_wait_tail_unstable_is_one(servers: int, offered: float) -> None:
    assert wait_tail(servers, offered, 1.0, 1.0, 100.0) == 1.0


loads = st.floats(min_value=0.01, max_value=150.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(offered=loads, extra=st.integers(min_value=1, max_value=50))
def test_more_servers_fewer_waits(offered: float, extra: int) -> None:
    k = math.floor(offered) + extra
    assert erlang_c(k + 1, offered) < erlang_c(k, offered)
    assert 0.0 < erlang_c(k, offered) < 1.0


@settings(max_examples=200, deadline=None)
@given(
    offered=loads,
    extra=st.integers(min_value=1, max_value=50),
    scv=st.floats(min_value=0.0, max_value=10.0),
    more=st.floats(min_value=0.05, max_value=10.0),
    wait=st.floats(min_value=0.01, max_value=30.0),
)
def test_larger_scv_larger_tail(
    offered: float, extra: int, scv: float, more: float, wait: float
) -> None:
    k = math.floor(offered) + extra
    low = wait_tail(k, offered, 1.0, scv, wait)
    high = wait_tail(k, offered, 1.0, scv + more, wait)
    assert high >= low
    assert high <= erlang_c(k, offered)  # a tail never exceeds the chance of any wait
    # Strictly larger wherever floats can show it: not in underflow, and not where the
    # fleet is a hair above the load (offered 1.99999999999997 on 2 servers: both tails are
    # 1 - 2e-14, the exponent's difference is below the last bit).
    if 1e-300 < low < 1.0 - 1e-9:
        assert high > low


@settings(max_examples=200, deadline=None)
@given(
    offered=st.floats(min_value=0.01, max_value=120.0),
    parallelism=st.integers(min_value=1, max_value=8),
    service=st.floats(min_value=0.05, max_value=20.0),
    scv=st.floats(min_value=0.0, max_value=5.0),
    wait=st.floats(min_value=0.05, max_value=10.0),
    budget=st.sampled_from([0.1, 0.01, 0.001, 0.0001]),
)
def test_replicas_needed_is_smallest(
    offered: float, parallelism: int, service: float, scv: float, wait: float, budget: float
) -> None:
    cap = 1000
    count, miss = replicas_needed(offered, parallelism, service, scv, wait, budget, cap)
    assert 1 <= count < cap
    assert miss <= budget
    assert miss == pytest.approx(wait_tail(count * parallelism, offered, service, scv, wait))
    # one replica fewer misses the budget
    assert wait_tail((count - 1) * parallelism, offered, service, scv, wait) > budget


# (offered, parallelism, service_s, scv, wait_s, budget, cap, replicas)
COUNTS = [
    # 8 Erlangs on single-slot replicas; 12 is the first whose P(wait > 1s) <= 1%
    pytest.param(8.0, 1, 1.0, 1.0, 1.0, 0.01, 100, 12, id="a8-p1"),
    pytest.param(8.0, 4, 1.0, 1.0, 1.0, 0.01, 100, 3, id="a8-p4"),
    pytest.param(0.001, 4, 1.0, 1.0, 1.0, 0.01, 100, 1, id="tiny-load-one-replica"),
    pytest.param(0.0, 4, 1.0, 1.0, 1.0, 0.01, 100, 0, id="no-load-zero"),
    pytest.param(-1.0, 4, 1.0, 1.0, 1.0, 0.01, 100, 0, id="negative-load-zero"),
    pytest.param(50.0, 1, 1.0, 1.0, 1.0, 0.01, 10, 10, id="capped"),
    pytest.param(5000.0, 1, 1.0, 1.0, 1.0, 0.01, 10, 10, id="capped-halfin-whitt"),
]


@pytest.mark.parametrize(
    ("offered", "parallelism", "service", "scv", "wait", "budget", "cap", "want"), COUNTS
)
def test_replicas_needed_table(
    offered: float,
    parallelism: int,
    service: float,
    scv: float,
    wait: float,
    budget: float,
    cap: int,
    want: int,
) -> None:
    count, miss = replicas_needed(offered, parallelism, service, scv, wait, budget, cap)
    assert count == want
    if want == 0:
        assert miss == 0.0


def test_replicas_needed_at_cap_reports_the_miss() -> None:
    count, miss = replicas_needed(50.0, 1, 1.0, 1.0, 1.0, 0.01, 10)
    assert (count, miss) == (10, 1.0)  # 10 slots for 50 Erlangs: everyone waits
    count, miss = replicas_needed(9.0, 1, 1.0, 1.0, 1.0, 0.0001, 10)
    assert count == 10
    assert miss == pytest.approx(wait_tail(10, 9.0, 1.0, 1.0, 1.0))
    assert miss > 0.0001


def test_replicas_needed_above_exact_range_is_smallest() -> None:
    offered = 1200.0
    count, miss = replicas_needed(offered, 8, 2.0, 2.0, 1.0, 0.001, 10_000)
    assert miss <= 0.001
    assert wait_tail((count - 1) * 8, offered, 2.0, 2.0, 1.0) > 0.001
    assert count * 8 > offered


@pytest.mark.parametrize("beta", [0.1, 0.5, 1.0, 1.5, 2.0, 3.0])
def test_halfin_whitt_continuity_at_switch(beta: float) -> None:
    # Just below the switch Erlang C is exact, just above it Halfin-Whitt. Measured: the limit
    # reads low by 0.2% (beta 0.1) to ~25% (beta 3) relative, at most 0.007 absolute (beta 1).
    k = math.ceil(EXACT_UP_TO + beta * math.sqrt(EXACT_UP_TO))
    exact = erlang_c(k, EXACT_UP_TO)
    approx = erlang_c(k, EXACT_UP_TO + 1e-6)
    assert exact == pytest.approx(erlang_c_closed_form_big(k, EXACT_UP_TO), rel=1e-6)
    assert approx <= exact
    assert exact - approx < 0.01
    assert approx == pytest.approx(exact, rel=0.3)
    if beta <= 1.0:
        assert approx == pytest.approx(exact, rel=0.04)


def erlang_c_closed_form_big(servers: int, offered: float) -> float:
    """The textbook sum in log space (the factorials overflow floats at 400 Erlangs)."""
    logs = [i * math.log(offered) - math.lgamma(i + 1) for i in range(servers)]
    top = servers * math.log(offered) - math.lgamma(servers + 1)
    top += math.log(servers / (servers - offered))
    peak = max(*logs, top)
    total = sum(math.exp(x - peak) for x in logs) + math.exp(top - peak)
    return math.exp(top - peak) / total


@pytest.mark.parametrize(
    ("parallelism", "service", "scv", "wait", "budget"),
    [(1, 1.0, 1.0, 1.0, 0.01), (8, 2.0, 2.0, 1.0, 0.001), (4, 0.5, 0.0, 0.2, 0.05)],
)
def test_replica_count_continuous_across_switch(
    parallelism: int, service: float, scv: float, wait: float, budget: float
) -> None:
    below, _ = replicas_needed(EXACT_UP_TO - 0.01, parallelism, service, scv, wait, budget, 10_000)
    above, _ = replicas_needed(EXACT_UP_TO + 0.01, parallelism, service, scv, wait, budget, 10_000)
    assert 0 <= below - above <= 1
