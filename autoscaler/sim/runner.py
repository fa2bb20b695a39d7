"""Runs a trace through each policy for every deployment and aggregates the results."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from autoscaler.config.catalog import Catalog, load_catalog
from autoscaler.config.loader import PolicySet, Resolved
from autoscaler.sim.engine import DeploymentOutcome, service_times, simulate_deployment
from autoscaler.sim.reference import oracle, work_bound
from autoscaler.sim.results import PolicyResult, wait_stats
from autoscaler.sim.scenario import Scenario
from autoscaler.sim.trace import UNNAMED, Trace

FILE_POLICY = "policy-file"
"""Result label when deployments run their own (differing) policies from the file."""


@dataclass
class SimulationRun:
    trace: Trace
    scenario: Scenario
    results: list[PolicyResult]
    outcomes: dict[str, list[DeploymentOutcome]]
    resolved: dict[str, Resolved]
    """Each deployment's own settings (as the file says, before --compare)."""

    def as_json(self) -> dict[str, object]:
        return {
            "trace": {"requests": self.trace.requests, "span_s": self.trace.span_s},
            "results": [r.as_json() for r in self.results],
        }


# Set before worker processes fork, so tasks need only carry names.
_JOB: tuple[Trace, PolicySet, Scenario, Catalog, bool] | None = None


def _run_task(
    task: tuple[str, str | None], progress: Callable[[int], None] | None = None
) -> DeploymentOutcome:
    assert _JOB is not None
    trace, policy_set, scenario, catalog, record_series = _JOB
    name, override = task
    resolved = policy_set.resolve(name, policy_override=override, catalog=catalog)
    dep_trace = trace.deployments[name]
    label = override or resolved.settings.policy
    return simulate_deployment(
        name or "trace",
        label,
        resolved.settings,
        resolved.policy.build(resolved.params),
        scenario,
        dep_trace,
        service_times(dep_trace, scenario),
        trace.start,
        record_series=record_series,
        progress=progress,
    )


def simulate(
    trace: Trace,
    policy_set: PolicySet,
    scenario: Scenario,
    *,
    compare: Sequence[str] | None = None,
    catalog: Catalog | None = None,
    record_series: bool = True,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> SimulationRun:
    """Simulate every deployment of ``trace`` under each policy in ``compare`` (or each
    deployment's own policy) and add the ``oracle`` and ``work_bound`` references."""
    global _JOB
    catalog = catalog or load_catalog()
    names = [n for n, d in trace.deployments.items() if d.arrivals]
    resolved = {n: policy_set.resolve(n, catalog=catalog) for n in names}
    # Each named policy runs once, in first-seen order: a name given twice would otherwise
    # be summed into one result with every count doubled.
    overrides: list[str | None] = list(dict.fromkeys(compare)) if compare else [None]
    tasks = [(n, o) for o in overrides for n in names]
    _JOB = (trace, policy_set, scenario, catalog, record_series)
    try:
        if workers > 1 and len(tasks) > 1:
            context = multiprocessing.get_context("fork")
            with context.Pool(min(workers, os.cpu_count() or 1)) as pool:
                outcomes_list = []
                for outcome in pool.imap(
                    _run_task, tasks, chunksize=max(1, len(tasks) // (workers * 8))
                ):
                    outcomes_list.append(outcome)
                    if progress is not None:
                        progress(outcome.requests)
        else:
            # In one process the engine reports as it goes (every 4,096 arrivals), so a long
            # single-deployment trace moves the bar too; workers report per deployment.
            outcomes_list = [_run_task(task, progress) for task in tasks]
    finally:
        _JOB = None

    outcomes: dict[str, list[DeploymentOutcome]] = {}
    for (_, override), outcome in zip(tasks, outcomes_list, strict=True):
        outcomes.setdefault(override or _file_label(resolved), []).append(outcome)

    prices = {
        n or "trace": r.instance.price_per_hour if r.instance else 0.0 for n, r in resolved.items()
    }
    results = [_aggregate(label, outs, prices, scenario) for label, outs in outcomes.items()]
    results.extend(_references(trace, resolved, scenario, prices))
    return SimulationRun(trace, scenario, results, outcomes, resolved)


def _file_label(resolved: dict[str, Resolved]) -> str:
    policies = {r.settings.policy for r in resolved.values()}
    return policies.pop() if len(policies) == 1 else FILE_POLICY


def _aggregate(
    label: str, outs: list[DeploymentOutcome], prices: dict[str, float], scenario: Scenario
) -> PolicyResult:
    waits = (
        np.concatenate([np.asarray(o.waits, dtype=np.float64) for o in outs])
        if outs
        else np.zeros(0)
    )
    served_waits = waits  # every request is served before a simulation ends
    p50, p95, p99, attained = wait_stats(served_waits, scenario.slo_wait_s)
    replica_seconds = sum(o.replica_seconds for o in outs)
    return PolicyResult(
        policy=label,
        requests=sum(o.requests for o in outs),
        served=sum(o.served for o in outs),
        replica_seconds=replica_seconds,
        cost=sum(o.replica_seconds / 3600.0 * prices[o.deployment] for o in outs),
        cold_start_waits=sum(o.cold_start_waits for o in outs),
        scale_actions=sum(o.scale_actions for o in outs),
        wait_p50_s=p50,
        wait_p95_s=p95,
        wait_p99_s=p99,
        slo_attainment=attained,
    )


def _references(
    trace: Trace, resolved: dict[str, Resolved], scenario: Scenario, prices: dict[str, float]
) -> list[PolicyResult]:
    oracle_rs = oracle_cost = bound_rs = bound_cost = 0.0
    oracle_actions = 0
    requests = 0
    for name, res in resolved.items():
        dep = trace.deployments[name]
        services = service_times(dep, scenario)
        settings = res.settings
        ref = oracle(
            dep.arrivals, services, settings.min_replicas, settings.parallelism, trace.start
        )
        bound = work_bound(services, settings.parallelism)
        price = prices[name or "trace"]
        oracle_rs += ref.replica_seconds
        oracle_cost += ref.replica_seconds / 3600.0 * price
        oracle_actions += ref.scale_actions
        bound_rs += bound
        bound_cost += bound / 3600.0 * price
        requests += len(dep.arrivals)

    def perfect(label: str, replica_seconds: float, cost: float, actions: int) -> PolicyResult:
        return PolicyResult(
            label, requests, requests, replica_seconds, cost, 0, actions, 0.0, 0.0, 0.0, 1.0
        )

    return [
        perfect("oracle", oracle_rs, oracle_cost, oracle_actions),
        perfect("work_bound", bound_rs, bound_cost, 0),
    ]


__all__ = ["UNNAMED", "SimulationRun", "simulate"]
