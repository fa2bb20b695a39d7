"""The ``kpa`` policy, checked against the test cases of the Go original.

Most cases come from knative serving's ``pkg/autoscaler/scaling/autoscaler_test.go`` (and
one from ``pkg/autoscaler/aggregation/max/timewindow_test.go``), with their inputs and
expected desired pod counts; each row names the Go test it comes from. The Go helper
``newTestAutoscaler`` builds a decider with panic threshold 2, scale rates 10 up and 10
down, a 60 s stable window, a reachable revision and one ready pod at creation; the Go
``New`` used by the scale-down-delay tests starts with zero ready pods. Go tests that read
``time.Now()`` several times in a row get the same instant here (no rule depends on the
microseconds between those calls).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.config.params import validate_params
from autoscaler.core.decider import Decider, DecisionState
from autoscaler.core.guardrails import GuardState
from autoscaler.core.policies.kpa import (
    SPEC,
    KpaParams,
    KpaPolicy,
    KpaSpec,
    KpaState,
    kpa_initial_state,
    kpa_scale,
)
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot

T0 = 1_700_000_000.0
"""Go tests use ``time.Now()`` or ``time.Time{}``; any instant on a tick boundary behaves
the same (``time.Time{}`` is a multiple of 2 s in unix time, like this one)."""


def go_spec(target: float, **overrides: Any) -> KpaSpec:
    """The DeciderSpec of the Go helper ``newTestAutoscaler``."""
    base = KpaSpec(
        target_value=target,
        panic_threshold=2.0,
        max_scale_up_rate=10.0,
        max_scale_down_rate=10.0,
        stable_window_s=60.0,
        reachable=True,
    )
    return dataclasses.replace(base, **overrides)


def delay_spec(**overrides: Any) -> KpaSpec:
    """The DeciderSpec of TestAutoscalerScaleDownDelay*: no stable window is set there."""
    base = KpaSpec(
        target_value=10.0,
        panic_threshold=100.0,
        max_scale_up_rate=10.0,
        max_scale_down_rate=10.0,
        stable_window_s=0.0,
        scale_down_delay_s=300.0,
        reachable=True,
    )
    return dataclasses.replace(base, **overrides)


# --- single decisions --------------------------------------------------------------------

# (Go test, spec, state before the call, ready pods, observed stable, observed panic, want)
SINGLE_CASES = [
    # TestAutoscalerScale / AutoscalerNoDataAtZeroNoAutoscale (and ...WithExplicitEPs)
    ("Scale/NoDataAtZeroNoAutoscale", go_spec(10), kpa_initial_state(1, T0), 1, 0.0, 0.0, 0),
    # TestAutoscalerScale / AutoscalerStableModeUnlimitedTBC
    ("Scale/StableModeUnlimitedTBC", go_spec(181), kpa_initial_state(1, T0), 1, 21.0, 26.0, 1),
    # TestAutoscalerScale / Autoscaler0TBC
    ("Scale/0TBC", go_spec(10), kpa_initial_state(1, T0), 1, 50.0, 49.0, 5),
    # TestAutoscalerScale / AutoscalerStableModeNoChange
    ("Scale/StableModeNoChange", go_spec(10), kpa_initial_state(1, T0), 1, 50.0, 50.0, 5),
    # TestAutoscalerScale / AutoscalerPanicStableLargerThanPanic: panicking since 5 s ago
    # with 5 pods; the stable count is larger and wins.
    (
        "Scale/PanicStableLargerThanPanic",
        go_spec(1),
        KpaState(panic_time=T0 - 5, max_panic_pods=5),
        5,
        50.0,
        30.0,
        50,
    ),
    # TestAutoscalerScale / AutoscalerPanicStableLessThanPanic
    (
        "Scale/PanicStableLessThanPanic",
        go_spec(1),
        KpaState(panic_time=T0 - 5, max_panic_pods=5),
        5,
        20.0,
        30.0,
        30,
    ),
    # TestAutoscalerScale / AutoscalerStableModeNoChangeAlreadyScaled
    ("Scale/NoChangeAlreadyScaled", go_spec(10), kpa_initial_state(1, T0), 5, 50.0, 50.0, 5),
    # TestAutoscalerScale / AutoscalerStableModeIncreaseWithSmallScaleUpRate:
    # ceil(1.1 x 2) = 3 still lets a needed pod through.
    (
        "Scale/IncreaseWithSmallScaleUpRate",
        go_spec(1, max_scale_up_rate=1.1),
        kpa_initial_state(1, T0),
        2,
        3.0,
        3.1,
        3,
    ),
    # TestAutoscalerScale / AutoscalerStableModeDecreaseWithSmallScaleDownRate:
    # floor(100 / 1.1) = 90.
    (
        "Scale/DecreaseWithSmallScaleDownRate",
        go_spec(10, max_scale_down_rate=1.1),
        kpa_initial_state(1, T0),
        100,
        1.0,
        1.0,
        90,
    ),
    # TestAutoscalerScale / AutoscalerStableModeDecreaseNonReachable: no scale-down limit.
    (
        "Scale/DecreaseNonReachable",
        go_spec(10, max_scale_down_rate=1.1, reachable=False),
        kpa_initial_state(1, T0),
        100,
        1.0,
        1.0,
        1,
    ),
    # TestAutoscalerScale / AutoscalerPanicModeDoublePodCount: the panic count wins.
    ("Scale/PanicModeDoublePodCount", go_spec(10), kpa_initial_state(1, T0), 1, 50.0, 100.0, 10),
    # TestAutoscalerUseOnePodAsMinimumIfEndpointsNotFound: zero ready pods count as one
    # for the rate limit, so at most 10 x 1.
    (
        "UseOnePodAsMinimumIfEndpointsNotFound",
        go_spec(10),
        kpa_initial_state(1, T0),
        0,
        1000.0,
        888.0,
        10,
    ),
    # TestAutoscalerMetrics: desired pod count only (the metric recording is not ported).
    ("Metrics", go_spec(10), kpa_initial_state(1, T0), 1, 50.0, 50.0, 5),
    # TestAutoscalerMetricsWithRPS: the decider treats requests-per-second exactly like
    # concurrency (stable 100, panic 99 rps, target 10 rps), 61 s after creation.
    ("MetricsWithRPS", go_spec(10), kpa_initial_state(1, T0 - 61), 1, 100.0, 99.0, 10),
]


@pytest.mark.parametrize("case", [pytest.param(case, id=case[0]) for case in SINGLE_CASES])
def test_single_decision(case: tuple[str, KpaSpec, KpaState, int, float, float, int]) -> None:
    _, spec, state, ready, stable, panic, want = case
    result, _ = kpa_scale(
        spec, state, observed_stable=stable, observed_panic=panic, ready_pods=ready, now=T0
    )
    assert result.desired_pod_count == want


# --- sequences ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    at: float
    """Seconds after the sequence's start."""
    ready: int
    stable: float
    panic: float
    want: int
    spec: KpaSpec | None = None
    """Replaces the sequence's spec from this step on (Go ``Update``)."""
    check_panic: bool = False
    panic_at: float | None = None
    """With ``check_panic``: the expected ``panic_time`` after the step, in seconds after
    the start (None: not panicking)."""


