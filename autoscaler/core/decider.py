"""A policy plus the framework guardrails: the single decision function both the simulator
and the daemon call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
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
    state: DecisionState
    policy_reason: str | Callable[[], str]
    notes: tuple[str, ...] = ()
    settled: bool = True
    """No guardrail but the bounds changed the number (``Guarded.settled``)."""
    """What each guardrail that changed the number did, in order."""

    @property
    def changed(self) -> bool:
        return self.replicas != self.current

    @property
    def reason(self) -> str:
        """The policy's reason, then the guardrails that changed its number."""
        policy_reason = self.policy_reason
        reason = policy_reason if isinstance(policy_reason, str) else policy_reason()
        if self.notes:
            return f"{reason}; then {'; '.join(self.notes)} -> {self.replicas}"
        return reason


class Decider:
    def __init__(self, policy: Policy[Any], policy_name: str) -> None:
        self.policy = policy
        self.policy_name = policy_name
        self._state_type = type(policy.initial_state())

    def initial_state(self) -> DecisionState:
        return DecisionState(policy=self.policy.initial_state(), guard=GuardState())

    def policy_state(self, state: DecisionState) -> Any:
        """The policy's own state out of ``state``: of the type its ``initial_state`` has,
        or a fresh initial state when it is not (another policy's, or none), so no policy
        checks the type of what it is given."""
        held = state.policy
        if isinstance(held, self._state_type):
            return held
        return self.policy.initial_state()

    def decide(self, snapshot: Snapshot, state: DecisionState) -> Decision:
        now = snapshot.now
        guard = state.guard
        period = snapshot.settings.decision_period_s
        last, repeated = guard.policy_at, guard.policy_replicas
        if period > 0 and last is not None and repeated is not None and 0 <= now - last < period:
            # The decision period (Knative's tick, the HPA's sync period, KEDA's polling): a
            # policy consulted on every event behaves like one evaluated once per period. The
            # guardrails still run: their delays and bounds do not wait for the policy.
            replicas, policy_state = repeated, self.policy_state(state)
            reason: str | Callable[[], str] = (
                f"{self.policy_name}: next decision due {last + period - now:.3g} s later "
                f"(decision_period_s={period:g}); keeping {repeated}"
            )
        else:
            recommendation = self.policy.recommend(snapshot, self.policy_state(state))
            replicas, policy_state = recommendation.replicas, recommendation.state
            reason = recommendation.reason
            if period > 0:
                guard = replace(guard, policy_at=now, policy_replicas=replicas)
        guarded = apply_guardrails(snapshot, replicas, guard)
        return Decision(
            replicas=guarded.replicas,
            recommended=replicas,
            current=snapshot.current_replicas,
            state=DecisionState(policy=policy_state, guard=guarded.state),
            policy_reason=reason,
            notes=guarded.notes,
            settled=guarded.settled,
        )
