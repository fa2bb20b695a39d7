"""One deployment's pipeline: events -> load tracker -> snapshot -> policy + guardrails.

The simulator and the daemon each hold one of these per deployment and feed it their own
clock; neither has any decision logic of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from autoscaler.core.decider import Decider, Decision, DecisionState
from autoscaler.core.events import Event
from autoscaler.core.policy import Policy
from autoscaler.core.settings import Settings
from autoscaler.core.tracker import LoadTracker, Outcome

PROMPT_INTERVAL_S = 1.0
"""Least time between two decisions prompted by load above target (work at zero replicas is
always decided at once)."""


class DeploymentAutoscaler:
    __slots__ = (
        "decider",
        "last_decision",
        "last_decision_at",
        "name",
        "settings",
        "state",
        "tracker",
    )

    def __init__(
        self,
        name: str,
        settings: Settings,
        policy: Policy[Any],
        policy_name: str,
        start: float,
        state: DecisionState | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.tracker = LoadTracker(settings, start)
        self.decider = Decider(policy, policy_name)
        self.state = state if state is not None else self.decider.initial_state()
        self.last_decision: Decision | None = None
        self.last_decision_at: float | None = None

    def apply(self, event: Event, now: float) -> Outcome:
        return self.tracker.apply(event, now)

    def apply_batch(self, events: Iterable[Event], now: float, outcomes: dict[str, int]) -> None:
        """Events that arrived together (see ``LoadTracker.apply_batch``)."""
        self.tracker.apply_batch(events, now, outcomes)

    def needs_prompt_decision(self, current_replicas: int) -> bool:
        """Whether the latest change warrants deciding now rather than at the next tick:
        work waiting at zero replicas, or load above what the current replicas are meant to
        carry. Falling load waits for the tick: scaling down is never urgent. Above target,
        one prompt decision per ``PROMPT_INTERVAL_S`` is enough: a fleet that runs near its
        target would otherwise be decided on every arrival, and a replica asked for a few
        milliseconds later is ready a cold start later all the same."""
        load = self.tracker.current_load
        if current_replicas == 0:
            return load > 0
        if load <= current_replicas * self.settings.target_per_replica:
            return False
        last = self.last_decision_at
        return last is None or self.tracker.now - last >= PROMPT_INTERVAL_S

    def decide(
        self, now: float, current_replicas: int, ready_replicas: int, state_persisted: bool = True
    ) -> Decision:
        snapshot = self.tracker.snapshot(
            now, self.name, current_replicas, ready_replicas, state_persisted
        )
        decision = self.decider.decide(snapshot, self.state)
        self.state = decision.state
        self.last_decision = decision
        self.last_decision_at = snapshot.now
        return decision
