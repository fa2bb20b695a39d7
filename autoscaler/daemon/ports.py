"""The small protocols each daemon stage sits behind, so adapters can be swapped: the dry-run
actuator today, Kubernetes next; in-memory or Redis state."""

from __future__ import annotations

from typing import Any, Protocol

from autoscaler.core.decider import Decision, DecisionState


class Actuator(Protocol):
    async def observe(self, deployment: str) -> tuple[int, int] | None:
        """``(current, ready)`` replicas, or None when the actuator has never seen it."""
        ...

    async def apply(self, deployment: str, decision: Decision) -> None:
        """Make ``decision.replicas`` the deployment's replica count."""
        ...


class StateStore(Protocol):
    async def load(
        self, deployment: str, policy_name: str, initial_policy_state: Any
    ) -> DecisionState | None:
        """The last saved state; a policy state written by another policy is replaced by
        ``initial_policy_state`` (the guardrails' part is kept)."""
        ...

    async def save(self, deployment: str, policy_name: str, state: DecisionState) -> None: ...

    @property
    def healthy(self) -> bool:
        """Whether state is being persisted. While it is not, the daemon cannot prove its
        delays to a successor, so it refuses to scale down (scaling up stays allowed)."""
        ...
