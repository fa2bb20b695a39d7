"""The ``metric`` policy (KEDA's prometheus scaler): rows of signal readings -> replicas,
activation at zero, scale-down stabilization, and holding when the signal is missing."""

from __future__ import annotations

from dataclasses import replace

import msgspec
import pytest
from pydantic import ValidationError

from autoscaler.config.params import validate_params
from autoscaler.config.registry import get_policy
from autoscaler.core.decider import Decider
from autoscaler.core.policies.metric import SPEC, MetricParams, MetricPolicy, MetricState
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot

T0 = 1_795_435_200.0
TEN = Settings(parallelism=10, target_utilization=1.0)  # 10 per replica by default


def snap(
    signals: dict[str, float],
    *,
    current: int = 1,
    now: float = T0,
    in_flight: int = 0,
    s: Settings = TEN,
) -> Snapshot:
    return Snapshot(
        now=now,
        deployment="ns/worker",
        settings=s,
        current_replicas=current,
        ready_replicas=current,
        in_flight=in_flight,
        queue_length=0.0,
        stable_load=float(in_flight),
        panic_load=float(in_flight),
        history_s=3600.0,
        idle_s=0.0,
        signals=signals,
    )


def policy(**params: object) -> MetricPolicy:
    return MetricPolicy(validate_params(MetricParams, params))


P = "prometheus"

SINGLE = [
    pytest.param({}, snap({P: 25}), 3, id="ceil-25/10-default-target"),
    pytest.param({}, snap({P: 30}), 3, id="exact-30/10"),
    pytest.param({}, snap({P: 2.1}, s=Settings()), 3, id="float-noise-2.1/0.7"),
    pytest.param({"target_per_replica": 5}, snap({P: 12}), 3, id="target-param-12/5"),
    pytest.param({"target_per_replica": 0.5}, snap({P: 0.2}), 1, id="fractional-value"),
    pytest.param({"target_per_replica": 5}, snap({P: 0}, current=0), 0, id="zero-at-zero"),
    pytest.param({"target_per_replica": 5}, snap({P: 0.1}, current=0), 1, id="any-value-activates"),
    pytest.param(
        {"target_per_replica": 5, "activation_threshold": 10},
        snap({P: 10}, current=0),
        0,
        id="at-activation-stays-at-zero",
    ),
    pytest.param(
        {"target_per_replica": 5, "activation_threshold": 10},
        snap({P: 10.5}, current=0),
        3,
        id="above-activation-scales-to-ceil",
    ),
    pytest.param(
        {"target_per_replica": 5, "activation_threshold": 10},
        snap({P: 4}, current=2),
        1,
        id="activation-only-at-zero",
    ),
    pytest.param(
        {"signal": "gpu_util", "target_per_replica": 50},
        snap({P: 1000, "gpu_util": 120}),
        3,
        id="named-signal-chosen",
    ),
    # in-flight requests are not the metric: only the signal counts
    pytest.param({"target_per_replica": 5}, snap({P: 5}, in_flight=40), 1, id="load-ignored"),
    # The policy recommends the reading; holding a scale-down back is the guardrails' job.
    pytest.param({}, snap({P: 10}, current=5), 1, id="raw-scale-down"),
    pytest.param({}, snap({}, current=4), 4, id="missing-holds"),
    pytest.param({}, snap({}, current=0), 0, id="missing-holds-zero"),
    pytest.param({"signal": "other"}, snap({P: 90}, current=2), 2, id="other-name-missing"),
]


@pytest.mark.parametrize(("params", "snapshot", "want"), SINGLE)
def test_recommend(params: dict[str, object], snapshot: Snapshot, want: int) -> None:
    p = policy(**params)
    result = p.recommend(snapshot, p.initial_state())
    assert result.replicas == want
    assert result.describe().startswith("metric: ")


def test_reasons() -> None:
    p = policy(target_per_replica=5)
    assert p.recommend(snap({P: 12}), p.initial_state()).describe() == (
        "metric: prometheus 12 at 5/replica -> 3"
    )
    missing = p.recommend(snap({}, current=4), p.initial_state())
    assert missing.describe() == (
        "metric: no 'prometheus' reading (none yet, or none for the signal TTL): holding 4"
    )


