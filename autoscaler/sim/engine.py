"""Discrete-event simulation of one deployment under one policy.

Requests arrive from the trace and wait in a FIFO queue; each ready replica serves up to
``parallelism`` at once. A replica asked for becomes ready ``cold_start_s`` later; a removed
replica takes no new work (a cold-starting one is cancelled, a busy one drains). Replicas are
billed from the moment they are asked for until they are gone.

The simulation feeds the same ``DeploymentAutoscaler`` the daemon uses: ``request_started``
when a request gets a slot, ``request_finished`` when it completes, the queue length when it
changes, and the trace's recorded ``signal`` events at their times; decisions happen every
``tick_s`` and at once when load outgrows capacity.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from autoscaler.config.models import DeploymentSettings
from autoscaler.core.deployment import DeploymentAutoscaler
from autoscaler.core.policy import Policy
from autoscaler.sim.scenario import Scenario
from autoscaler.sim.trace import DeploymentTrace

_COMPLETE, _READY = 0, 1


class _Replica:
    __slots__ = ("busy", "cancelled", "draining", "ready", "ready_at", "requested_at")

    def __init__(self, requested_at: float, ready_at: float) -> None:
        self.requested_at = requested_at
        self.ready_at = ready_at
        self.busy = 0
        self.ready = False
        self.draining = False
        self.cancelled = False


@dataclass
class Series:
    """Sampled at every tick, for the report."""

    t: list[float] = field(default_factory=list)
    load: list[float] = field(default_factory=list)
    replicas: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)


@dataclass
class ScaleAction:
    t: float
    before: int
    after: int
    reason: str


@dataclass
class DeploymentOutcome:
    deployment: str
    policy: str
    requests: int
    served: int
    waits: array[float]
    cold_start_waits: int
    replica_seconds: float
    scale_actions: int
    decisions: int
    end: float
    series: Series | None
    actions: list[ScaleAction]


def service_times(trace: DeploymentTrace, scenario: Scenario) -> list[float]:
    model = scenario.service_time
    return [
        d if d is not None else model.seconds(c, g)
        for d, c, g in zip(
            trace.durations, trace.context_tokens, trace.generated_tokens, strict=True
        )
    ]


def simulate_deployment(
    name: str,
    policy_name: str,
    settings: DeploymentSettings,
    policy: Policy[Any],
    scenario: Scenario,
    trace: DeploymentTrace,
    services: list[float],
    start: float,
    *,
    record_series: bool = True,
    max_actions: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> DeploymentOutcome:
    arrivals = trace.arrivals
    n = len(arrivals)
    parallelism = settings.parallelism
    cold_start = scenario.cold_start_s
    tick_s = scenario.tick_s
    auto = DeploymentAutoscaler(name, settings.core(), policy, policy_name, start)
    tracker = auto.tracker

    heap: list[tuple[float, int, int, _Replica, int]] = []
    seq = 0
    queue: deque[int] = deque()
    active: list[_Replica] = []  # ready, not draining: may take work
    starting: list[_Replica] = []  # asked for, not ready yet
    # One double per request: a 1,000-deployment day has millions of them.
    waits = array("d", bytes(8 * n))
    served = 0
    cold_waits = 0
    replica_seconds = 0.0
    scale_actions = 0
    decisions = 0
    actions: list[ScaleAction] = []
    series = Series() if record_series else None

    initial = (
        scenario.initial_replicas
        if scenario.initial_replicas is not None
        else settings.min_replicas
    )
    for _ in range(min(initial, settings.max_replicas)):
        replica = _Replica(start, start)
        replica.ready = True
        active.append(replica)

    def dispatch(index: int, replica: _Replica, now: float) -> None:
        nonlocal seq, cold_waits
        replica.busy += 1
        arrived = arrivals[index]
        waits[index] = now - arrived
        if replica.ready_at > arrived:
            cold_waits += 1
        tracker.request_started(now, index)
        seq += 1
        heapq.heappush(heap, (now + services[index], _COMPLETE, seq, replica, index))

    def free_replica() -> _Replica | None:
        best: _Replica | None = None
        for replica in active:
            if replica.busy < parallelism and (best is None or replica.busy < best.busy):
                best = replica
                if replica.busy == 0:
                    break
        return best

    def drain_queue(replica: _Replica, now: float) -> None:
        moved = False
        while queue and replica.busy < parallelism:
            dispatch(queue.popleft(), replica, now)
            moved = True
        if moved:
            tracker.queue_length(now, len(queue))

    def scale(now: float, current: int, desired: int) -> None:
        nonlocal seq, replica_seconds
        if desired > current:
            for _ in range(desired - current):
                replica = _Replica(now, now + cold_start)
                if cold_start <= 0:
                    replica.ready = True
                    active.append(replica)
                    drain_queue(replica, now)
                else:
                    starting.append(replica)
                    seq += 1
                    heapq.heappush(heap, (replica.ready_at, _READY, seq, replica, -1))
            return
        remove = current - desired
        while remove and starting:
            replica = starting.pop()  # the most recently asked for is farthest from ready
            replica.cancelled = True
            replica_seconds += now - replica.requested_at
            remove -= 1
        if remove:
            active.sort(key=lambda r: r.busy)
            for replica in active[:remove]:
                if replica.busy == 0:
                    replica_seconds += now - replica.requested_at
                else:
                    replica.draining = True
            del active[:remove]

    def decide(now: float) -> None:
        nonlocal decisions, scale_actions
        current = len(active) + len(starting)
        decision = auto.decide(now, current, len(active))
        decisions += 1
        if decision.replicas != current:
            scale_actions += 1
            if len(actions) < max_actions:
                actions.append(ScaleAction(now, current, decision.replicas, decision.reason))
            scale(now, current, decision.replicas)

    signals = trace.signals
    n_signals = len(signals)
    j = 0
    i = 0
    next_tick = start
    now = start
    while True:
        t_arrival = arrivals[i] if i < n else math.inf
        t_heap = heap[0][0] if heap else math.inf
        if i >= n and not heap and not queue:
            break
        if j < n_signals and signals[j][0] <= min(next_tick, t_arrival, t_heap):
            # A reading is visible to a decision at its own instant, as in the daemon, where
            # it is applied when received. One recorded before the trace starts applies at start.
            ts, signal_name, value = signals[j]
            j += 1
            now = max(now, ts)
            tracker.signal(now, signal_name, value, ts)
            continue
        if next_tick <= t_arrival and next_tick <= t_heap:
            now = next_tick
            next_tick = start + (round((now - start) / tick_s) + 1) * tick_s
            decide(now)
            if series is not None:
                series.t.append(now)
                series.load.append(tracker.current_load)
                series.replicas.append(len(active) + len(starting))
                series.ready.append(len(active))
            continue
        if t_heap <= t_arrival:
            now, kind, _, replica, index = heapq.heappop(heap)
            if kind == _COMPLETE:
                replica.busy -= 1
                served += 1
                tracker.request_finished(now, index)
                if replica.draining:
                    if replica.busy == 0:
                        replica_seconds += now - replica.requested_at
                elif queue:
                    drain_queue(replica, now)
            elif not replica.cancelled:
                replica.ready = True
                starting.remove(replica)
                active.append(replica)
                drain_queue(replica, now)
            continue
        now = t_arrival
        index = i
        i += 1
        replica_free = free_replica() if not queue else None
        if replica_free is not None:
            dispatch(index, replica_free, now)
        else:
            queue.append(index)
            tracker.queue_length(now, len(queue))
        if auto.needs_prompt_decision(len(active) + len(starting)):
            decide(now)
        if progress is not None and i % 4096 == 0:
            progress(4096)

    end = now
    for replica in active:
        replica_seconds += end - replica.requested_at
    for replica in starting:
        replica_seconds += end - replica.requested_at
    if progress is not None:
        progress(n % 4096)
    return DeploymentOutcome(
        deployment=name,
        policy=policy_name,
        requests=n,
        served=served,
        waits=waits,
        cold_start_waits=cold_waits,
        replica_seconds=replica_seconds,
        scale_actions=scale_actions,
        decisions=decisions,
        end=end,
        series=series,
        actions=actions,
    )
