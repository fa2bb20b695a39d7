"""The decider: a policy wrapped in the guardrails, and the framework's decision period."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from autoscaler.core.decider import Decider
from autoscaler.core.policy import Recommendation
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot

T0 = 1_795_435_200.0


@dataclass(frozen=True, slots=True)
class Calls:
    count: int = 0


class Counting:
    """Recommends the snapshot's queue length, and counts how often it was consulted."""

    def initial_state(self) -> Calls:
        return Calls()

    def recommend(self, snapshot: Snapshot, previous: Calls) -> Recommendation[Calls]:
        wanted = round(snapshot.queue_length)
        return Recommendation(wanted, Calls(previous.count + 1), f"counting: {wanted}")


def snap(at: float, queue: float, settings: Settings, current: int = 2) -> Snapshot:
    return Snapshot(
        now=T0 + at,
        deployment="ns/app",
        settings=settings,
        current_replicas=current,
        ready_replicas=current,
        in_flight=1,
        queue_length=queue,
        stable_load=queue,
        panic_load=queue,
        history_s=3600.0,
        idle_s=0.0,
    )


# (seconds after T0, wanted, expected replicas, policy consulted so far)
PERIODS = [
    pytest.param(0.0, [(0, 5, 5, 1), (1, 7, 7, 2), (2, 3, 3, 3)], id="no-period-every-call"),
    pytest.param(
        10.0,
        [(0, 5, 5, 1), (4, 7, 5, 1), (9.9, 9, 5, 1), (10, 9, 9, 2), (12, 3, 9, 2)],
        id="once-per-period",
    ),
    # A clock that steps back starts a new period rather than repeating forever.
    pytest.param(10.0, [(100, 5, 5, 1), (50, 7, 7, 2)], id="clock-back"),
]


@pytest.mark.parametrize(("period", "steps"), PERIODS)
def test_the_policy_is_consulted_once_per_decision_period(
    period: float, steps: list[tuple[float, int, int, int]]
) -> None:
    settings = Settings(min_replicas=0, max_replicas=20, decision_period_s=period)
    decider = Decider(Counting(), "counting")
    state = decider.initial_state()
    got = []
    for at, wanted, _, _ in steps:
        decision = decider.decide(snap(at, wanted, settings), state)
        state = decision.state
        got.append((decision.replicas, state.policy.count))
    assert got == [(want, calls) for *_, want, calls in steps]


def test_the_guardrails_still_run_between_policy_calls() -> None:
    decider = Decider(Counting(), "counting")
    loose = Settings(min_replicas=0, max_replicas=20, decision_period_s=10.0)
    first = decider.decide(snap(0, 8, loose), decider.initial_state())
    assert first.replicas == 8
    # Within the period the 8 is repeated, but a lowered ceiling bounds it at once.
    tight = Settings(min_replicas=0, max_replicas=3, decision_period_s=10.0)
    held = decider.decide(snap(5, 1, tight), first.state)
    assert (held.recommended, held.replicas) == (8, 3)
    assert held.state.policy.count == 1
    assert held.reason.startswith(
        "counting: next decision due 5 s later (decision_period_s=10); keeping 8; then bounds"
    )
