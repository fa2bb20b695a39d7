"""How cheap can any reactive policy be on the steady shapes? A bound that knows the rate level.

The steady shapes of ``bench/traces.py`` are a rate level (slow drifts) times noise that no
history can predict: Poisson arrivals on ``steady_long``, and on the chat shapes a Gamma factor
drawn afresh every 30 s. A policy that learns from the past can at best know the level. This
bound is given it: a sizer that reads the true peak level of the next cold start from the
trace's generator (``bench.traces.LEVELS``), knows the trace's mean service time, and runs
under ``slo``'s own guardrails (delay, intervals, bounds) in the same simulator. Two sizing
rules are searched, each for its cheapest run that meets the attainment target: a
utilization rule, ``ceil(level x service / (parallelism x rho))`` replicas, and the M/G/k
model ``slo`` uses (``core.queueing``) at the known level with the miss budget scaled by a
factor (a fleet that knows the level can spend more of the budget than one that must guard
against misjudging it).

It is the cheapest of two families, not a proof that nothing is cheaper; but a policy that
must also estimate the level is not expected to beat it, so where the bound misses a cost
target, no reactive policy is likely to meet it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoscaler.core.policy import Recommendation

RHO_COARSE = tuple(round(0.30 + 0.05 * i, 2) for i in range(14))
"""Utilizations tried first (0.30 to 0.95); the best passing one is then refined by 0.01."""
RHO_FINE_STEP = 0.01
BUDGET_FACTORS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0)
"""Multiples of the SLO's miss budget the queue-model rule is tried at."""


@dataclass(frozen=True)
class Bound:
    rule: str
    attainment: float
    cost: float
    scale_actions: int


class LevelSizer:
    """A policy that is told the rate level of every second of the trace (no I/O, no clock:
    it indexes the given array by ``snapshot.now``)."""

    def __init__(
        self, level: Any, start: float, size: Callable[[float], int], lookahead_s: float
    ) -> None:
        self.level = level
        self.start = start
        self.size = size
        self.lookahead = int(lookahead_s)

    def initial_state(self) -> None:
        return None

    def recommend(self, snapshot: Any, previous: None, /) -> Recommendation[None]:
        t = min(max(0, int(snapshot.now - self.start)), len(self.level) - 1)
        peak = float(self.level[t : t + self.lookahead + 1].max())
        replicas = max(1, self.size(peak))
        return Recommendation(replicas, None, lambda: f"level bound: {peak:.2f} req/s")


def bound_for(name: str, trace: Any, settings: Any, scenario: Any, price: float) -> Bound | None:
    """The cheapest level-clairvoyant run of trace ``name`` meeting the attainment target, or
    None when the trace has no known level or no rule tried meets it."""
    from autoscaler.core.queueing import replicas_needed
    from autoscaler.sim.engine import service_times, simulate_deployment
    from bench import decisions
    from bench.traces import LEVELS

    if name not in LEVELS:
        return None
    level = LEVELS[name]()
    dep = next(iter(trace.deployments.values()))
    services = service_times(dep, scenario)
    service_s = float(np.mean(services))
    scv = float(np.var(services)) / service_s**2
    p = settings.parallelism
    budget = 1.0 - settings.slo.attainment
    runs: dict[str, Bound] = {}

    def run(rule: str, size: Callable[[float], int]) -> Bound:
        if rule not in runs:
            sizer = LevelSizer(level, trace.start, size, decisions.COLD_START_S)
            out = simulate_deployment(
                name,
                "level_bound",
                settings,
                sizer,
                scenario,
                dep,
                services,
                trace.start,
                record_series=False,
            )
            waits = np.asarray(out.waits, dtype=np.float64)
            attained = float(np.mean(waits <= decisions.SLO_WAIT_S + 1e-9)) if waits.size else 1.0
            cost = out.replica_seconds / 3600.0 * price
            runs[rule] = Bound(rule, attained, cost, out.scale_actions)
        return runs[rule]

    def utilization(rho: float) -> Bound:
        return run(f"rho {rho:.2f}", lambda rate: math.ceil(rate * service_s / (p * rho)))

    def queue(factor: float) -> Bound:
        def size(rate: float) -> int:
            return replicas_needed(
                rate * service_s,
                p,
                service_s,
                scv,
                decisions.SLO_WAIT_S,
                budget * factor,
                settings.max_replicas,
            )[0]

        return run(f"M/G/k at {factor:g}x budget", size)

    def met(found: Sequence[Bound]) -> list[Bound]:
        return [b for b in found if b.attainment >= decisions.ATTAINMENT_TARGET - 1e-12]

    by_rho = {rho: utilization(rho) for rho in RHO_COARSE}
    coarse = met(list(by_rho.values()))
    candidates = [*coarse, *met([queue(f) for f in BUDGET_FACTORS])]
    if coarse:
        rho = min((r for r, b in by_rho.items() if b in coarse), key=lambda r: by_rho[r].cost)
        near = [round(rho + RHO_FINE_STEP * k, 2) for k in range(-4, 5) if k]
        candidates += met([utilization(r) for r in near])
    return min(candidates, key=lambda b: b.cost) if candidates else None
