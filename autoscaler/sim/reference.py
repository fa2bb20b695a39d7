"""Reference points computed on the same trace as the policies.

``oracle``: clairvoyant provisioning; at every instant ``max(min_replicas, ceil(in_flight /
parallelism))`` replicas, every request served at once, no cold start. It starts, like every
policy, from the replicas in place at trace start (``initial``: the scenario's
``initial_replicas``, or ``min_replicas``); those are billed until the oracle's demand first
changes them, at the deployment's first arrival, so a deployment that is quiet at trace start
pays for them until its first request as a policy would (fewer than ``min_replicas`` are
raised to it at once).

``hindsight``: the oracle's zero-wait demand curve provisioned with hindsight but paying the
cold start. The k-th replica ("level" k) is needed wherever the demand is at least k; it is
asked for ``cold_start`` before each need and billed from then, kept through an idle gap
shorter than the cold start (cheaper than stopping and starting again) and released after a
longer one. The first ``initial`` levels are ready at trace start, and nothing is billed
before the trace starts, so a need within the first ``cold_start`` seconds costs only from the
start. Every request waits 0 s: it is what a policy with perfect foresight would pay.

``work_bound``: total service seconds / parallelism, the replica-seconds no provisioning can
go below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Reference:
    replica_seconds: float
    scale_actions: int
    end: float


def oracle(
    arrivals: list[float],
    services: list[float],
    min_replicas: int,
    parallelism: int,
    start: float,
    initial: int | None = None,
) -> Reference:
    replicas = min_replicas if initial is None else initial
    actions = 0
    if replicas < min_replicas:  # the floor holds from the start, as at a policy's first decision
        replicas, actions = min_replicas, 1
    if not arrivals:
        return Reference(0.0, actions, start)
    # The demand curve is the oracle's fleet after each instant (its first row is ``start``).
    # Vectorised, as a Python sweep over every start and finish was a tenth of a simulation.
    times, levels = demand_curve(arrivals, services, min_replicas, parallelism, start)
    before = levels[:-1].copy()  # the fleet over [times[i], times[i + 1])
    before[0] = replicas
    # cumsum adds in order, from 0.0, like the sweep's ``total +=``: the sum is bit-identical.
    pieces = np.concatenate([[0.0], before * np.diff(times)])
    total = float(np.cumsum(pieces)[-1])
    actions += int(np.count_nonzero(levels[1:] != before))
    return Reference(total, actions, float(times[-1]))


def demand_curve(
    arrivals: list[float], services: list[float], min_replicas: int, parallelism: int, start: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """The oracle's zero-wait demand as a step function: ``levels[i]`` replicas over
    ``[times[i], times[i + 1])``; the first step is at ``start`` (demand ``min_replicas``
    before anything arrives) and the last is the final finish."""
    n = len(arrivals)
    arr = np.asarray(arrivals, dtype=np.float64)
    times = np.concatenate([arr, arr + np.asarray(services, dtype=np.float64)])
    deltas = np.concatenate([np.ones(n, dtype=np.int64), -np.ones(n, dtype=np.int64)])
    order = np.lexsort((deltas, times))  # at one instant finishes first, as in the oracle
    times, deltas = times[order], deltas[order]
    in_flight = np.cumsum(deltas)
    # Only the state after every change at one instant counts: keep each instant's last row.
    last_of_instant = np.append(times[1:] != times[:-1], True)
    times, in_flight = times[last_of_instant], in_flight[last_of_instant]
    levels = np.maximum(min_replicas, -(-in_flight // parallelism))
    return np.concatenate([[start], times]), np.concatenate([[min_replicas], levels])


def hindsight(
    arrivals: list[float],
    services: list[float],
    min_replicas: int,
    parallelism: int,
    start: float,
    cold_start: float,
    initial: int | None = None,
) -> Reference:
    """See the module docstring. A sweep over the demand curve's steps: each step up opens
    the levels it adds, each step down closes the levels it drops."""
    ready = min_replicas if initial is None else initial
    if not arrivals:
        return Reference(0.0, 0, start)
    times, levels = demand_curve(arrivals, services, min_replicas, parallelism, start)
    end = float(times[-1])
    opened: list[float] = []  # per level: start of its current merged need
    closed: list[float] = []  # per level: end of its last need (inf while needed)
    billed: list[tuple[float, int]] = []  # (instant, +1 asked for / -1 released)
    total = 0.0

    def bill(need_start: float, need_end: float, released: bool = True) -> None:
        nonlocal total
        # The initial levels are ready at start; the rest are asked for a cold start early,
        # which is also "from the start" when the need is that close to it.
        asked = max(start, need_start - cold_start)
        total += need_end - asked
        billed.append((asked, 1))
        if released:  # what is still up at the end is not a scale action, as in the engine
            billed.append((need_end, -1))

    current = 0
    for t, level in zip(times.tolist(), levels.tolist(), strict=True):
        for k in range(current, level):  # levels k+1..level become needed at t
            if k == len(opened):
                opened.append(t)
                closed.append(math.inf)
            elif t - closed[k] < cold_start:
                closed[k] = math.inf  # a short gap: the replica stayed up through it
            else:
                bill(opened[k], closed[k])
                opened[k], closed[k] = t, math.inf
        for k in range(level, current):  # levels level+1..current are idle from t
            closed[k] = t
        current = level
    for need_start, need_end in zip(opened, closed, strict=True):
        bill(need_start, min(need_end, end), released=need_end != math.inf)
    return Reference(total, _count_actions(billed, ready, start), end)


def _count_actions(billed: list[tuple[float, int]], ready: int, start: float) -> int:
    """Instants at which the billed replica count changes. The ``ready`` replicas in place at
    start count as asked for before it: a need from the start keeps one without an action."""
    changes: dict[float, int] = {start: -ready}
    for t, delta in billed:
        changes[t] = changes.get(t, 0) + delta
    return sum(1 for delta in changes.values() if delta != 0)


def work_bound(services: list[float], parallelism: int) -> float:
    return math.fsum(services) / parallelism