@dataclass(frozen=True)
class Sequence:
    spec: KpaSpec
    ready_at_creation: int
    steps: tuple[Step, ...]


SEQUENCES = {
    # TestAutoscalerScaleDownDelay / simple
    "ScaleDownDelay/simple": Sequence(
        delay_spec(),
        0,
        (
            Step(2, 0, 40, 40, 4),  # scale up
            Step(300, 0, 0, 0, 4),  # five minutes at zero: still within the delay
            Step(302, 0, 0, 0, 0),  # the 4 has left the window
        ),
    ),
    # TestAutoscalerScaleDownDelay / gradual (runs on the same decider after "simple")
    "ScaleDownDelay/simple+gradual": Sequence(
        delay_spec(),
        0,
        (
            Step(2, 0, 40, 40, 4),
            Step(300, 0, 0, 0, 4),
            Step(302, 0, 0, 0, 0),
            Step(540, 0, 40, 40, 4),
            Step(600, 0, 30, 30, 4),  # 4 still dominates
            Step(660, 0, 0, 0, 4),  # still at 4
            Step(840, 0, 0, 0, 3),  # 4 scrolls out, drop to 3
            Step(900, 0, 0, 0, 0),  # everything scrolled out
        ),
    ),
    # TestAutoscalerScaleDownDelayNotReachable: once unreachable, the delay no longer holds
    # (the Go test steps the clock back to +2 s for the last call).
    "ScaleDownDelayNotReachable": Sequence(
        delay_spec(),
        0,
        (
            Step(2, 0, 40, 40, 4),
            Step(60, 0, 0, 0, 4),
            Step(2, 0, 0, 0, 0, spec=delay_spec(reachable=False)),
        ),
    ),
    # TestAutoscalerScaleDownDelayZero: without a delay, two decisions 0.5 s apart are
    # independent (a one-bucket window would have kept the larger).
    "ScaleDownDelayZero": Sequence(
        delay_spec(scale_down_delay_s=0.0),
        0,
        (
            Step(0, 0, 40, 40, 4),
            Step(0.5, 0, 20, 20, 2),
        ),
    ),
    # TestAutoscalerStableModeIncreaseWithConcurrencyDefault
    "StableModeIncreaseWithConcurrencyDefault": Sequence(
        go_spec(10),
        1,
        (
            Step(0, 1, 50, 10, 5),
            Step(0, 1, 100, 10, 10),
        ),
    ),
    # TestAutoscalerStableModeIncreaseWithRPS (rps values through the same decider)
    "StableModeIncreaseWithRPS": Sequence(
        go_spec(10),
        1,
        (
            Step(0, 1, 50, 50, 5),
            Step(0, 1, 100, 99, 10),
        ),
    ),
    # TestAutoscalerUnpanicAfterSlowIncrease
    "UnpanicAfterSlowIncrease": Sequence(
        go_spec(1),
        1,
        (
            Step(
                0, 10, 11, 25, 25, check_panic=True, panic_at=0.0
            ),  # jump from 10 to 25 pods: panic
            # Half a stable window later, +1 pod per tick: under the threshold, but the
            # panic persists and its start does not move.
            Step(30, 40, 30, 41, 41, check_panic=True, panic_at=0.0),
            # A full stable window (plus a tick) without a burst: panic ends.
            Step(62, 55, 50, 56, 50, check_panic=True, panic_at=None),
        ),
    ),
    # TestAutoscalerExtendPanicWindow
    "ExtendPanicWindow": Sequence(
        go_spec(1),
        1,
        (
            Step(0, 10, 11, 25, 25, check_panic=True, panic_at=0.0),
            Step(
                30, 40, 30, 80, 80, check_panic=True, panic_at=30.0
            ),  # still surging: panic extended
        ),
    ),
    # TestAutoscalerStableModeDecrease
    "StableModeDecrease": Sequence(
        go_spec(10),
        1,
        (
            Step(0, 8, 100, 100, 10),
            Step(0, 8, 50, 50, 5),
        ),
    ),
    # TestAutoscalerStableModeNoTrafficScaleToZero
    "StableModeNoTrafficScaleToZero": Sequence(
        go_spec(10),
        1,
        (
            Step(0, 1, 1, 0, 1),
            Step(0, 1, 0, 0, 0),
        ),
    ),
    # TestAutoscalerActivationScale (activation scale 2): no demand stays at 0, any demand
    # asks for at least 2.
    "ActivationScale": Sequence(
        go_spec(10, activation_scale=2),
        1,
        (
            Step(0, 1, 0, 0, 0),
            Step(0, 1, 1, 0, 2),
        ),
    ),
    # TestAutoscalerPanicModeExponentialTrackAndStabilize (older name: ...Stablize)
    "PanicModeExponentialTrackAndStabilize": Sequence(
        go_spec(1),
        1,
        (
            Step(0, 1, 6, 6, 6),
            Step(0, 6, 36, 36, 36, check_panic=True, panic_at=0.0),
            Step(1, 36, 216, 216, 216, check_panic=True, panic_at=1.0),
            Step(1, 216, 1296, 1296, 1296, check_panic=True, panic_at=1.0),
            Step(2, 1296, 1296, 1296, 1296),  # traffic stabilised: panic holds the count
        ),
    ),
    # TestAutoscalerPanicThenUnPanicScaleDown
    "PanicThenUnPanicScaleDown": Sequence(
        go_spec(10),
        1,
        (
            Step(0, 1, 100, 100, 10),
            Step(0, 10, 100, 1000, 100),
            Step(30, 10, 1, 1, 100),  # traffic dropped, still panicking: no scale-down
            Step(61, 10, 1, 1, 1),  # a stable window later: scale down (10 / 10 = 1)
        ),
    ),
    # TestAutoscalerRateLimitScaleUp: need 100 pods, but at most x10 per decision.
    "RateLimitScaleUp": Sequence(
        go_spec(10),
        1,
        (
            Step(0, 1, 1000, 1001, 10),
            Step(0, 10, 1000, 1001, 100),
        ),
    ),
    # TestAutoscalerRateLimitScaleDown: need 1 pod, but at most /10 per decision.
    "RateLimitScaleDown": Sequence(
        go_spec(10),
        1,
        (
            Step(0, 100, 1, 1, 10),
            Step(0, 10, 1, 1, 1),
        ),
    ),
    # TestAutoscalerUpdateTarget: the target drops from 10 to 1 between decisions.
    "UpdateTarget": Sequence(
        go_spec(10),
        1,
        (
            Step(0, 1, 100, 101, 10),
            Step(0, 10, 100, 101, 100, spec=go_spec(1)),
        ),
    ),
    # TestTimedWindowMax (pkg/autoscaler/aggregation/max/timewindow_test.go), the window
    # behind the scale-down delay: 5 s window, 1 s buckets; the recorded values are the
    # desired counts (target 1, no rate limit or panic in the way).
    "TimedWindowMax/single value": Sequence(
        KpaSpec(target_value=1, panic_threshold=10, scale_down_delay_s=5, tick_s=1),
        0,
        (Step(0, 0, 5, 0, 5),),
    ),
    "TimedWindowMax/two values in same second": Sequence(
        KpaSpec(target_value=1, panic_threshold=10, scale_down_delay_s=5, tick_s=1),
        0,
        (Step(0, 0, 6, 0, 6), Step(0.5, 0, 5, 0, 6)),
    ),
    "TimedWindowMax/two values": Sequence(
        KpaSpec(target_value=1, panic_threshold=10, scale_down_delay_s=5, tick_s=1),
        0,
        (Step(0, 0, 5, 0, 5), Step(1, 0, 8, 0, 8)),
    ),
    "TimedWindowMax/time gap": Sequence(
        KpaSpec(target_value=1, panic_threshold=10, scale_down_delay_s=5, tick_s=1),
        0,
        (Step(0, 0, 5, 0, 5), Step(6, 0, 4, 0, 4)),
    ),
}


