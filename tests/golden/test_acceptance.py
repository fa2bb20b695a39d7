"""The issue's acceptance bar, on seeded traces of the shape it describes.

The bar: min_replicas 1, initial_replicas 8, parallelism 4, target_utilization 0.7, a 60 s cold
start and a 2 s SLO; every request served, `concurrency` at >= 99% SLO attainment with
replica-seconds <= 1.5x the oracle, `slo` (the default) cheaper than the cheapest fixed fleet
that meets the target, and oracle and every policy >= work_bound. The real check is
on an Azure trace this project has not seen; these are steady chat-like Poisson loads whose
opening concurrency fits the 8 initial replicas (rates 3 and 5 req/s with +-30 to 50% swings
over the hour), with service times from LLM-like token counts.

On the bundled code-completion trace the bar is out of reach for any policy: its bursts (up to
67 req/s after minutes of silence) are shorter than a cold start. tests/golden/test_bundled_trace.py
pins that trace.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from autoscaler.config.loader import parse_policies
from autoscaler.sim.runner import SimulationRun, simulate
from autoscaler.sim.scenario import Scenario, ServiceTime
from autoscaler.sim.trace import DeploymentTrace, Trace

POLICY_FILE = """
defaults:
  min_replicas: 1
  max_replicas: 100
  parallelism: 4
  target_utilization: 0.7
  instance: {cpu: "4", memory: 16Gi, accelerator: A10G, use_gpu: true}
"""
SCENARIO = Scenario(
    cold_start_s=60,
    slo_wait_s=2,
    initial_replicas=8,
    service_time=ServiceTime(base_s=0.2, per_context_token_s=0.0002, per_generated_token_s=0.03),
)
POLICIES = ["slo", "concurrency", "queue", "hpa", "kpa"]


def chat_trace(seed: int, rate_rps: float, swing: float) -> Trace:
    """One hour of Poisson arrivals whose rate swings by ``swing`` over the hour."""
    rng = np.random.default_rng(seed)
    count = int(rng.poisson(rate_rps * (1 + swing) * 3600))
    times = np.sort(rng.uniform(0, 3600, count))
    keep = rng.uniform(0, 1, count) < (1 + swing * np.sin(2 * math.pi * times / 3600)) / (1 + swing)
    times = times[keep]
    n = times.size
    context = rng.lognormal(6.8, 0.9, n).astype(np.int64)
    generated = rng.lognormal(4.6, 0.8, n).astype(np.int64)
    deployment = DeploymentTrace(
        (times + 1.7e9).tolist(), context.tolist(), generated.tolist(), [None] * n
    )
    return Trace({"": deployment}, f"chat(seed={seed}, {rate_rps} rps, swing {swing})")


@pytest.fixture(
    scope="module",
    params=[(1, 5.0, 0.3), (2, 5.0, 0.5), (4, 3.0, 0.4)],
    ids=["5rps-30pct", "5rps-50pct", "3rps-40pct"],
)
def run(request: pytest.FixtureRequest) -> SimulationRun:
    seed, rate, swing = request.param
    return simulate(
        chat_trace(seed, rate, swing),
        parse_policies([("acceptance.yaml", POLICY_FILE)]),
        SCENARIO,
        compare=POLICIES,
        record_series=False,
    )


def test_concurrency_meets_the_bar(run: SimulationRun) -> None:
    results = {r.policy: r for r in run.results}
    concurrency, oracle = results["concurrency"], results["oracle"]
    assert concurrency.served == concurrency.requests == run.trace.requests
    assert concurrency.slo_attainment >= 0.99
    assert concurrency.replica_seconds <= 1.5 * oracle.replica_seconds


def test_every_policy_serves_everything_and_stays_above_the_work_bound(run: SimulationRun) -> None:
    results = {r.policy: r for r in run.results}
    bound = results["work_bound"].replica_seconds
    assert results["oracle"].replica_seconds >= bound
    for name in POLICIES:
        assert results[name].served == results[name].requests
        assert results[name].replica_seconds >= bound


def test_slo_beats_the_cheapest_fixed_fleet(run: SimulationRun) -> None:
    """Issue 10's bar for the default: the 99.9% target at no more than 0.95x the cheapest
    fixed fleet that reaches it, with at most 30 scale actions per hour (measured: 100% at
    0.88x to 0.91x, 14 to 18 actions per hour on these traces)."""
    results = {r.policy: r for r in run.results}
    slo, fleet = results["slo"], results["best_static"]
    assert fleet.slo_attainment >= 0.999
    assert slo.slo_attainment >= 0.999
    assert slo.replica_seconds <= 0.95 * fleet.replica_seconds
    assert slo.scale_actions_per_hour <= 30
