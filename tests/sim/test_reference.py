"""The reference points: the clairvoyant oracle and the work bound, computed by hand."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.sim.reference import Reference, oracle, work_bound


@dataclass(frozen=True)
class OracleCase:
    id: str
    arrivals: list[float]
    services: list[float]
    min_replicas: int
    parallelism: int
    start: float
    expected: Reference


ORACLE_CASES = [
    OracleCase("empty-trace", [], [], 1, 1, 5.0, Reference(0.0, 0, 5.0)),
    # 0..2 nothing, 2..5 one replica, then back to zero: two actions.
    OracleCase("one-request-from-zero", [2], [3], 0, 1, 0.0, Reference(3.0, 2, 5.0)),
    # The floor bills the idle time before the first arrival too, and never changes.
    OracleCase("one-request-floor-1", [2], [3], 1, 1, 0.0, Reference(5.0, 0, 5.0)),
    OracleCase("one-request-floor-3", [2], [3], 3, 4, 0.0, Reference(15.0, 0, 5.0)),
    # ceil(in_flight / 2): 0-1: 1 in flight -> 1, 1-2: 2 -> 1, 2-4: 3 -> 2, 4-5: 2 -> 1,
    # 5-6: 1 -> 1; total 1 + 1 + 4 + 1 + 1 = 8; actions 0->1, 1->2, 2->1, 1->0.
    OracleCase("ceil-integration-p2", [0, 1, 2], [4, 4, 4], 0, 2, 0.0, Reference(8.0, 4, 6.0)),
    # ceil(5 / 4) = 2 while all five run, then ceil(2 / 4) = 1 after three finish at 1.
    OracleCase(
        "ceil-integration-p4",
        [0, 0, 0, 0, 0],
        [1, 1, 1, 3, 3],
        0,
        4,
        0.0,
        Reference(2 * 1 + 1 * 2, 3, 3.0),
    ),
    # The floor of 2 absorbs the first two; the third concurrent one needs a third replica.
    OracleCase(
        "floor-2-needs-3", [1, 1, 1], [1, 1, 1], 2, 1, 0.0, Reference(2 * 1 + 3 * 1, 2, 2.0)
    ),
    # A finish and a start at one instant: the slot is handed over, no 1 -> 2 -> 1 blip.
    OracleCase("handover-same-instant", [0, 2], [2, 2], 0, 1, 0.0, Reference(4.0, 2, 4.0)),
    OracleCase(
        "handover-with-a-second-running",
        [0, 1, 3],
        [3, 4, 2],
        0,
        1,
        0.0,
        # 0-1: 1, 1-3: 2, at 3 one finishes and one starts: still 2, 3-5: 2; total 1 + 4 + 4.
        Reference(9.0, 3, 5.0),
    ),
    # A gap in the middle scales to zero and back up.
    OracleCase("gap-to-zero", [0, 10], [1, 1], 0, 1, 0.0, Reference(2.0, 4, 11.0)),
    OracleCase("gap-at-floor", [0, 10], [1, 1], 1, 1, 0.0, Reference(11.0, 0, 11.0)),
    # Start later than the first arrival is not a case the runner makes; start == first here.
    OracleCase(
        "start-at-first-arrival", [100, 100.5], [1, 1], 0, 2, 100.0, Reference(1.5, 2, 101.5)
    ),
]


@pytest.mark.parametrize("case", ORACLE_CASES, ids=lambda c: c.id)
def test_oracle(case: OracleCase) -> None:
    got = oracle(
        [float(a) for a in case.arrivals],
        [float(s) for s in case.services],
        case.min_replicas,
        case.parallelism,
        case.start,
    )
    assert got == case.expected


@pytest.mark.parametrize(
    ("services", "parallelism", "expected"),
    [
        ([], 1, 0.0),
        ([1.0, 2.0, 3.0], 1, 6.0),
        ([1.0, 2.0, 3.0], 2, 3.0),
        ([1.0, 2.0, 3.0], 4, 1.5),
        ([0.1] * 10, 1, 1.0),  # fsum: exactly 1.0, not 0.9999999999999999
        ([1e16, 1.0, -1e16], 1, 1.0),  # exact summation, order does not matter
    ],
)
def test_work_bound(services: list[float], parallelism: int, expected: float) -> None:
    assert work_bound(services, parallelism) == expected


def _brute_force(
    arrivals: list[float], services: list[float], min_replicas: int, parallelism: int, start: float
) -> float:
    """Integrate max(min, ceil(in_flight / p)) over every interval between two instants."""
    instants = sorted({start, *arrivals, *(a + s for a, s in zip(arrivals, services, strict=True))})
    total = 0.0
    for left, right in itertools.pairwise(instants):
        middle = (left + right) / 2
        running = sum(1 for a, s in zip(arrivals, services, strict=True) if a <= middle < a + s)
        total += max(min_replicas, math.ceil(running / parallelism)) * (right - left)
    return total


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 40), st.integers(1, 12)),  # whole seconds: many coincidences
        min_size=1,
        max_size=25,
    ),
    st.integers(0, 3),
    st.integers(1, 4),
)
def test_oracle_matches_brute_force_integration(
    requests: list[tuple[int, int]], min_replicas: int, parallelism: int
) -> None:
    requests.sort()
    arrivals = [float(a) for a, _ in requests]
    services = [float(s) for _, s in requests]
    start = arrivals[0]
    ref = oracle(arrivals, services, min_replicas, parallelism, start)
    assert ref.replica_seconds == _brute_force(arrivals, services, min_replicas, parallelism, start)
    assert ref.end == max(a + s for a, s in requests)
    assert ref.replica_seconds >= work_bound(services, parallelism)
    assert ref.replica_seconds >= min_replicas * (ref.end - start)
