"""Discrete-event simulation of one deployment under one policy.

Requests arrive from the trace and wait in a FIFO queue; each ready replica serves up to
``parallelism`` at once. A replica asked for becomes ready ``cold_start_s`` later; a removed
replica takes no new work (a cold-starting one is cancelled, a busy one drains). Replicas are
billed from the moment they are asked for until they are gone.

The simulation feeds the same ``DeploymentAutoscaler`` the daemon uses, through the same front
door (``apply``: the tracker's lateness, expiry and outcome counting run here too), with the
``Event``s the daemon would receive: ``request_started`` when a request gets a slot,
``request_finished`` when it completes, ``queue_length`` when the queue changes, and the
trace's recorded ``signal`` events at their times; decisions happen every ``tick_s`` and at
once when load outgrows capacity.
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
from autoscaler.core.events import QueueLength, RequestFinished, RequestStarted, Signal
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
    """Replay ``trace`` against ``policy`` under ``settings`` (validated at the boundary; the
    core gets its plain copy) and ``scenario``; ``services[i]`` is request ``i``'s service
    time."""
    run = _Simulation(
        DeploymentAutoscaler(name, settings.core(), policy, policy_name, start),
        scenario,
        trace,
        services,
        start,
        record_series=record_series,
        max_actions=max_actions,
    )
    run.run(progress)
    return run.outcome()


class _Simulation:
    """One deployment's replay, in named parts: the fleet (``scale``, ``free_replica``), the
    queue (``dispatch``, ``drain_queue``), the autoscaler's front door (``decide``, and every
    observation sent as the ``Event`` the daemon would receive, through
    ``DeploymentAutoscaler.apply``), and the event loop (``run``) that merges the trace's
    arrivals and signals, completions and replicas becoming ready, and the decision ticks."""

    def __init__(
        self,
        auto: DeploymentAutoscaler,
        scenario: Scenario,
        trace: DeploymentTrace,
        services: list[float],
        start: float,
        *,
        record_series: bool,
        max_actions: int,
    ) -> None:
        self.auto = auto
        self.name = auto.name
        self.trace = trace
        self.arrivals = trace.arrivals
        self.services = services
        self.start = start
        self.cold_start = scenario.cold_start_s
        self.tick_s = scenario.tick_s
        self.parallelism = auto.settings.parallelism
        self.max_actions = max_actions
        n = len(self.arrivals)
        self.heap: list[tuple[float, int, int, _Replica, int]] = []
        self.seq = 0
        self.queue: deque[int] = deque()
        self.active: list[_Replica] = []  # ready, not draining: may take work
        self.starting: list[_Replica] = []  # asked for, not ready yet
        # One double per request: a 1,000-deployment day has millions of them.
        self.waits = array("d", bytes(8 * n))
        self.served = 0
        self.cold_waits = 0
        self.replica_seconds = 0.0
        self.scale_actions = 0
        self.decisions = 0
        self.actions: list[ScaleAction] = []
        self.series = Series() if record_series else None
        self.end = start
        settings = auto.settings
        initial = (
            scenario.initial_replicas
            if scenario.initial_replicas is not None
            else settings.min_replicas
        )
        for _ in range(min(initial, settings.max_replicas)):
            replica = _Replica(start, start)
            replica.ready = True
            self.active.append(replica)

    # -- the front door: what the daemon would receive, and its decisions ------------------

    def observe_queue(self, now: float) -> None:
        self.auto.apply(QueueLength(deployment=self.name, ts=now, value=len(self.queue)), now)

    def decide(self, now: float) -> None:
        current = len(self.active) + len(self.starting)
        decision = self.auto.decide(now, current, len(self.active))
        self.decisions += 1
        if decision.replicas != current:
            self.scale_actions += 1
            if len(self.actions) < self.max_actions:
                self.actions.append(ScaleAction(now, current, decision.replicas, decision.reason))
            self.scale(now, current, decision.replicas)

    # -- the queue -------------------------------------------------------------------------

    def dispatch(self, index: int, replica: _Replica, now: float) -> None:
        replica.busy += 1
        arrived = self.arrivals[index]
        self.waits[index] = now - arrived
        if replica.ready_at > arrived:
            self.cold_waits += 1
        self.auto.apply(RequestStarted(deployment=self.name, ts=now, request_id=str(index)), now)
        self.seq += 1
        heapq.heappush(self.heap, (now + self.services[index], _COMPLETE, self.seq, replica, index))

    def drain_queue(self, replica: _Replica, now: float) -> None:
        queue = self.queue
        moved = False
        while queue and replica.busy < self.parallelism:
            self.dispatch(queue.popleft(), replica, now)
            moved = True
        if moved:
            self.observe_queue(now)

    # -- the fleet -------------------------------------------------------------------------

    def free_replica(self) -> _Replica | None:
        best: _Replica | None = None
        for replica in self.active:
            if replica.busy < self.parallelism and (best is None or replica.busy < best.busy):
                best = replica
                if replica.busy == 0:
                    break
        return best

    def scale(self, now: float, current: int, desired: int) -> None:
        if desired > current:
            for _ in range(desired - current):
                replica = _Replica(now, now + self.cold_start)
                if self.cold_start <= 0:
                    replica.ready = True
                    self.active.append(replica)
                    self.drain_queue(replica, now)
                else:
                    self.starting.append(replica)
                    self.seq += 1
                    heapq.heappush(self.heap, (replica.ready_at, _READY, self.seq, replica, -1))
            return
        remove = current - desired
        starting = self.starting
        while remove and starting:
            replica = starting.pop()  # the most recently asked for is farthest from ready
            replica.cancelled = True
            self.replica_seconds += now - replica.requested_at
            remove -= 1
        if remove:
            active = self.active
            active.sort(key=lambda r: r.busy)
            for replica in active[:remove]:
                if replica.busy == 0:
                    self.replica_seconds += now - replica.requested_at
                else:
                    replica.draining = True
            del active[:remove]

    # -- what happens at each instant ------------------------------------------------------

    def on_tick(self, now: float) -> None:
        self.decide(now)
        series = self.series
        if series is not None:
            series.t.append(now)
            series.load.append(self.auto.tracker.current_load)
            series.replicas.append(len(self.active) + len(self.starting))
            series.ready.append(len(self.active))

    def on_completion(self, now: float, replica: _Replica, index: int) -> None:
        replica.busy -= 1
        self.served += 1
        self.auto.apply(RequestFinished(deployment=self.name, ts=now, request_id=str(index)), now)
        if replica.draining:
            if replica.busy == 0:
                self.replica_seconds += now - replica.requested_at
        elif self.queue:
            self.drain_queue(replica, now)

    def on_ready(self, now: float, replica: _Replica) -> None:
        if replica.cancelled:
            return
        replica.ready = True
        self.starting.remove(replica)
        self.active.append(replica)
        self.drain_queue(replica, now)

    def on_arrival(self, now: float, index: int) -> None:
        replica = self.free_replica() if not self.queue else None
        if replica is not None:
            self.dispatch(index, replica, now)
        else:
            self.queue.append(index)
            self.observe_queue(now)
        if self.auto.needs_prompt_decision(len(self.active) + len(self.starting)):
            self.decide(now)

    # -- the loop --------------------------------------------------------------------------

    def run(self, progress: Callable[[int], None] | None) -> None:
        arrivals, heap, start, tick_s = self.arrivals, self.heap, self.start, self.tick_s
        n = len(arrivals)
        signals = self.trace.signals
        n_signals = len(signals)
        j = 0
        i = 0
        next_tick = start
        now = start
        while True:
            t_arrival = arrivals[i] if i < n else math.inf
            t_heap = heap[0][0] if heap else math.inf
            if i >= n and not heap and not self.queue:
                break
            if j < n_signals and signals[j][0] <= min(next_tick, t_arrival, t_heap):
                # A reading is visible to a decision at its own instant, as in the daemon,
                # where it is applied when received. One recorded before the trace starts
                # applies at start.
                ts, signal_name, value = signals[j]
                j += 1
                now = max(now, ts)
                self.auto.apply(
                    Signal(deployment=self.name, ts=ts, name=signal_name, value=value), now
                )
                continue
            if next_tick <= t_arrival and next_tick <= t_heap:
                now = next_tick
                next_tick = start + (round((now - start) / tick_s) + 1) * tick_s
                self.on_tick(now)
                continue
            if t_heap <= t_arrival:
                now, kind, _, replica, index = heapq.heappop(heap)
                if kind == _COMPLETE:
                    self.on_completion(now, replica, index)
                else:
                    self.on_ready(now, replica)
                continue
            now = t_arrival
            self.on_arrival(now, i)
            i += 1
            if progress is not None and i % 4096 == 0:
                progress(4096)
        self.end = now
        if progress is not None:
            progress(n % 4096)

    def outcome(self) -> DeploymentOutcome:
        end = self.end
        replica_seconds = self.replica_seconds
        for replica in (*self.active, *self.starting):
            replica_seconds += end - replica.requested_at
        return DeploymentOutcome(
            deployment=self.name,
            policy=self.auto.decider.policy_name,
            requests=len(self.arrivals),
            served=self.served,
            waits=self.waits,
            cold_start_waits=self.cold_waits,
            replica_seconds=replica_seconds,
            scale_actions=self.scale_actions,
            decisions=self.decisions,
            end=end,
            series=self.series,
            actions=self.actions,
        )
