"""Reference points computed on the same trace as the policies.

``oracle``: clairvoyant provisioning; at every instant ``max(min_replicas, ceil(in_flight /
parallelism))`` replicas, every request served at once, no cold start. ``work_bound``: total
service seconds / parallelism, the replica-seconds no provisioning can go below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reference:
    replica_seconds: float
    scale_actions: int
    end: float


def oracle(
    arrivals: list[float], services: list[float], min_replicas: int, parallelism: int, start: float
) -> Reference:
    changes = sorted(
        [(a, 1) for a in arrivals] + [(a + s, -1) for a, s in zip(arrivals, services, strict=True)],
        key=lambda c: (c[0], c[1]),  # a finish and a start at one instant: free the slot first
    )
    in_flight = 0
    replicas = min_replicas
    last = start
    total = 0.0
    actions = 0
    k = 0
    while k < len(changes):
        t = changes[k][0]
        total += replicas * (t - last)
        last = t
        while k < len(changes) and changes[k][0] == t:
            in_flight += changes[k][1]
            k += 1
        wanted = max(min_replicas, math.ceil(in_flight / parallelism))
        if wanted != replicas:
            actions += 1
            replicas = wanted
    return Reference(total, actions, last)


def work_bound(services: list[float], parallelism: int) -> float:
    return math.fsum(services) / parallelism
