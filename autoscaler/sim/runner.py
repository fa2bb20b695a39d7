"""Runs a trace through each policy for every deployment and aggregates the results.

Next to the policies it computes the references (see ``reference``): ``oracle``,
``work_bound``, ``hindsight`` and ``best_static``, the cheapest fixed fleet that meets the SLO
target, found by simulating fixed fleets with the same engine.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from autoscaler.config.catalog import Catalog, load_catalog
from autoscaler.config.loader import PolicySet, Resolved
from autoscaler.config.models import DeploymentSettings, SloSettings
from autoscaler.sim.engine import DeploymentOutcome, service_times, simulate_deployment
from autoscaler.sim.reference import hindsight, oracle, work_bound
from autoscaler.sim.results import BEST_STATIC, PolicyResult, wait_stats, winner
from autoscaler.sim.scenario import Scenario
from autoscaler.sim.trace import UNNAMED, Trace

FILE_POLICY = "policy-file"
"""Result label when deployments run their own (differing) policies from the file."""

BEST_STATIC_POLICY = "concurrency"
"""The policy the fixed fleets run: with min = max = N the bounds clamp any policy to N."""

DEFAULT_SLO_TARGET = float(SloSettings.model_fields["attainment"].default)


@dataclass
class SimulationRun:
    trace: Trace
    scenario: Scenario
    results: list[PolicyResult]
    outcomes: dict[str, list[DeploymentOutcome]]
    resolved: dict[str, Resolved]
    """Each deployment's own settings (as the file says, before --compare)."""
    slo_target: float = DEFAULT_SLO_TARGET
    """Attainment a policy must reach to be the winner (and best_static's bar)."""
    slo_wait_s: dict[str, float] = field(default_factory=dict)
    """Per deployment (as in ``DeploymentOutcome.deployment``): the wait it is scored against."""
    best_static_fleet: dict[str, int] | None = None
    """Per deployment: the fixed fleet of the ``best_static`` row; None when not computed."""

    @property
    def winner(self) -> str | None:
        return winner(self.results, self.slo_target)

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "trace": {"requests": self.trace.requests, "span_s": self.trace.span_s},
            "slo_target": self.slo_target,
            "winner": self.winner,
            "results": [r.as_json() for r in self.results],
        }
        if self.best_static_fleet is not None:
            data["best_static_fleet"] = dict(self.best_static_fleet)
        return data


def slo_wait(scenario: Scenario, settings: DeploymentSettings) -> float:
    """The wait a deployment is scored against: the scenario's, else its own ``slo.wait_s``."""
    return scenario.slo_wait_s if scenario.slo_wait_s is not None else settings.slo.wait_s


def default_slo_target(resolved: dict[str, Resolved]) -> tuple[float, bool]:
    """The strictest ``slo.attainment`` of the deployments, and whether they differ."""
    targets = {r.settings.slo.attainment for r in resolved.values()}
    if not targets:
        return DEFAULT_SLO_TARGET, False
    return max(targets), len(targets) > 1


def initial_replicas(scenario: Scenario, settings: DeploymentSettings) -> int:
    """Replicas ready at trace start, as the engine places them."""
    wanted = (
        settings.min_replicas if scenario.initial_replicas is None else scenario.initial_replicas
    )
    return min(wanted, settings.max_replicas)


def smallest_meeting(ok: Callable[[int], bool], low: int, high: int) -> int | None:
    """The smallest ``n`` in ``[low, high]`` with ``ok(n)``, or None if not even ``high``.
    Bisection assumes ``ok`` is monotone; it is only nearly so (a bigger fleet can shift a
    request across the wait bound), so the neighbours below the answer are checked too."""
    lo, hi = low, high  # ok(hi), if anything is
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid + 1
    if not ok(hi):  # only ever the untested ``high``: each simulation counts
        return None
    while hi > low and ok(hi - 1):
        hi -= 1
    return hi


# Set before worker processes fork, so tasks need only carry names.
_JOB: tuple[Trace, PolicySet, Scenario, Catalog, bool, float] | None = None

_Task = tuple[str, str | None]
"""(deployment, policy override); the override ``BEST_STATIC`` runs the fleet search."""


