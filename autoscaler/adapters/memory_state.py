"""Decision state kept in process memory: the embedded default, lost on restart."""

from __future__ import annotations

from autoscaler.core.decider import DecisionState


class InMemoryStateStore:
    def __init__(self) -> None:
        self.states: dict[str, DecisionState] = {}

    async def load(self, deployment: str) -> DecisionState | None:
        return self.states.get(deployment)

    async def save(self, deployment: str, state: DecisionState) -> None:
        self.states[deployment] = state
