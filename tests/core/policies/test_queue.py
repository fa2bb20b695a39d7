"""The ``queue`` policy: rows of snapshot inputs -> expected replicas, and polling; its KEDA
stabilization is the framework's scale-down delay, shown here through the whole decision."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from autoscaler.config.params import validate_params
from autoscaler.core.decider import Decider
from autoscaler.core.policies.queue import SPEC, QueueParams, QueuePolicy
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot

T0 = 1_795_435_200.0
TEN = Settings(parallelism=10, target_utilization=1.0)  # 10 per replica


def snap(
    queue: float,
    in_flight: int = 0,
    *,
    current: int = 1,
    now: float = T0,
    s: Settings = TEN,
) -> Snapshot:
    return Snapshot(
        now=now,
        deployment="ns/worker",
        settings=s,
        current_replicas=current,
        ready_replicas=current,
        in_flight=in_flight,
        queue_length=queue,
        stable_load=queue + in_flight,
        panic_load=queue + in_flight,
        history_s=3600.0,
        idle_s=0.0,
    )


def policy(**params: object) -> QueuePolicy:
    return QueuePolicy(validate_params(QueueParams, params))


SINGLE = [
    pytest.param({}, snap(0, current=0), 0, id="empty-at-zero"),
    pytest.param({}, snap(1, current=0), 1, id="any-backlog-activates-by-default"),
    pytest.param({}, snap(25), 3, id="ceil-25/10"),
    pytest.param({}, snap(30), 3, id="exact-30/10"),
    pytest.param({}, snap(2.1, s=Settings()), 3, id="float-noise-2.1/0.7"),
    pytest.param({"target_per_replica": 2}, snap(5), 3, id="target-param"),
    pytest.param({"activation_threshold": 5}, snap(3, current=0), 0, id="below-activation"),
    pytest.param({"activation_threshold": 5}, snap(5, current=0), 0, id="at-activation"),
    pytest.param({"activation_threshold": 5}, snap(6, current=0), 1, id="above-activation"),
    pytest.param(
        {"activation_threshold": 5}, snap(3, 3, current=0), 1, id="activation-counts-in-flight"
    ),
    pytest.param({"activation_threshold": 5}, snap(3, current=1), 1, id="activation-only-at-zero"),
    pytest.param({}, snap(5, 10), 2, id="in-flight-included"),
    pytest.param({"include_in_flight": False}, snap(5, 10), 1, id="in-flight-excluded"),
    pytest.param(
        {"include_in_flight": False}, snap(0, 10, current=0), 0, id="in-flight-only-not-backlog"
    ),
    # The policy recommends the reading; holding a scale-down back is the guardrails' job.
    pytest.param({}, snap(10, current=5), 1, id="raw-scale-down"),
]


@pytest.mark.parametrize(("params", "snapshot", "want"), SINGLE)
def test_recommend(params: dict[str, object], snapshot: Snapshot, want: int) -> None:
    p = policy(**params)
    result = p.recommend(snapshot, p.initial_state())
    assert result.replicas == want
    assert result.reason.startswith("queue: backlog ")


# (seconds after T0, queue length, current, expected), through policy and guardrails with the
# settings the spec defaults to (KEDA's 300 s scale-down delay) and the ones given (KEDA's
# polling is the decision period); no floor, no grace, so that only these hold a count.
SEQUENCES = [
    pytest.param(
        {},
        {},
        [(0, 50, 5, 5), (60, 10, 5, 5), (359, 10, 5, 5), (360, 10, 5, 1)],
        id="300s-stabilization",
    ),
    pytest.param(
        {},
        {},
        [(0, 50, 5, 5), (100, 30, 5, 5), (200, 10, 5, 5), (399, 10, 5, 5), (400, 10, 5, 3)],
        id="300s-steps-down-through-window-max",
    ),
    pytest.param(
        {},
        {"scale_down_delay_s": 60.0},
        [(0, 50, 5, 5), (10, 0, 5, 5), (69, 0, 5, 5), (70, 0, 5, 0)],
        id="60s-stabilization-to-zero",
    ),
    # The first decision is seeded with current: no scale-down on a restart.
    pytest.param({}, {}, [(0, 10, 5, 5)], id="seeded-no-drop"),
    pytest.param({}, {"scale_down_delay_s": 0.0}, [(0, 10, 5, 1)], id="no-stabilization"),
    pytest.param(
        {},
        {},
        [(0, 10, 1, 1), (10, 80, 1, 8)],
        id="scale-up-immediate",
    ),
    pytest.param(
        {},
        {"decision_period_s": 30},
        [(0, 50, 1, 5), (10, 100, 5, 5), (29, 100, 5, 5), (30, 100, 5, 10), (45, 0, 10, 10)],
        id="polling-holds-last-reading",
    ),
    pytest.param(
        {},
        {"decision_period_s": 30, "scale_down_delay_s": 0.0},
        [(0, 50, 5, 5), (20, 0, 5, 5), (30, 0, 5, 0)],
        id="polling-delays-scale-down",
    ),
]


@pytest.mark.parametrize(("params", "overrides", "steps"), SEQUENCES)
def test_sequence(
    params: dict[str, object],
    overrides: dict[str, float],
    steps: list[tuple[float, float, int, int]],
) -> None:
    defaults = {**SPEC.settings_defaults, **overrides}
    settings = replace(TEN, min_replicas=0, scale_to_zero_grace_s=0.0, **defaults)
    decider = Decider(policy(**params), "queue")
    state = decider.initial_state()
    got = []
    for at, queue, current, _ in steps:
        decision = decider.decide(snap(queue, current=current, now=T0 + at, s=settings), state)
        state = decision.state
        got.append(decision.replicas)
    assert got == [want for *_, want in steps]


def test_the_spec_defaults_to_keda_stabilization() -> None:
    assert SPEC.settings_defaults == {"scale_down_delay_s": 300.0}


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"activation_threshold": -1}, id="negative-activation"),
        # Moved to the guardrails' scale_down_delay_s: one name for one concept.
        pytest.param({"scale_down_stabilization_s": 300}, id="stabilization-is-a-setting"),
        pytest.param({"polling_interval_s": 30}, id="polling-is-a-setting"),
        pytest.param({"target_per_replica": 0}, id="target-0"),
        pytest.param({"queue_name": "x"}, id="unknown-key"),
    ],
)
def test_bad_params(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        validate_params(SPEC.params_type, params)
