"""Decision state kept in process memory: the embedded default, lost on restart."""

from __future__ import annotations

from typing import Any

from autoscaler.core.decider import DecisionState


class InMemoryStateStore:
    def __init__(self) -> None:
        self.states: dict[str, tuple[str, DecisionState]] = {}
        self.healthy = True

    async def load(
        self, deployment: str, policy_name: str, initial_policy_state: Any
    ) -> DecisionState | None:
        stored = self.states.get(deployment)
        if stored is None:
            return None
        name, state = stored
        return state if name == policy_name else DecisionState(initial_policy_state, state.guard)

    async def save(self, deployment: str, policy_name: str, state: DecisionState) -> None:
        self.states[deployment] = (policy_name, state)
