"""best_static: the cheapest fixed fleet meeting the SLO target, found with the simulator."""

from __future__ import annotations

import numpy as np
import pytest

from autoscaler.config.loader import PolicySet, parse_policies
from autoscaler.config.registry import get_policy
from autoscaler.sim.engine import service_times, simulate_deployment
from autoscaler.sim.runner import SimulationRun, simulate, smallest_meeting
from autoscaler.sim.scenario import Scenario
from autoscaler.sim.trace import DeploymentTrace, Trace

T0 = 1_700_000_000.0
NAME = "ns/model"


def _policies(max_replicas: int = 10, attainment: float = 0.999) -> PolicySet:
    return parse_policies(
        [
            (
                "p.yaml",
                f"defaults: {{policy: hpa, min_replicas: 1, max_replicas: {max_replicas}, "
                "parallelism: 1, instance: {cpu: '4', memory: 16Gi, accelerator: A10G, "
                f"use_gpu: true}}, slo: {{wait_s: 2, attainment: {attainment}}}}}",
            )
        ]
    )


def _steady(rate: float = 4.0, seconds: float = 120.0) -> Trace:
    # One request every 1 / rate s, each 1 s long: exactly `rate` in flight, so `rate`
    # replicas serve everything at once and one fewer falls behind more every second.
    n = int(rate * seconds)
    arrivals = [T0 + i / rate for i in range(n)]
    return Trace({NAME: DeploymentTrace(arrivals, [0] * n, [0] * n, [1.0] * n)}, "steady")


# Every fleet up to max is ready at start: the search is about capacity, not cold starts.
SCENARIO = Scenario(cold_start_s=10, initial_replicas=10, tick_s=2)


def _fixed_fleet_attainment(trace: Trace, fleet: int, scenario: Scenario) -> float:
    settings = (
        _policies()
        .resolve(NAME)
        .settings.model_copy(update={"min_replicas": fleet, "max_replicas": fleet})
    )
    dep = trace.deployments[NAME]
    spec = get_policy("concurrency")
    out = simulate_deployment(
        NAME,
        "fixed",
        settings,
        spec.build(spec.params_type()),
        scenario,
        dep,
        service_times(dep, scenario),
        trace.start,
        record_series=False,
    )
    return float(np.mean(np.asarray(out.waits) <= 2.0 + 1e-9))


def _row(run: SimulationRun, label: str) -> tuple[float, float]:
    result = next(r for r in run.results if r.policy == label)
    return result.slo_attainment, result.cost


@pytest.mark.parametrize(
    ("needed", "high", "expected"),
    [(1, 10, 1), (4, 10, 4), (10, 10, 10), (11, 10, None), (7, 7, 7), (1, 1, 1), (2, 1, None)],
)
def test_smallest_meeting_on_a_monotone_predicate(
    needed: int, high: int, expected: int | None
) -> None:
    asked: list[int] = []

    def ok(n: int) -> bool:
        asked.append(n)
        return n >= needed

    assert smallest_meeting(ok, 1, high) == expected
    # Bisection: a handful of simulations, not one per fleet size.
    assert len(asked) <= 2 * high.bit_length() + 2


def test_smallest_meeting_returns_a_size_that_meets_when_not_monotone() -> None:
    meeting = {3, 6, 7, 8, 9, 10}
    got = smallest_meeting(lambda n: n in meeting, 1, 10)
    assert got in meeting and got - 1 not in meeting


@pytest.mark.parametrize(
    ("rate", "fleet"),
    [(2.0, 2), (4.0, 4), (6.0, 6)],
)
def test_best_static_finds_the_smallest_fleet_meeting_the_target(rate: float, fleet: int) -> None:
    trace = _steady(rate)
    run = simulate(trace, _policies(), SCENARIO, compare=["hpa"], record_series=False)
    assert run.best_static_fleet == {NAME: fleet}
    attained, _ = _row(run, "best_static")
    assert attained >= 0.999
    # One replica fewer misses the target, in the same simulator.
    assert _fixed_fleet_attainment(trace, fleet, SCENARIO) >= 0.999
    assert _fixed_fleet_attainment(trace, fleet - 1, SCENARIO) < 0.999
    assert run.as_json()["best_static_fleet"] == {NAME: fleet}