@pytest.mark.parametrize("sequence", list(SEQUENCES.values()), ids=list(SEQUENCES))
def test_sequence(sequence: Sequence) -> None:
    spec = sequence.spec
    state = kpa_initial_state(sequence.ready_at_creation, T0)
    got: list[int] = []
    for step in sequence.steps:
        spec = step.spec or spec
        result, state = kpa_scale(
            spec,
            state,
            observed_stable=step.stable,
            observed_panic=step.panic,
            ready_pods=step.ready,
            now=T0 + step.at,
        )
        got.append(result.desired_pod_count)
        if step.check_panic:
            want_time = None if step.panic_at is None else T0 + step.panic_at
            assert state.panic_time == want_time, f"panic time after step at +{step.at} s"
    assert got == [step.want for step in sequence.steps]


# TestStartInPanicMode: a new decider is in panic mode, holding the current count, only
# when more than one pod is ready. (TestNewFail: a pod count error reads as 0 pods.)
@pytest.mark.parametrize(
    ("ready", "panicking", "max_panic_pods"),
    [(0, False, 0), (1, False, 1), (2, True, 2)],
)
def test_initial_state(ready: int, panicking: bool, max_panic_pods: int) -> None:
    state = kpa_initial_state(ready, T0)
    assert (state.panic_time is not None) == panicking
    assert state.max_panic_pods == max_panic_pods