def _run_task(
    task: _Task, progress: Callable[[int], None] | None = None
) -> tuple[int | None, DeploymentOutcome]:
    assert _JOB is not None
    trace, policy_set, scenario, catalog, record_series, target = _JOB
    name, override = task
    if override == BEST_STATIC:
        fleet, outcome = _best_static(name, trace, policy_set, scenario, target)
        if progress is not None:
            progress(outcome.requests)
        return fleet, outcome
    resolved = policy_set.resolve(name, policy_override=override, catalog=catalog)
    dep_trace = trace.deployments[name]
    label = override or resolved.settings.policy
    return None, simulate_deployment(
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


def _best_static(
    name: str, trace: Trace, policy_set: PolicySet, scenario: Scenario, target: float
) -> tuple[int, DeploymentOutcome]:
    """The smallest fixed fleet of ``name`` meeting ``target``, simulated by the same engine
    from the same initial replicas (so replicas above them pay a cold start); if no fleet up
    to ``max_replicas`` meets it, ``max_replicas``."""
    resolved = policy_set.resolve(name, policy_override=BEST_STATIC_POLICY)
    dep_trace = trace.deployments[name]
    services = service_times(dep_trace, scenario)
    wait_s = slo_wait(scenario, resolved.settings)
    runs: dict[int, DeploymentOutcome] = {}

    def run(fleet: int) -> DeploymentOutcome:
        if fleet not in runs:
            # Schedules would move the bounds off N; rates and delays lose to the bounds.
            settings = resolved.settings.model_copy(
                update={"min_replicas": fleet, "max_replicas": fleet, "schedule": ()}
            )
            runs[fleet] = simulate_deployment(
                name or "trace",
                BEST_STATIC,
                settings,
                resolved.policy.build(resolved.params),
                scenario,
                dep_trace,
                services,
                trace.start,
                record_series=False,
            )
        return runs[fleet]

    def ok(fleet: int) -> bool:
        waits = np.asarray(run(fleet).waits, dtype=np.float64)
        return waits.size == 0 or float(np.mean(waits <= wait_s + 1e-9)) >= target - 1e-12

    top = resolved.settings.max_replicas
    fleet = smallest_meeting(ok, 1, top) or top
    return fleet, run(fleet)


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
    slo_target: float | None = None,
    references: bool = True,
) -> SimulationRun:
    """Simulate every deployment of ``trace`` under each policy in ``compare`` (or each
    deployment's own policy) and add the references: ``oracle``, ``work_bound``,
    ``hindsight`` and, with ``references`` (it simulates several fleets per deployment),
    ``best_static``. ``slo_target`` defaults to the deployments' strictest ``slo.attainment``."""
    global _JOB
    catalog = catalog or load_catalog()
    names = [n for n, d in trace.deployments.items() if d.arrivals]
    resolved = {n: policy_set.resolve(n, catalog=catalog) for n in names}
    target = slo_target if slo_target is not None else default_slo_target(resolved)[0]
    # Each named policy runs once, in first-seen order: a name given twice would otherwise
    # be summed into one result with every count doubled.
    overrides: list[str | None] = list(dict.fromkeys(compare)) if compare else [None]
    tasks: list[_Task] = [(n, o) for o in overrides for n in names]
    if references:
        # The searches are the longest tasks: first, so the pool does not end on one of them.
        tasks = [(n, BEST_STATIC) for n in names] + tasks
    _JOB = (trace, policy_set, scenario, catalog, record_series, target)
    try:
        if workers > 1 and len(tasks) > 1:
            context = multiprocessing.get_context("fork")
            with context.Pool(min(workers, os.cpu_count() or 1)) as pool:
                done = []
                for item in pool.imap(
                    _run_task, tasks, chunksize=max(1, len(tasks) // (workers * 8))
                ):
                    done.append(item)
                    if progress is not None:
                        progress(item[1].requests)
        else:
            # In one process the engine reports as it goes (every 4,096 arrivals), so a long
            # single-deployment trace moves the bar too; workers report per deployment.
            done = [_run_task(task, progress) for task in tasks]
    finally:
        _JOB = None

    outcomes: dict[str, list[DeploymentOutcome]] = {}
    fleet: dict[str, int] = {}
    static: list[DeploymentOutcome] = []
    for (_, override), (size, outcome) in zip(tasks, done, strict=True):
        if override == BEST_STATIC:
            assert size is not None
            fleet[outcome.deployment] = size
            static.append(outcome)
        else:
            outcomes.setdefault(override or _file_label(resolved), []).append(outcome)

    prices = {
        n or "trace": r.instance.price_per_hour if r.instance else 0.0 for n, r in resolved.items()
    }
    waits_for = {n or "trace": slo_wait(scenario, r.settings) for n, r in resolved.items()}
    results = [_aggregate(label, outs, prices, waits_for) for label, outs in outcomes.items()]
    results.extend(_references(trace, resolved, scenario, prices))
    if references:
        results.append(_aggregate(BEST_STATIC, static, prices, waits_for))
    results = _with_ratios(results, trace.span_s, len(names))
    return SimulationRun(
        trace,
        scenario,
        results,
        outcomes,
        resolved,
        slo_target=target,
        slo_wait_s=waits_for,
        best_static_fleet=fleet if references else None,
    )


def _file_label(resolved: dict[str, Resolved]) -> str:
    policies = {r.settings.policy for r in resolved.values()}
    return policies.pop() if len(policies) == 1 else FILE_POLICY


def _aggregate(
    label: str,
    outs: list[DeploymentOutcome],
    prices: dict[str, float],
    waits_for: dict[str, float],
) -> PolicyResult:
    """Totals over deployments; attainment counts each request against its own deployment's
    wait, so it is requests within their wait / all requests."""
    if outs:
        waits = np.concatenate([np.asarray(o.waits, dtype=np.float64) for o in outs])
        bounds = np.concatenate([np.full(len(o.waits), waits_for[o.deployment]) for o in outs])
    else:
        waits = bounds = np.zeros(0)
    p50, p95, p99, attained = wait_stats(waits, bounds)
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
    oracle_rs = oracle_cost = bound_rs = bound_cost = hind_rs = hind_cost = 0.0
    oracle_actions = hind_actions = 0
    requests = 0
    for name, res in resolved.items():
        dep = trace.deployments[name]
        services = service_times(dep, scenario)
        settings = res.settings
        initial = initial_replicas(scenario, settings)
        floor, p = settings.min_replicas, settings.parallelism
        ref = oracle(dep.arrivals, services, floor, p, trace.start, initial)
        hind = hindsight(
            dep.arrivals, services, floor, p, trace.start, scenario.cold_start_s, initial
        )
        bound = work_bound(services, p)
        price = prices[name or "trace"] / 3600.0
        oracle_rs += ref.replica_seconds
        oracle_cost += ref.replica_seconds * price
        oracle_actions += ref.scale_actions
        hind_rs += hind.replica_seconds
        hind_cost += hind.replica_seconds * price
        hind_actions += hind.scale_actions
        bound_rs += bound
        bound_cost += bound * price
        requests += len(dep.arrivals)

    def perfect(label: str, replica_seconds: float, cost: float, actions: int) -> PolicyResult:
        return PolicyResult(
            label, requests, requests, replica_seconds, cost, 0, actions, 0.0, 0.0, 0.0, 1.0
        )

    return [
        perfect("oracle", oracle_rs, oracle_cost, oracle_actions),
        perfect("work_bound", bound_rs, bound_cost, 0),
        perfect("hindsight", hind_rs, hind_cost, hind_actions),
    ]


def _with_ratios(
    results: list[PolicyResult], span_s: float, deployments: int
) -> list[PolicyResult]:
    costs = {r.policy: r.cost for r in results}

    def ratio(cost: float, reference: str) -> float | None:
        base = costs.get(reference)
        return cost / base if base is not None and base > 0 else None

    hours = span_s / 3600.0 * deployments
    return [
        dataclasses.replace(
            r,
            scale_actions_per_hour=r.scale_actions / hours if hours > 0 else None,
            cost_vs_oracle=ratio(r.cost, "oracle"),
            cost_vs_hindsight=ratio(r.cost, "hindsight"),
            cost_vs_best_static=ratio(r.cost, BEST_STATIC),
        )
        for r in results
    ]


__all__ = ["UNNAMED", "SimulationRun", "simulate"]
