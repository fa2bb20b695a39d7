"""The small protocols each daemon stage sits behind, so adapters can be swapped: the dry-run
actuator today, Kubernetes next; in-memory state today, Redis next."""

from __future__ import annotations

from typing import Protocol

from autoscaler.core.decider import Decision, DecisionState


class Actuator(Protocol):
    async def observe(self, deployment: str) -> tuple[int, int] | None:
        """``(current, ready)`` replicas, or None when the actuator has never seen it."""
        ...

    async def apply(self, deployment: str, decision: Decision) -> None:
        """Make ``decision.replicas`` the deployment's replica count."""
        ...


class StateStore(Protocol):
    async def load(self, deployment: str) -> DecisionState | None: ...

    async def save(self, deployment: str, state: DecisionState) -> None: ...