def test_state_is_immutable_and_small() -> None:
    spec = KpaSpec(target_value=1, scale_down_delay_s=300, max_scale_down_rate=1000)
    state = kpa_initial_state(0, T0)
    # Ten minutes of a steadily falling count: the window keeps only what can still be
    # the maximum within 300 s (one entry per 2 s bucket at most).
    for i in range(300):
        _, state = kpa_scale(
            spec, state, observed_stable=1000 - i, observed_panic=0, ready_pods=1000, now=T0 + 2 * i
        )
    assert len(state.delay_window) == 150
    assert state.delay_window[0][1] == 850  # the value 298 s ago
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.max_panic_pods = 3  # type: ignore[misc]
    hash(state)


# --- the policy ----------------------------------------------------------------------------


def snapshot(
    now: float,
    *,
    ready: int,
    stable: float,
    panic: float,
    current: int | None = None,
    history_s: float = 120.0,
    parallelism: int = 4,
    target_utilization: float = 0.7,
    decision_period_s: float = 0.0,
) -> Snapshot:
    return Snapshot(
        now=now,
        deployment="ns/app",
        settings=Settings(
            min_replicas=0,
            max_replicas=100,
            parallelism=parallelism,
            target_utilization=target_utilization,
            window_s=60,
            panic_window_s=6,
            decision_period_s=decision_period_s,
        ),
        current_replicas=ready if current is None else current,
        ready_replicas=ready,
        in_flight=round(panic),
        queue_length=0.0,
        stable_load=stable,
        panic_load=panic,
        history_s=history_s,
        idle_s=0.0,
    )


