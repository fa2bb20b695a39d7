"""``concurrency``: replicas = ceil(load / (parallelism x target_utilization)).

The load is the mean of in-flight plus queued requests over the stable window; a burst that
pushes the short (panic) window's demand to ``panic_threshold`` times the ready replicas
switches to the panic window for scale-up and forbids scale-down until the burst has been
gone for a whole stable window. This is the model Knative's KPA, Baseten and Ray Serve users
know; unlike ``kpa`` it has no built-in rate limits (the framework's apply, if set) and it
keeps the panic peak only while it is still needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from autoscaler.core.policy import PolicyParams, PolicySpec, Recommendation
from autoscaler.core.snapshot import Snapshot

# Guard against 2.0000000001 replicas from float sums turning into 3.
_EPS = 1e-9


class ConcurrencyParams(PolicyParams):
    panic_threshold: float = Field(
        default=2.0,
        gt=1,
        description="enter panic when the panic window wants this many times the ready replicas",
    )
    target_per_replica: float | None = Field(
        default=None,
        gt=0,
        description="load per replica to aim for; null = parallelism x target_utilization",
    )


@dataclass(frozen=True, slots=True)
class ConcurrencyState:
    panic_since: float | None = None
    """When the current panic last saw the threshold exceeded; None when calm."""


class ConcurrencyPolicy:
    def __init__(self, params: ConcurrencyParams) -> None:
        self.params = params

    def initial_state(self) -> ConcurrencyState:
        return ConcurrencyState()

    def recommend(self, snapshot: Snapshot, state: Any) -> Recommendation:
        previous = state if isinstance(state, ConcurrencyState) else ConcurrencyState()
        settings = snapshot.settings
        target = self.params.target_per_replica or settings.target_per_replica
        stable = math.ceil(snapshot.stable_load / target - _EPS)
        panic = math.ceil(snapshot.panic_load / target - _EPS)
        ready = max(1, snapshot.ready_replicas)

        panic_since = previous.panic_since
        if panic >= self.params.panic_threshold * ready:
            panic_since = snapshot.now
        elif panic_since is not None and snapshot.now - panic_since >= settings.window_s:
            panic_since = None

        if panic_since is None:
            desired = stable
            mode = "stable"
        else:
            # While panicking, follow whichever window asks for more and never go below
            # what is already there: the burst may come back before the stable window sees it.
            desired = max(stable, panic, snapshot.current_replicas)
            mode = "panic"
        reason = (
            f"concurrency: stable load {snapshot.stable_load:.2f} -> {stable}, "
            f"panic load {snapshot.panic_load:.2f} -> {panic} "
            f"at {target:g}/replica ({mode}): {desired}"
        )
        return Recommendation(desired, ConcurrencyState(panic_since), reason)


SPEC = PolicySpec(
    name="concurrency",
    params_model=ConcurrencyParams,
    factory=ConcurrencyPolicy,
    summary="ceil(load / (parallelism x target_utilization)) with stable and panic windows",
)