# (seconds after T0, signal value or None for missing, current, expected), through policy and
# guardrails with the scale-down delay the spec defaults to (KEDA's 300 s) or the one given; no
# floor, no grace, so that only the stabilization holds a count.
SEQUENCES = [
    pytest.param(
        {"target_per_replica": 10},
        None,
        [(0, 50, 5, 5), (60, 10, 5, 5), (359, 10, 5, 5), (360, 10, 5, 1)],
        id="300s-stabilization",
    ),
    pytest.param(
        {"target_per_replica": 10},
        None,
        [(0, 50, 5, 5), (100, 30, 5, 5), (200, 10, 5, 5), (399, 10, 5, 5), (400, 10, 5, 3)],
        id="300s-steps-down-through-window-max",
    ),
    pytest.param(
        {"target_per_replica": 10},
        60.0,
        [(0, 50, 5, 5), (10, 0, 5, 5), (69, 0, 5, 5), (70, 0, 5, 0)],
        id="60s-stabilization-to-zero",
    ),
    # The first decision is seeded with current: no scale-down on a restart.
    pytest.param({}, None, [(0, 10, 5, 5)], id="seeded-no-drop"),
    pytest.param({}, 0.0, [(0, 10, 5, 1)], id="no-stabilization"),
    pytest.param(
        {"target_per_replica": 10},
        None,
        [(0, 10, 1, 1), (10, 80, 1, 8)],
        id="scale-up-immediate",
    ),
    pytest.param(
        {"target_per_replica": 10},
        60.0,
        # The signal disappears at 5 replicas: hold. The hold (5) stays in effect until readings
        # return at t=100, so their drop to 1 waits a whole window from then, not from t=0.
        [(0, 50, 5, 5), (30, None, 5, 5), (100, 10, 5, 5), (159, 10, 5, 5), (161, 10, 5, 1)],
        id="missing-then-back",
    ),
]


@pytest.mark.parametrize(("params", "delay_s", "steps"), SEQUENCES)
def test_sequence(
    params: dict[str, object],
    delay_s: float | None,
    steps: list[tuple[float, float | None, int, int]],
) -> None:
    delay = SPEC.settings_defaults["scale_down_delay_s"] if delay_s is None else delay_s
    settings = replace(TEN, min_replicas=0, scale_to_zero_grace_s=0.0, scale_down_delay_s=delay)
    decider = Decider(policy(**params), "metric")
    state = decider.initial_state()
    got = []
    for at, value, current, _ in steps:
        signals = {} if value is None else {P: value}
        decision = decider.decide(snap(signals, current=current, now=T0 + at, s=settings), state)
        state = decision.state
        got.append(decision.replicas)
    assert got == [want for *_, want in steps]


def test_the_spec_defaults_to_keda_stabilization() -> None:
    assert SPEC.settings_defaults == {"scale_down_delay_s": 300.0}


def test_state_survives_the_state_store_encoding() -> None:
    # The daemon persists policy state as JSON (msgspec) and decodes it into the type of
    # initial_state(): it must come back equal (the state holds nothing now that the
    # stabilization history is the guardrails').
    p = policy(target_per_replica=10)
    state = p.recommend(snap({P: 50}, current=5), p.initial_state()).state
    assert isinstance(state, MetricState)
    decoded = msgspec.json.decode(msgspec.json.encode(state), type=MetricState)
    assert decoded == state


def test_registered_as_builtin() -> None:
    assert get_policy("metric") is SPEC


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"activation_threshold": -1}, id="negative-activation"),
        # Moved to the guardrails' scale_down_delay_s: one name for one concept.
        pytest.param({"scale_down_stabilization_s": 300}, id="stabilization-is-a-setting"),
        pytest.param({"target_per_replica": 0}, id="target-0"),
        pytest.param({"signal": "Prometheus"}, id="signal-upper-case"),
        pytest.param({"signal": "1st"}, id="signal-leading-digit"),
        pytest.param({"signal": "a" * 64}, id="signal-too-long"),
        pytest.param({"query": "up"}, id="unknown-key"),
    ],
)
def test_bad_params(params: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        validate_params(SPEC.params_type, params)
