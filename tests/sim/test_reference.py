"""The reference points: the oracle, hindsight and the work bound, computed by hand; and the
runner scoring each deployment against its own SLO wait."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.config.loader import parse_policies
from autoscaler.sim.reference import Reference, hindsight, oracle, work_bound
from autoscaler.sim.runner import simulate
from autoscaler.sim.scenario import Scenario
from autoscaler.sim.trace import DeploymentTrace, Trace


@dataclass(frozen=True)
class OracleCase:
    id: str
    arrivals: list[float]
    services: list[float]
    min_replicas: int
    parallelism: int
    start: float
    expected: Reference
    initial: int | None = None


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
    # Initial replicas: billed until the demand first changes them (the first arrival), then
    # the oracle provisions as always; a drop from them is a scale action like any other.
    OracleCase(
        "initial-billed-until-first-arrival", [10], [2], 0, 1, 0.0, Reference(32.0, 2, 12.0), 3
    ),
    OracleCase("initial-dropped-at-once", [0], [2], 1, 1, 0.0, Reference(2.0, 1, 2.0), 8),
    OracleCase("initial-equal-to-need", [0, 0], [2, 2], 0, 1, 0.0, Reference(4.0, 1, 2.0), 2),
    # Fewer than the floor: raised to it at start (one action), as a policy's first decision.
    OracleCase("initial-below-floor", [4], [1], 2, 1, 0.0, Reference(2.0 * 5, 1, 5.0), 0),
]


@pytest.mark.parametrize("case", ORACLE_CASES, ids=lambda c: c.id)
def test_oracle(case: OracleCase) -> None:
    got = oracle(
        [float(a) for a in case.arrivals],
        [float(s) for s in case.services],
        case.min_replicas,
        case.parallelism,
        case.start,
        case.initial,
    )
    assert got == case.expected


@dataclass(frozen=True)
class HindsightCase:
    id: str
    arrivals: list[float]
    services: list[float]
    cold_start: float
    expected: Reference
    min_replicas: int = 0
    parallelism: int = 1
    initial: int | None = None
    start: float = 0.0


HINDSIGHT_CASES = [
    HindsightCase("empty-trace", [], [], 5, Reference(0.0, 0, 0.0)),
    # Needed 10..13: asked for at 5, a cold start early; released when the need ends.
    HindsightCase("asked-a-cold-start-early", [10], [3], 5, Reference(8.0, 2, 13.0)),
    # Needed from 2, but nothing is billed before the trace starts: from 0 (asked at start).
    HindsightCase("not-billed-before-start", [2], [3], 5, Reference(5.0, 2, 5.0)),
    # The same with one replica ready at start: kept until needed, no action to ask for it.
    HindsightCase("initial-replica-kept", [2], [3], 5, Reference(5.0, 1, 5.0), initial=1),
    # Idle 2 s < cold start 5 s: kept through the gap, billed 0..4.
    HindsightCase("short-gap-kept", [0, 3], [1, 1], 5, Reference(4.0, 2, 4.0)),
    # Idle 9 s > 5 s: released at 1, asked for again at 5 for the need at 10: 1 + 6.
    HindsightCase("long-gap-released", [0, 10], [1, 1], 5, Reference(7.0, 4, 11.0)),
    # Idle exactly the cold start: released and asked for again at the same instant, which
    # costs what keeping it costs and is no scale action.
    HindsightCase("gap-equal-to-cold-start", [0, 6], [1, 1], 5, Reference(7.0, 2, 7.0)),
    # Two levels: the second is needed 2..4, asked for at 1.
    HindsightCase("second-level", [0, 2], [10, 2], 1, Reference(13.0, 4, 10.0)),
    # ceil(in_flight / 2): 1, 1, 2, 1, 1 over 0..5; the second level 2..3, asked for at 1.
    HindsightCase("parallelism-2", [0, 1, 2], [4, 2, 3], 1, Reference(7.0, 4, 5.0), parallelism=2),
    # The floor is needed from the start to the end and never released.
    HindsightCase("floor-kept", [5], [1], 10, Reference(6.0, 0, 6.0), min_replicas=1),
    # Three ready at start, one needed: two released at once.
    HindsightCase("initial-above-need", [0], [2], 5, Reference(2.0, 2, 2.0), initial=3),
    # The initial replica is idle for 20 s > cold start: released at start, asked for again
    # at 15.
    HindsightCase(
        "initial-released-and-asked-again", [20], [1], 5, Reference(6.0, 3, 21.0), initial=1
    ),
    HindsightCase(
        "no-cold-start-is-the-oracle",
        [0, 1, 2],
        [4, 4, 4],
        0,
        Reference(8.0, 4, 6.0),
        parallelism=2,
    ),
]


@pytest.mark.parametrize("case", HINDSIGHT_CASES, ids=lambda c: c.id)
def test_hindsight(case: HindsightCase) -> None:
    got = hindsight(
        [float(a) for a in case.arrivals],
        [float(s) for s in case.services],
        case.min_replicas,
        case.parallelism,
        case.start,
        case.cold_start,
        case.initial,
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


def _brute_force_hindsight(
    arrivals: list[float],
    services: list[float],
    min_replicas: int,
    parallelism: int,
    start: float,
    cold_start: float,
) -> float:
    """Per level, from the demand at every interval's midpoint: merge needs closer than a
    cold start, bill each from a cold start before it (not before start)."""
    instants = sorted({start, *arrivals, *(a + s for a, s in zip(arrivals, services, strict=True))})
    demand = []
    for left, right in itertools.pairwise(instants):
        middle = (left + right) / 2
        running = sum(1 for a, s in zip(arrivals, services, strict=True) if a <= middle < a + s)
        demand.append((left, right, max(min_replicas, math.ceil(running / parallelism))))
    total = 0.0
    for level in range(1, max((d for _, _, d in demand), default=0) + 1):
        needs: list[list[float]] = []
        for left, right, d in demand:
            if d < level:
                continue
            if needs and left - needs[-1][1] < cold_start:
                needs[-1][1] = right
            else:
                needs.append([left, right])
        total += sum(end - max(start, begin - cold_start) for begin, end in needs)
    return total


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 12)), min_size=1, max_size=25),
    st.integers(0, 3),
    st.integers(1, 4),
    st.sampled_from([0.0, 1.0, 5.0, 30.0]),
)
def test_hindsight_matches_brute_force_and_bounds(
    requests: list[tuple[int, int]], min_replicas: int, parallelism: int, cold_start: float
) -> None:
    requests.sort()
    arrivals = [float(a) for a, _ in requests]
    services = [float(s) for _, s in requests]
    start = arrivals[0]
    got = hindsight(arrivals, services, min_replicas, parallelism, start, cold_start)
    expected = _brute_force_hindsight(
        arrivals, services, min_replicas, parallelism, start, cold_start
    )
    assert got.replica_seconds == pytest.approx(expected)
    ref = oracle(arrivals, services, min_replicas, parallelism, start)
    assert got.end == ref.end
    # Paying the cold start never makes provisioning cheaper, and more of it costs more.
    assert got.replica_seconds >= ref.replica_seconds - 1e-9
    cheaper = hindsight(arrivals, services, min_replicas, parallelism, start, cold_start / 2)
    assert cheaper.replica_seconds <= got.replica_seconds + 1e-9
    if cold_start == 0:
        assert got.replica_seconds == pytest.approx(ref.replica_seconds)
        assert got.scale_actions == ref.scale_actions


def test_hindsight_is_fast_on_an_hour_of_traffic() -> None:
    import time

    import numpy as np

    rng = np.random.default_rng(7)
    arrivals = np.sort(rng.uniform(0, 3600, 20_000)).tolist()
    services = rng.lognormal(0.5, 0.8, 20_000).tolist()
    began = time.perf_counter()
    ref = hindsight(arrivals, services, 1, 4, arrivals[0], 60.0, 8)
    assert time.perf_counter() - began < 1.0
    assert ref.replica_seconds >= work_bound(services, 4)


# -- scoring: each deployment against its own slo.wait_s ----------------------------------------

SLO_POLICY = """
defaults: {policy: concurrency, min_replicas: 1, max_replicas: 1, parallelism: 1}
deployments:
  - match: ns/lenient
    slo: {wait_s: 5}
  - match: ns/strict
    slo: {wait_s: 1}
