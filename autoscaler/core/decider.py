"""A policy plus the framework guardrails: the single decision function both the simulator
and the daemon call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from autoscaler.core.guardrails import GuardState, apply_guardrails
from autoscaler.core.policy import Policy
from autoscaler.core.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class DecisionState:
    """Everything a decision carries over to the next: persisted between restarts."""

    policy: Any
    guard: GuardState


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    """Replicas to apply."""
    recommended: int
    """What the policy alone asked for."""
    current: int
    reason: str
    state: DecisionState

    @property
    def changed(self) -> bool:
        return self.replicas != self.current


class Decider:
    def __init__(self, policy: Policy, policy_name: str) -> None:
        self.policy = policy
        self.policy_name = policy_name

    def initial_state(self) -> DecisionState:
        return DecisionState(policy=self.policy.initial_state(), guard=GuardState())

    def decide(self, snapshot: Snapshot, state: DecisionState) -> Decision:
        recommendation = self.policy.recommend(snapshot, state.policy)
        guarded = apply_guardrails(snapshot, recommendation.replicas, state.guard)
        reason = recommendation.reason
        if guarded.notes:
            reason = f"{reason}; then {'; '.join(guarded.notes)} -> {guarded.replicas}"
        return Decision(
            replicas=guarded.replicas,
            recommended=recommendation.replicas,
            current=snapshot.current_replicas,
            reason=reason,
            state=DecisionState(policy=recommendation.state, guard=guarded.state),
        )