def test_a_lower_target_can_take_a_smaller_fleet() -> None:
    trace = _steady(4.0, seconds=120.0)
    strict = simulate(trace, _policies(), SCENARIO, compare=["hpa"], record_series=False)
    lax = simulate(
        trace, _policies(), SCENARIO, compare=["hpa"], record_series=False, slo_target=0.5
    )
    assert strict.best_static_fleet is not None and lax.best_static_fleet is not None
    assert lax.best_static_fleet[NAME] <= strict.best_static_fleet[NAME]
    assert lax.slo_target == 0.5
    assert _row(lax, "best_static")[0] >= 0.5


def test_no_fleet_meets_the_target_takes_max_replicas() -> None:
    trace = _steady(6.0)
    run = simulate(trace, _policies(max_replicas=3), SCENARIO, compare=["hpa"], record_series=False)
    assert run.best_static_fleet == {NAME: 3}
    attained, _ = _row(run, "best_static")
    assert attained < 0.999


def test_replicas_above_the_initial_ones_pay_the_cold_start() -> None:
    # One replica ready at start, four needed: the other three take 10 s to come.
    trace = _steady(4.0)
    cold = Scenario(cold_start_s=10, initial_replicas=1, tick_s=2)
    run = simulate(trace, _policies(), cold, compare=["hpa"], record_series=False)
    warm = simulate(trace, _policies(), SCENARIO, compare=["hpa"], record_series=False)
    assert run.best_static_fleet is not None
    result = next(r for r in run.results if r.policy == "best_static")
    assert result.cold_start_waits > 0
    assert run.best_static_fleet[NAME] >= 4
    assert warm.best_static_fleet == {NAME: 4}


def test_default_target_is_the_strictest_of_the_policy_file() -> None:
    run = simulate(_steady(2.0), _policies(attainment=0.95), SCENARIO, compare=["hpa"])
    assert run.slo_target == 0.95
    assert run.as_json()["slo_target"] == 0.95


def test_best_static_is_optional_and_the_ratios_follow() -> None:
    trace = _steady(2.0, seconds=60.0)
    without = simulate(trace, _policies(), SCENARIO, compare=["hpa"], references=False)
    assert without.best_static_fleet is None
    assert "best_static_fleet" not in without.as_json()
    assert {r.policy for r in without.results} == {"hpa", "oracle", "work_bound", "hindsight"}
    assert all(r.cost_vs_best_static is None for r in without.results)
    run = simulate(trace, _policies(), SCENARIO, compare=["hpa"])
    by = {r.policy: r for r in run.results}
    for result in by.values():
        assert result.cost_vs_oracle == pytest.approx(result.cost / by["oracle"].cost)
        assert result.cost_vs_hindsight == pytest.approx(result.cost / by["hindsight"].cost)
        assert result.cost_vs_best_static == pytest.approx(result.cost / by["best_static"].cost)
        hours = trace.span_s / 3600.0
        assert result.scale_actions_per_hour == pytest.approx(result.scale_actions / hours)


def test_workers_give_the_same_best_static() -> None:
    two = Trace(
        {"ns/a": _steady(2.0).deployments[NAME], "ns/b": _steady(4.0).deployments[NAME]}, "two"
    )
    serial = simulate(two, _policies(), SCENARIO, compare=["hpa"], record_series=False)
    parallel = simulate(two, _policies(), SCENARIO, compare=["hpa"], record_series=False, workers=2)
    assert serial.best_static_fleet == parallel.best_static_fleet == {"ns/a": 2, "ns/b": 4}
    assert serial.as_json() == parallel.as_json()