def test_spec_registers_kpa_with_knative_defaults() -> None:
    assert SPEC.name == "kpa"
    assert SPEC.params_type is KpaParams
    params = KpaParams()
    assert (
        params.panic_threshold,
        params.max_scale_up_rate,
        params.max_scale_down_rate,
        params.scale_down_delay_s,
        params.activation_scale,
        params.target_per_replica,
    ) == (2.0, 1000.0, 2.0, 0.0, 1, None)
    # Knative's 2 s tick is the framework's decision period, defaulted for this policy.
    assert SPEC.settings_defaults == {"decision_period_s": 2.0}
    assert isinstance(SPEC.build(params), KpaPolicy)


@pytest.mark.parametrize(
    "bad",
    [
        {"panic_threshold": 1.0},
        {"max_scale_up_rate": 1.0},
        {"max_scale_down_rate": 0.5},
        {"scale_down_delay_s": -1},
        {"activation_scale": 0},
        {"target_per_replica": 0},
        {"max_scale_up_rate": float("inf")},
        {"unknown": 1},
    ],
)
def test_params_reject_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        validate_params(KpaParams, bad)


def test_policy_reason_and_target_from_settings() -> None:
    # target = parallelism 4 x utilization 0.7 = 2.8 per replica.
    # A state from earlier decisions (a fresh one would start in panic mode with 4 ready).
    policy = KpaPolicy(KpaParams())
    earlier = KpaState(last_tick=T0 - 2)
    rec = policy.recommend(snapshot(T0, ready=4, stable=10.4, panic=13.0), earlier)
    assert rec.replicas == 4
    assert rec.reason == "kpa: stable 10.4 / target 2.8 -> 4, panic 13 -> 5 (not panicking): 4"


def test_policy_target_param_overrides_settings() -> None:
    policy = KpaPolicy(KpaParams(target_per_replica=1.0))
    rec = policy.recommend(snapshot(T0, ready=1, stable=1.5, panic=1.0), policy.initial_state())
    assert rec.replicas == 2


def test_policy_keeps_current_without_data() -> None:
    # Knative answers "no valid scale" without metrics (TestAutoscalerNoDataNoAutoscale);
    # here that keeps the replicas asked for.
    policy = KpaPolicy(KpaParams())
    snap = snapshot(T0, ready=2, current=3, stable=0.0, panic=0.0, history_s=0.0)
    rec = policy.recommend(snap, policy.initial_state())
    assert rec.replicas == 3
    assert "no load observed" in rec.reason


def test_policy_starts_in_panic_with_several_pods_ready() -> None:
    # TestStartInPanicMode through the policy: 3 ready pods and little load keep 3 for a
    # stable window, then scale down (by at most half per decision).
    policy = KpaPolicy(KpaParams())
    state = policy.initial_state()
    got = []
    for at in (0.0, 30.0, 60.0, 62.0):
        rec = policy.recommend(snapshot(T0 + at, ready=3, stable=1.0, panic=1.0), state)
        state = rec.state
        got.append(rec.replicas)
    assert got == [3, 3, 3, 1]


