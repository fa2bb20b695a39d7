"""The discrete-event simulation of one deployment, on small hand-built traces."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.config.loader import parse_policies
from autoscaler.sim.engine import DeploymentOutcome, service_times, simulate_deployment
from autoscaler.sim.reference import oracle, work_bound
from autoscaler.sim.results import wait_stats
from autoscaler.sim.runner import simulate
from autoscaler.sim.scenario import Scenario, ServiceTime
from autoscaler.sim.trace import DeploymentTrace, Trace

T0 = 1_700_000_000.0  # a realistic unix time; every offset below is a binary fraction


def _trace(arrivals: list[float], durations: list[float | None]) -> DeploymentTrace:
    return DeploymentTrace(
        arrivals=list(arrivals),
        context_tokens=[0] * len(arrivals),
        generated_tokens=[0] * len(arrivals),
        durations=list(durations),
    )


def _run(
    yaml_text: str,
    scenario: Scenario,
    arrivals: list[float],
    durations: list[float | None],
    *,
    start: float | None = None,
    policy: str | None = None,
) -> DeploymentOutcome:
    resolved = parse_policies([("p.yaml", yaml_text)]).resolve("ns/model", policy_override=policy)
    trace = _trace(arrivals, durations)
    return simulate_deployment(
        "ns/model",
        resolved.settings.policy,
        resolved.settings,
        resolved.policy.build(resolved.params),
        scenario,
        trace,
        service_times(trace, scenario),
        min(arrivals) if start is None else start,
    )


def _fixed(n: int, parallelism: int = 1) -> str:
    return f"defaults: {{min_replicas: {n}, max_replicas: {n}, parallelism: {parallelism}}}"


# ------------------------------------------------------------------------- service times


def test_service_times_prefer_recorded_durations_over_the_token_model() -> None:
    scenario = Scenario(
        service_time=ServiceTime(base_s=0.5, per_context_token_s=0.001, per_generated_token_s=0.25)
    )
    trace = DeploymentTrace(
        arrivals=[T0, T0 + 1, T0 + 2],
        context_tokens=[1000, 2000, 0],
        generated_tokens=[4, 0, 8],
        durations=[None, 3.0, None],
    )
    assert service_times(trace, scenario) == pytest.approx([0.5 + 1.0 + 1.0, 3.0, 0.5 + 2.0])


# ------------------------------------------------------------------------- waits


@dataclass(frozen=True)
class WaitCase:
    id: str
    replicas: int
    parallelism: int
    arrivals: list[float]
    durations: list[float]
    waits: list[float]


WAIT_CASES = [
    # Enough ready replicas: nobody waits.
    WaitCase("one-replica-sequential", 1, 1, [0, 1, 2], [1, 1, 1], [0, 0, 0]),
    WaitCase("three-replicas-three-at-once", 3, 1, [0, 0, 0], [5, 5, 5], [0, 0, 0]),
    WaitCase("two-replicas-parallelism-4", 2, 4, [0] * 8, [3] * 8, [0] * 8),
    WaitCase("overlapping-within-capacity", 2, 2, [0, 0.5, 1, 1.5], [4, 4, 4, 4], [0] * 4),
    # One slot, two at once: the second waits exactly the first's service time.
    WaitCase("one-slot-two-at-once", 1, 1, [0, 0], [2.5, 1], [0, 2.5]),
    WaitCase("one-slot-second-slightly-later", 1, 1, [0, 0.5], [2, 1], [0, 1.5]),
    # FIFO through one slot: each waits for everything ahead of it.
    WaitCase("one-slot-three-at-once", 1, 1, [0, 0, 0], [1, 2, 4], [0, 1, 3]),
    # Two slots on one replica, three at once: the third takes the first slot to free up.
    WaitCase("parallelism-2-three-at-once", 1, 2, [0, 0, 0], [4, 1, 1], [0, 0, 1]),
]


@pytest.mark.parametrize("case", WAIT_CASES, ids=lambda c: c.id)
def test_waits_on_a_fixed_deployment(case: WaitCase) -> None:
    out = _run(
        _fixed(case.replicas, case.parallelism),
        Scenario(cold_start_s=30),
        [T0 + a for a in case.arrivals],
        list(case.durations),
    )
    assert list(out.waits) == case.waits
    assert out.served == out.requests == len(case.arrivals)
    assert out.cold_start_waits == 0
    assert out.scale_actions == 0


@pytest.mark.parametrize("cold_start", [0.5, 7.0, 60.0])
def test_scale_from_zero_first_request_waits_exactly_the_cold_start(cold_start: float) -> None:
    out = _run(
        "defaults: {policy: concurrency, "
        "min_replicas: 0, max_replicas: 3, parallelism: 1, target_utilization: 1}",
        Scenario(cold_start_s=cold_start, initial_replicas=0, tick_s=1),
        [T0],
        [2.0],
    )
    assert list(out.waits) == [cold_start]
    assert out.cold_start_waits == 1
    assert out.served == 1
    assert (out.actions[0].before, out.actions[0].after) == (0, 1)
    assert out.actions[0].t == T0
    assert out.end == T0 + cold_start + 2.0
    # Billed from the moment the replica was asked for until the end.
    assert out.replica_seconds == cold_start + 2.0


def test_scale_from_zero_a_second_request_during_the_cold_start_also_waits_for_it() -> None:
    out = _run(
        "defaults: {policy: concurrency, "
        "min_replicas: 0, max_replicas: 1, parallelism: 2, target_utilization: 1}",
        Scenario(cold_start_s=8, initial_replicas=0, tick_s=1),
        [T0, T0 + 3],
        [1.0, 1.0],
    )
    assert list(out.waits) == [8.0, 5.0]
    assert out.cold_start_waits == 2


def test_no_cold_start_wait_when_a_warm_replica_is_free() -> None:
    out = _run(_fixed(1), Scenario(cold_start_s=60, initial_replicas=1), [T0, T0 + 10], [1, 1])
    assert out.cold_start_waits == 0
    assert list(out.waits) == [0.0, 0.0]


# ------------------------------------------------------------------------- billing


@pytest.mark.parametrize(
    ("n", "parallelism", "arrivals", "durations", "start"),
    [
        (1, 1, [0, 1, 2], [1, 1, 1], 0),
        (3, 1, [0, 0.25, 9], [2, 0.5, 4.75], 0),
        (4, 2, [2, 3, 3, 3, 3], [1, 8, 8, 8, 8], 0),  # trace starts at 0, first arrival at 2
        (2, 4, [0] * 12, [0.5] * 12, 0),  # queueing: 12 requests, 8 slots
        (5, 1, [0.5, 100.25], [0.125, 0.125], 0.5),
    ],
)
def test_fixed_deployment_replica_seconds_is_n_times_the_span(
    n: int, parallelism: int, arrivals: list[float], durations: list[float], start: float
) -> None:
    out = _run(
        _fixed(n, parallelism),
        Scenario(cold_start_s=30),
        [T0 + a for a in arrivals],
        list(durations),
        start=T0 + start,
    )
    assert out.served == len(arrivals)
    assert out.end == T0 + max(
        a + w + d for a, w, d in zip(arrivals, out.waits, durations, strict=True)
    )
    assert out.replica_seconds == n * (out.end - (T0 + start))
    assert out.scale_actions == 0


def test_initial_replicas_above_max_are_capped() -> None:
    out = _run(_fixed(2), Scenario(initial_replicas=9), [T0, T0 + 4], [1, 1])
    assert out.replica_seconds == 2 * 5.0
    assert out.series is not None
    assert set(out.series.replicas) == {2}


# ------------------------------------------------------------------------- scale down / drain


def test_scale_down_of_a_busy_replica_drains_it() -> None:
    # Two replicas with two slots each; a target of 4 in flight per replica makes the policy
    # want one replica while both are busy. The removed one finishes its request but takes no
    # new work: the 4th request queues behind the survivor even though the drainer has a slot.
    yaml_text = (
        "defaults: {policy: concurrency, min_replicas: 1, max_replicas: 2, parallelism: 2, "
        "target_utilization: 1, window_s: 1, panic_window_s: 1, scale_down_delay_s: 0, "
        "params: {target_per_replica: 4}}"
    )
    out = _run(
        yaml_text,
        Scenario(cold_start_s=5, initial_replicas=2, tick_s=1),
        [T0, T0, T0 + 3, T0 + 3.5],
        [10.0, 10.0, 1.0, 1.0],
    )
    assert [(a.t - T0, a.before, a.after) for a in out.actions] == [(1.0, 2, 1)]
    # r0 (on the drained replica) and r1 start at once; r2 takes the survivor's free slot;
    # r3 waits for r2 to finish at +4 rather than use the drainer's free slot.
    assert list(out.waits) == [0.0, 0.0, 0.0, 0.5]
    assert out.served == 4
    assert out.end == T0 + 10
    # The drainer is billed until its last request finishes (+10), the survivor to the end.
    assert out.replica_seconds == 10.0 + 10.0
    assert out.series is not None
    assert max(out.series.replicas[1:]) == 1


def test_scale_down_of_an_idle_replica_stops_billing_at_once() -> None:
    yaml_text = (
        "defaults: {policy: concurrency, min_replicas: 1, max_replicas: 2, parallelism: 1, "
        "target_utilization: 1, window_s: 1, panic_window_s: 1, scale_down_delay_s: 0}"
    )
    # One long request keeps one replica busy; the second replica is idle and is removed at
    # the first decision after the 1 s warm-up.
    out = _run(yaml_text, Scenario(cold_start_s=5, initial_replicas=2, tick_s=1), [T0], [6.0])
    assert [(a.t - T0, a.before, a.after) for a in out.actions] == [(1.0, 2, 1)]
    assert out.replica_seconds == 6.0 + 1.0


# ------------------------------------------------------------------------- bounds


@pytest.mark.parametrize("policy", ["concurrency", "queue", "hpa", "kpa"])
def test_never_more_than_max_replicas(policy: str) -> None:
    arrivals = [T0 + i * 0.01 for i in range(200)]
    out = _run(
        "defaults: {min_replicas: 0, max_replicas: 3, parallelism: 1}",
        Scenario(cold_start_s=2, initial_replicas=0, tick_s=1),
        arrivals,
        [5.0] * len(arrivals),
        policy=policy,
    )
    assert out.served == 200
    assert out.series is not None
    assert max(out.series.replicas) == 3
    assert all(0 <= r <= 3 for r in out.series.replicas)
    assert all(ready <= r for ready, r in zip(out.series.ready, out.series.replicas, strict=True))
    assert all(a.after <= 3 for a in out.actions)
    # With at most 3 replicas and 200 x 5 s of work, the run takes at least 1000/3 s.
    assert out.end - T0 >= 1000 / 3
    assert out.replica_seconds >= work_bound([5.0] * 200, 1)


def test_min_replicas_floor_holds_through_idle_time() -> None:
    out = _run(
        "defaults: {policy: concurrency, "
        "min_replicas: 2, max_replicas: 5, parallelism: 1, window_s: 2, "
        "panic_window_s: 1, scale_to_zero_grace_s: 0}",
        Scenario(cold_start_s=1, initial_replicas=2, tick_s=1),
        [T0, T0 + 50],
        [1.0, 1.0],
    )
    assert out.series is not None
    assert min(out.series.replicas) == 2
    assert out.replica_seconds == 2 * 51.0


# ------------------------------------------------------------------------- determinism


def test_same_inputs_give_an_identical_outcome() -> None:
    arrivals = [T0 + (i * 37 % 101) / 4 for i in range(150)]
    arrivals.sort()
    durations: list[float | None] = [0.5 + (i % 7) for i in range(150)]
    args = (
        "defaults: {min_replicas: 0, max_replicas: 6, parallelism: 2}",
        Scenario(cold_start_s=3, initial_replicas=0, tick_s=1),
        arrivals,
        durations,
    )
    first, second = _run(*args), _run(*args)
    assert first == second
    assert first.scale_actions > 0  # the trace exercises scaling, not just a fixed fleet


# ------------------------------------------------------------------------- properties

POLICIES = ["concurrency", "queue", "hpa", "kpa"]


@st.composite
def _cases(draw: st.DrawFn) -> tuple[str, Scenario, list[float], list[float], str]:
    n = draw(st.integers(1, 30))
    offsets = sorted(draw(st.lists(st.floats(0, 120), min_size=n, max_size=n)))
    durations = draw(st.lists(st.floats(0.01, 30), min_size=n, max_size=n))
    min_r = draw(st.integers(0, 2))
    max_r = draw(st.integers(max(1, min_r), 5))
    parallelism = draw(st.integers(1, 4))
    window = draw(st.sampled_from([2.0, 10.0, 60.0]))
    yaml_text = (
        f"defaults: {{min_replicas: {min_r}, max_replicas: {max_r}, parallelism: {parallelism}, "
        f"window_s: {window}, panic_window_s: {min(window, 6.0)}, scale_to_zero_grace_s: 5}}"
    )
    scenario = Scenario(
        cold_start_s=draw(st.sampled_from([0.0, 1.0, 15.0])),
        initial_replicas=draw(st.one_of(st.none(), st.integers(0, 4))),
        tick_s=draw(st.sampled_from([0.5, 2.0, 7.0])),
        slo_wait_s=draw(st.sampled_from([0.5, 2.0, 30.0])),
    )
    return (
        yaml_text,
        scenario,
        [T0 + o for o in offsets],
        durations,
        draw(st.sampled_from(POLICIES)),
    )


@settings(max_examples=50, deadline=None)
@given(_cases())
def test_properties_on_random_small_traces(
    case: tuple[str, Scenario, list[float], list[float], str],
) -> None:
    yaml_text, scenario, arrivals, durations, policy = case
    policy_set = parse_policies([("p.yaml", yaml_text)])
    settings_ = policy_set.resolve("ns/model").settings
    trace = Trace({"ns/model": _trace(arrivals, list(durations))}, "hypothesis")
    run = simulate(trace, policy_set, scenario, compare=[policy], record_series=True)
    (out,) = run.outcomes[policy]
    by_label = {r.policy: r for r in run.results}
    result = by_label[policy]

    assert out.served == out.requests == len(arrivals)
    assert result.served == result.requests == len(arrivals)
    assert all(w >= 0 for w in out.waits)
    assert out.cold_start_waits <= sum(1 for w in out.waits if w > 0)
    assert out.replica_seconds >= 0

    bound = work_bound(durations, settings_.parallelism)
    assert by_label["work_bound"].replica_seconds == bound
    slack = 1e-6 * max(1.0, bound)
    assert out.replica_seconds >= bound - slack
    assert result.replica_seconds == out.replica_seconds

    ref = oracle(arrivals, durations, settings_.min_replicas, settings_.parallelism, trace.start)
    assert by_label["oracle"].replica_seconds == ref.replica_seconds
    assert ref.replica_seconds >= bound - slack

    assert 0.0 <= result.slo_attainment <= 1.0
    expected = sum(1 for w in out.waits if w <= scenario.slo_wait_s + 1e-9) / len(out.waits)
    assert result.slo_attainment == expected
    assert result.wait_p50_s <= result.wait_p95_s <= result.wait_p99_s <= max(out.waits)

    assert out.series is not None
    assert all(r <= settings_.max_replicas for r in out.series.replicas)
    # Each request waits at least as long as nothing could serve it and finishes in the run.
    assert all(
        a + w + d <= out.end + 1e-6 for a, w, d in zip(arrivals, out.waits, durations, strict=True)
    )
    assert math.isfinite(out.replica_seconds)


def test_wait_stats_of_known_waits() -> None:
    import numpy as np

    p50, p95, p99, attained = wait_stats(np.array([0.0, 0.0, 1.0, 3.0]), 1.0)
    assert p50 == 0.5
    assert attained == 0.75
    assert p95 == pytest.approx(3.0 - 0.05 * 3 * 2)
    assert p99 == pytest.approx(3.0 - 0.01 * 3 * 2)
    assert wait_stats(np.zeros(0), 1.0) == (0.0, 0.0, 0.0, 1.0)


# ------------------------------------------------------------------------- the front door


def test_every_observation_goes_through_the_front_door() -> None:
    """The simulation sends the daemon's events through ``DeploymentAutoscaler.apply``: the
    tracker counts one outcome per event, so a replay's counts are the daemon's. One replica
    of parallelism 1 and three requests at once: each starts and finishes once, and the queue
    changes four times (1, 2 waiting, then 1 and 0 as each gets the slot)."""
    from autoscaler.core.deployment import DeploymentAutoscaler
    from autoscaler.sim.engine import _Simulation

    resolved = parse_policies([("p.yaml", _fixed(1))]).resolve("ns/model")
    trace = _trace([T0, T0, T0], [1.0, 1.0, 1.0])
    scenario = Scenario(cold_start_s=0, initial_replicas=1, tick_s=2)
    auto = DeploymentAutoscaler(
        "ns/model",
        resolved.settings.core(),
        resolved.policy.build(resolved.params),
        resolved.settings.policy,
        T0,
    )
    run = _Simulation(
        auto,
        scenario,
        trace,
        service_times(trace, scenario),
        T0,
        record_series=False,
        max_actions=10,
    )
    run.run(None)
    assert dict(auto.tracker.counts) == {"applied": 3 + 3 + 4}
    assert list(run.outcome().waits) == [0.0, 1.0, 2.0]