"""


def _two_waits() -> DeploymentTrace:
    # One replica, two requests at once: the second waits the first's 3 s.
    t0 = 1_700_000_000.0
    return DeploymentTrace([t0, t0], [0, 0], [0, 0], [3.0, 3.0])


@pytest.mark.parametrize(
    ("scenario_wait", "expected"),
    [
        (None, 3 / 4),  # lenient: both within 5 s; strict: one of two within 1 s
        (2.0, 2 / 4),  # the scenario's wait overrides both: the waits of 3 s miss
        (4.0, 4 / 4),
    ],
)
def test_each_deployment_is_scored_against_its_own_wait(
    scenario_wait: float | None, expected: float
) -> None:
    trace = Trace({"ns/lenient": _two_waits(), "ns/strict": _two_waits()}, "two")
    run = simulate(
        trace,
        parse_policies([("p.yaml", SLO_POLICY)]),
        Scenario(cold_start_s=0, initial_replicas=1, slo_wait_s=scenario_wait),
        compare=["concurrency"],
        references=False,
    )
    result = next(r for r in run.results if r.policy == "concurrency")
    assert result.slo_attainment == expected
    # The percentiles still pool every request: waits 0, 0, 3, 3.
    assert result.wait_p50_s == 1.5
    assert result.wait_p99_s == pytest.approx(3.0)
    lenient, strict = (5.0, 1.0) if scenario_wait is None else (scenario_wait, scenario_wait)
    assert run.slo_wait_s == {"ns/lenient": lenient, "ns/strict": strict}
