"""The client-side QPS budget, on a hand-driven clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.adapters.rate_budget import RequestBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("qps", "burst", "requests", "expected_waits"),
    [
        # A full bucket lets `burst` through at once, then one per 1/qps, in order.
        (20, 2, 4, [0.0, 0.0, 0.05, 0.10]),
        (1, 1, 3, [0.0, 1.0, 2.0]),
        (10, 5, 5, [0.0] * 5),
    ],
)
def test_burst_then_paced(
    qps: float, burst: int, requests: int, expected_waits: list[float]
) -> None:
    budget = RequestBudget(qps, burst, Clock())
    waits = [budget.reserve() for _ in range(requests)]
    assert waits == pytest.approx(expected_waits)


def test_tokens_refill_with_time_but_never_beyond_burst() -> None:
    clock = Clock()
    budget = RequestBudget(10, 3, clock)
    for _ in range(3):
        assert budget.reserve() == 0
    clock.now += 10  # a long quiet spell refills to `burst`, not to 100 tokens
    assert [budget.reserve() for _ in range(4)] == pytest.approx([0, 0, 0, 0.1])


def test_rejects_a_budget_that_admits_nothing() -> None:
    with pytest.raises(ValueError, match="qps must be > 0"):
        RequestBudget(0, 1)


@given(
    qps=st.floats(0.5, 100),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0, 2), min_size=1, max_size=200),
)
def test_never_more_than_burst_plus_qps_times_elapsed(
    qps: float, burst: int, gaps: list[float]
) -> None:
    """Whatever the arrival pattern, the requests *sent* (arrival + wait) in any prefix of
    time stay within what a token bucket allows: burst + qps * elapsed."""
    clock = Clock()
    budget = RequestBudget(qps, burst, clock)
    start = clock.now
    sent = []
    for gap in gaps:
        clock.now += gap
        sent.append(clock.now + budget.reserve())
    sent.sort()
    for count, at in enumerate(sent, start=1):
        assert count <= burst + qps * (at - start) + 1e-6
    assert budget.granted == len(gaps)
