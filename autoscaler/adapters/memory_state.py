"""Decision state kept in process memory: the embedded default, lost on restart. Leases are
trivially this daemon's: with nothing shared there is no one to share a deployment with."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from autoscaler.core.decider import DecisionState
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import Lease, Saved, SaveResult


class InMemoryStateStore:
    def __init__(self, metrics: DaemonMetrics | None = None) -> None:
        self.states: dict[str, tuple[str, Saved]] = {}
        self.healthy = True
        """Always: memory cannot be out of reach."""
        if metrics is not None:
            # The gauge says whether decision state is stored; in memory it always is. Left
            # at its initial 0 it would page someone for a healthy daemon.
            metrics.state_store_up.set(1)

    async def load(
        self, deployment: str, policy_name: str, initial_policy_state: Any
    ) -> Saved | None:
        stored = self.states.get(deployment)
        if stored is None:
            return None
        name, saved = stored
        if name == policy_name:
            return saved
        return replace(saved, state=DecisionState(initial_policy_state, saved.state.guard))

    async def save(self, deployment: str, policy_name: str, saved: Saved) -> SaveResult:
        self.states[deployment] = (policy_name, saved)
        return SaveResult.SAVED


class LocalLeases:
    """Every lease granted at once, with fence 1: the single-daemon setup."""

    FENCE = 1

    def __init__(self) -> None:
        self.held: set[str] = set()

    async def acquire(self, deployment: str) -> Lease:
        self.held.add(deployment)
        return Lease("held", self.FENCE)

    def valid(self, deployment: str) -> int | None:
        return self.FENCE if deployment in self.held else None

    async def renew(self) -> None:
        return None

    async def release(self, deployment: str) -> None:
        self.held.discard(deployment)

    def forget(self, deployment: str) -> None:
        self.held.discard(deployment)