def test_policy_decides_once_per_tick() -> None:
    # The tick is the framework's decision period: through the Decider, with kpa's default.
    decider = Decider(KpaPolicy(KpaParams()), "kpa")
    state = decider.initial_state()
    got = []
    reasons = []
    # (seconds after start, load) with a target of 2 per replica: the loads at +1 s and
    # +3.5 s fall between ticks.
    for at, load in ((0.0, 2.0), (1.0, 20.0), (2.0, 20.0), (3.5, 2.0), (4.0, 2.0)):
        snap = snapshot(
            T0 + at,
            ready=1,
            stable=load,
            panic=load,
            parallelism=2,
            target_utilization=1,
            decision_period_s=SPEC.settings_defaults["decision_period_s"],
        )
        decision = decider.decide(snap, state)
        state = decision.state
        got.append(decision.replicas)
        reasons.append(decision.reason)
    # +2 s: 10 wanted, 10/1 is over the panic threshold -> panic; +4 s: panic holds 10.
    assert got == [1, 1, 10, 10, 10]
    assert state.policy.panic_time == T0 + 2.0
    assert reasons[1] == "kpa: next decision due 1 s later (decision_period_s=2); keeping 1"


def test_policy_scale_down_delay_as_in_go() -> None:
    # TestAutoscalerScaleDownDelay / simple through the policy (target 10 per replica).
    policy = KpaPolicy(
        KpaParams(
            scale_down_delay_s=300,
            max_scale_up_rate=10,
            max_scale_down_rate=10,
            panic_threshold=10,
        )
    )
    state = policy.initial_state()
    got = []
    reasons = []
    for at, load in ((2.0, 40.0), (300.0, 0.0), (302.0, 0.0)):
        snap = snapshot(
            T0 + at, ready=0, stable=load, panic=load, parallelism=10, target_utilization=1
        )
        rec = policy.recommend(snap, state)
        state = rec.state
        got.append(rec.replicas)
        reasons.append(rec.reason)
    assert got == [4, 4, 0]
    assert reasons[1] == (
        "kpa: stable 0 / target 10 -> 0, panic 0 -> 0 (not panicking), "
        "scale-down delay 300 s holds 4 over 0: 4"
    )


def test_policy_scales_to_zero_without_load() -> None:
    policy = KpaPolicy(KpaParams())
    rec = policy.recommend(snapshot(T0, ready=1, stable=0.0, panic=0.0), policy.initial_state())
    assert rec.replicas == 0


def test_the_framework_replaces_a_foreign_state() -> None:
    policy = KpaPolicy(KpaParams())
    decider = Decider(policy, "kpa")
    foreign = DecisionState(policy=None, guard=GuardState())
    decision = decider.decide(snapshot(T0, ready=1, stable=5.0, panic=5.0), foreign)
    assert decision.recommended == 2
    assert isinstance(decision.state.policy, KpaState)


# Not from the Go tests: the edges of the rules as the Go code states them.
@pytest.mark.parametrize(
    ("after_s", "want", "panicking"),
    [
        (60.0, 100, True),  # panicTime + StableWindow is not yet *before* now
        (60.5, 1, False),
    ],
)
def test_panic_ends_strictly_after_a_stable_window(
    after_s: float, want: int, panicking: bool
) -> None:
    state = KpaState(panic_time=T0, max_panic_pods=100)
    result, new_state = kpa_scale(
        go_spec(10), state, observed_stable=1, observed_panic=1, ready_pods=10, now=T0 + after_s
    )
    assert (result.desired_pod_count, result.panicking) == (want, panicking)
    assert new_state.max_panic_pods == (100 if panicking else 0)


def test_panic_threshold_uses_unlimited_panic_count() -> None:
    # 30 pods wanted by the panic window, 10 allowed by the rate limit: 30 / 1 >= 2 panics.
    result, state = kpa_scale(
        go_spec(1), KpaState(), observed_stable=0, observed_panic=30, ready_pods=1, now=T0
    )
    assert (result.desired_pod_count, result.panic_pods, result.panicking) == (10, 30, True)
    assert state.panic_time == T0


def test_a_tiny_decision_period_still_cuts_time_into_countable_buckets() -> None:
    # Settings built without the file model (which refuses periods below 0.01 s): the delay
    # window's buckets are never shorter than the files' shortest period. Found by the fuzz
    # suite, as an OverflowError from now / 1e-300.
    policy = KpaPolicy(KpaParams(scale_down_delay_s=10))
    state = policy.initial_state()
    for at in (0.0, 2.0, 4.0):
        snap = snapshot(T0 + at, ready=1, stable=1.0, panic=1.0, decision_period_s=1e-300)
        state = policy.recommend(snap, state).state
    assert policy.spec(snap.settings).tick_s == 0.01
