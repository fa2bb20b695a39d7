"""The ``concurrency`` policy: rows of snapshot inputs -> expected replicas, and panic timing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from autoscaler.config.params import validate_params
from autoscaler.core.decider import Decider, DecisionState
from autoscaler.core.guardrails import GuardState
from autoscaler.core.policies.concurrency import (
    SPEC,
    ConcurrencyParams,
    ConcurrencyPolicy,
    ConcurrencyState,
)
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot
from autoscaler.core.tracker import LoadTracker

T0 = 1_795_435_200.0
# parallelism 10 at full utilization: 10 requests per replica, easy arithmetic
TEN = Settings(parallelism=10, target_utilization=1.0, window_s=60, panic_window_s=6)


def snap(
    stable: float,
    panic: float,
    *,
    ready: int = 3,
    current: int | None = None,
    now: float = T0,
    s: Settings = TEN,
) -> Snapshot:
    return Snapshot(
        now=now,
        deployment="ns/model",
        settings=s,
        current_replicas=ready if current is None else current,
        ready_replicas=ready,
        in_flight=0,
        queue_length=0.0,
        stable_load=stable,
        panic_load=panic,
        history_s=3600.0,
        idle_s=0.0,
    )


def policy(**params: float) -> ConcurrencyPolicy:
    return ConcurrencyPolicy(validate_params(ConcurrencyParams, params))


# (params, snapshot, expected replicas, panicking afterwards)
SINGLE = [
    pytest.param({}, snap(0, 0), 0, False, id="no-load"),
    pytest.param({}, snap(20, 20), 2, False, id="exact-multiple"),
    pytest.param({}, snap(25, 25), 3, False, id="rounds-up"),
    pytest.param({}, snap(0.01, 0.01), 1, False, id="any-load-needs-one"),
    # 2.1 / 0.7 is 3.0000000000000004 in floats: still 3 replicas
    pytest.param({}, snap(2.1, 2.1, s=Settings()), 3, False, id="float-noise-eps"),
    pytest.param({}, snap(14, 14, s=Settings(parallelism=4)), 5, False, id="4x0.7"),
    pytest.param({"target_per_replica": 5}, snap(25, 25), 5, False, id="target-param"),
    pytest.param({"target_per_replica": 2.5}, snap(10, 10), 4, False, id="target-param-frac"),
    pytest.param({}, snap(50, 30, ready=3), 5, False, id="stable-mode-ignores-panic"),
    # panic = ceil(40/10) = 4 >= 2 x 2 ready: panic, take the larger window
    pytest.param({}, snap(10, 40, ready=2), 4, True, id="enter-at-threshold"),
    pytest.param({}, snap(10, 39, ready=2), 4, True, id="enter-ceil-39-is-4"),
    # below the threshold, calm; 3 > 1 is a rising load: no scale-down below the panic demand
    pytest.param({}, snap(10, 30, ready=2), 2, False, id="below-threshold"),
    # zero ready counts as one: 2 >= 2 x 1
    pytest.param({}, snap(10, 20, ready=0, current=1), 2, True, id="zero-ready-as-one"),
    pytest.param({"panic_threshold": 3}, snap(10, 40, ready=2), 2, False, id="threshold-3"),
    pytest.param({"panic_threshold": 3}, snap(10, 60, ready=2), 6, True, id="threshold-3-hit"),
    # 4 < 2 x 7 asked for: calm (the 5 starting will serve), and 4 > 1 is rising: 4
    pytest.param({}, snap(10, 40, ready=2, current=7), 4, False, id="calm-against-current"),
    pytest.param({}, snap(90, 40, ready=2), 9, True, id="panic-stable-larger"),
]


@pytest.mark.parametrize(("params", "snapshot", "want", "panicking"), SINGLE)
def test_recommend(
    params: dict[str, float], snapshot: Snapshot, want: int, panicking: bool
) -> None:
    p = policy(**params)
    result = p.recommend(snapshot, p.initial_state())
    assert result.replicas == want
    assert result.state == ConcurrencyState(T0 if panicking else None)
    assert result.describe().startswith("concurrency: ")


# (seconds after T0, stable, panic, ready, current, expected, panicking)
PANIC = [
    pytest.param(
        [
            (0, 10, 40, 2, 2, 4, True),  # enter
            (10, 10, 10, 4, 4, 4, True),  # calm, but no scale-down while panicking
            (59, 10, 10, 4, 4, 4, True),
            (60, 10, 10, 4, 4, 1, False),  # a full window_s calm: exit
        ],
        id="enter-hold-exit-after-window",
    ),
    pytest.param(
        [
            (0, 10, 40, 2, 2, 4, True),
            (30, 10, 80, 4, 4, 8, True),  # exceeded again (8 >= 2 x 4): restarts the clock
            (60, 10, 10, 8, 8, 8, True),
            (89, 10, 10, 8, 8, 8, True),
            (90, 10, 10, 8, 8, 1, False),
        ],
        id="re-trigger-extends",
    ),
    pytest.param(
        [
            (0, 10, 40, 2, 2, 4, True),
            # still high but no longer >= 2 x ready: does not re-trigger, follows the max
            (20, 10, 40, 4, 4, 4, True),
            (40, 30, 50, 4, 4, 5, True),
            # calm again, but the panic window (5) is above the stable one (3): rising, hold
            (60, 30, 50, 5, 5, 5, False),
            (61, 30, 30, 5, 5, 3, False),
        ],
        id="threshold-is-relative-to-current",
    ),
    pytest.param(
        [
            (0, 10, 10, 1, 1, 1, False),
            (5, 10, 20, 1, 1, 2, True),
            (64, 10, 10, 2, 2, 2, True),
            (65, 10, 10, 2, 2, 1, False),
            (70, 10, 30, 2, 2, 2, False),  # panic 3 < 2 x 2: stays calm; rising: holds 2
        ],
        id="calm-panic-calm",
    ),
]


@pytest.mark.parametrize("steps", PANIC)
def test_panic_timing(steps: list[tuple[float, float, float, int, int, int, bool]]) -> None:
    p = policy()
    state = p.initial_state()
    got, want = [], []
    for at, stable, panic, ready, current, expected, panicking in steps:
        result = p.recommend(snap(stable, panic, ready=ready, current=current, now=T0 + at), state)
        state = result.state
        got.append((at, result.replicas, state.panic_since is not None))
        want.append((at, expected, panicking))
    assert got == want


# The policy's own scale-up must not re-trip panic: ready lags current by a cold start.
# (seconds after T0, stable, panic, ready, current, expected, panicking)
ASKED_FOR = [
    pytest.param(
        [
            (0, 10, 40, 2, 2, 4, True),  # enter: 4 >= 2 x 2
            # 4 asked for, 2 still starting: 4 < 2 x 4, so the clock is not restarted...
            (3, 10, 40, 2, 4, 4, True),
            (60, 10, 10, 4, 4, 1, False),  # ...and panic ends a window after T0, not T0 + 3
        ],
        id="own-scale-up-does-not-re-trip",
    ),
    pytest.param(
        # 5 >= 2 x 2 ready, but 6 are asked for and will serve by the time more could: calm
        [(0, 10, 50, 2, 6, 5, False)],
        id="starting-replicas-count",
    ),
    pytest.param([(0, 40, 80, 1, 4, 8, True)], id="still-trips-at-2x-asked-for"),
    pytest.param([(0, 10, 20, 0, 0, 2, True)], id="zero-asked-for-counts-as-one"),
]


@pytest.mark.parametrize("steps", ASKED_FOR)
def test_panic_threshold_is_against_replicas_asked_for(
    steps: list[tuple[float, float, float, int, int, int, bool]],
) -> None:
    test_panic_timing(steps)


def test_panic_since_is_last_time_exceeded() -> None:
    p = policy()
    first = p.recommend(snap(10, 40, ready=2, now=T0), p.initial_state())
    second = p.recommend(snap(10, 80, ready=2, current=4, now=T0 + 3), first.state)
    calm = p.recommend(snap(10, 10, ready=4, now=T0 + 6), second.state)
    assert [first.state, second.state, calm.state] == [
        ConcurrencyState(T0),
        ConcurrencyState(T0 + 3),
        ConcurrencyState(T0 + 3),
    ]


def test_foreign_state_is_treated_as_initial() -> None:
    # the framework hands a policy only its own state type: another policy's becomes fresh
    decider = Decider(policy(), "concurrency")
    for foreign in (None, "not a state", object()):
        decision = decider.decide(snap(25, 25), DecisionState(foreign, GuardState()))
        assert decision.recommended == 3
        assert isinstance(decision.state.policy, ConcurrencyState)


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"panic_threshold": 1}, id="threshold-1"),
        pytest.param({"panic_threshold": 0.5}, id="threshold-0.5"),
        pytest.param({"target_per_replica": 0}, id="target-0"),
        pytest.param({"panik": 3}, id="unknown-key"),
    ],
)
def test_bad_params(params: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        validate_params(SPEC.params_type, params)


def test_spec_builds_the_policy() -> None:
    built = SPEC.build(ConcurrencyParams(target_per_replica=4))
    assert SPEC.name == "concurrency"
    assert isinstance(built, ConcurrencyPolicy)
    assert built.recommend(snap(9, 9), built.initial_state()).replicas == 3


def backlog_snap(
    in_flight_mean: float, queue: float, service_s: float | None, *, ready: int = 3
) -> Snapshot:
    """A snapshot where the windows also carry the in-flight-only means and a service time:
    the windowed load counts the queue in full, as Knative would."""
    return Snapshot(
        now=T0,
        deployment="ns/model",
        settings=TEN,
        current_replicas=ready,
        ready_replicas=ready,
        in_flight=round(in_flight_mean),
        queue_length=queue,
        stable_load=in_flight_mean + queue,
        panic_load=in_flight_mean + queue,
        history_s=3600.0,
        idle_s=0.0,
        stable_in_flight=in_flight_mean,
        panic_in_flight=in_flight_mean,
        service_s=service_s,
    )


# (params, in-flight mean, queue, service seconds, expected replicas)
BACKLOG = [
    # 300 queued x 1 s / 60 s = 5 more concurrency: 30 + 5 -> 4 replicas, not ceil(330/10)
    pytest.param({}, 30, 300, 1.0, 4, id="backlog-drains-within-cold-start"),
    # the same backlog of 10 s requests needs 50 more: 30 + 50 -> 8
    pytest.param({}, 30, 300, 10.0, 8, id="slow-requests-need-replicas"),
    # a longer cold start makes new replicas less useful for the same backlog: 30 + 10 -> 4
    pytest.param({"expected_cold_start_s": 300}, 30, 300, 10.0, 4, id="long-horizon"),
    pytest.param({}, 30, 0, 1.0, 3, id="no-backlog"),
    # no service time measured yet: count the backlog in full (Knative's behaviour)
    pytest.param({}, 30, 300, None, 33, id="unmeasured-counts-in-full"),
    pytest.param({"expected_cold_start_s": None}, 30, 300, 1.0, 33, id="disabled-counts-in-full"),
]


@pytest.mark.parametrize(("params", "in_flight_mean", "queue", "service_s", "want"), BACKLOG)
def test_backlog_counts_as_concurrency_that_clears_it_within_a_cold_start(
    params: dict[str, float | None],
    in_flight_mean: float,
    queue: float,
    service_s: float | None,
    want: int,
) -> None:
    chosen = ConcurrencyPolicy(validate_params(ConcurrencyParams, params))
    got = chosen.recommend(backlog_snap(in_flight_mean, queue, service_s), chosen.initial_state())
    assert got.replicas == want
    if queue and service_s is not None and params.get("expected_cold_start_s", 60) is not None:
        assert "backlog" in got.describe()


def ramp_snapshot(
    started_per_s: int, finished_per_s: int, initial: int, current: int
) -> tuple[Snapshot, LoadTracker]:
    """A real tracker fed one minute of requests (none finishes unless told), read at exactly
    ``window_s``: the moment the warm-up guardrail first allows a scale-down."""
    tracker = LoadTracker(TEN, T0)
    live = list(range(initial))
    for request in live:
        tracker.request_started(T0, request)
    next_id = initial
    for second in range(int(TEN.window_s)):
        for _ in range(started_per_s):
            tracker.request_started(T0 + second, next_id)
            live.append(next_id)
            next_id += 1
        for _ in range(min(finished_per_s, len(live))):
            tracker.request_finished(T0 + second, live.pop())
    return tracker.snapshot(T0 + TEN.window_s, "ns/model", current, current), tracker


# (requests started / finished per second, in flight at T0, replicas, expected after guardrails)
RAMP = [
    # in flight 0 -> 60: stable mean 31 (4 replicas) lags the panic window's 58 (6)
    pytest.param(1, 0, 0, 8, 6, id="ramp-down-only-to-panic-demand"),
    pytest.param(1, 0, 0, 5, 5, id="ramp-keeps-fewer-than-panic-demand"),
    # 0 -> 120: stable 62 (7), panic 116 (12 < 2 x 8 asked for, so calm): hold all 8
    pytest.param(2, 0, 0, 8, 8, id="steep-ramp-holds"),
    # controls: a flat or falling load still releases replicas at the end of warm-up
    pytest.param(0, 0, 30, 8, 3, id="flat-scales-down"),
    pytest.param(0, 1, 60, 8, 3, id="falling-scales-down"),
]


@pytest.mark.parametrize(("started", "finished", "initial", "current", "want"), RAMP)
def test_no_scale_down_into_a_ramp_when_warm_up_lifts(
    started: int, finished: int, initial: int, current: int, want: int
) -> None:
    snapshot, _ = ramp_snapshot(started, finished, initial, current)
    assert snapshot.history_s == TEN.window_s  # the guardrail no longer holds the replicas
    decider = Decider(policy(), "concurrency")
    decision = decider.decide(snapshot, decider.initial_state())
    assert decision.replicas == want
    assert not any("warming up" in note for note in decision.notes)


# Parallelism 10 at 0.7: 7 per replica, 10 at most at once.
SEVEN = Settings(parallelism=10, target_utilization=0.7, window_s=60, panic_window_s=6)

# (params, snapshot, expected replicas)
TOLERANCE = [
    # 30 / (4 x 7) = 1.07: within 10%, keep 4 rather than ceil(30 / 7) = 5
    pytest.param({}, snap(30, 30, ready=4, s=SEVEN), 4, id="above-target-within-band"),
    pytest.param({}, snap(30.8, 30.8, ready=4, s=SEVEN), 4, id="upper-edge-inclusive"),
    pytest.param({}, snap(31, 31, ready=4, s=SEVEN), 5, id="above-band"),
    # 185 / 200 = 0.925: keep 20 rather than ceil(18.5) = 19
    pytest.param({}, snap(185, 185, ready=20), 20, id="below-target-within-band"),
    pytest.param({}, snap(175, 175, ready=20), 18, id="below-band"),
    # in the band on the stable load, but 41 in flight > 4 x 10 slots: the replicas cannot
    # even hold the panic window's load, so size for the stable load: ceil(30 / 7) = 5
    pytest.param({}, snap(30, 41, ready=4, s=SEVEN), 5, id="hard-capacity-wins"),
    pytest.param({}, snap(30, 40, ready=4, s=SEVEN), 4, id="at-hard-capacity-keeps"),
    pytest.param({"tolerance": 0}, snap(30, 30, ready=4, s=SEVEN), 5, id="tolerance-0"),
    pytest.param({"tolerance": 0.2}, snap(33, 33, ready=4, s=SEVEN), 4, id="tolerance-0.2"),
    # no band around zero replicas, nor in panic (4 >= 2 x 2: the panic window decides)
    pytest.param({}, snap(5, 5, ready=0, current=0, s=SEVEN), 1, id="from-zero"),
    pytest.param({}, snap(21, 40, ready=2), 4, id="panic-ignores-band"),
]


@pytest.mark.parametrize(("params", "snapshot", "want"), TOLERANCE)
def test_tolerance_band(params: dict[str, float], snapshot: Snapshot, want: int) -> None:
    p = policy(**params)
    assert p.recommend(snapshot, p.initial_state()).replicas == want


@pytest.mark.parametrize(
    ("loads", "want"),
    [
        # a stable load wobbling across the 4-replica boundary (28) and the band's edges
        pytest.param([27.5, 28.5, 27.9, 29.0, 27.0, 30.0], [4] * 6, id="on-boundary-holds"),
        pytest.param([27.5, 32.0, 27.5], [4, 5, 4], id="real-change-still-moves"),
    ],
)
def test_a_load_on_a_rounding_boundary_does_not_flap(loads: list[float], want: list[int]) -> None:
    p = policy()
    state, current, got = p.initial_state(), 4, []
    for at, load in enumerate(loads):
        result = p.recommend(snap(load, load, ready=current, now=T0 + at, s=SEVEN), state)
        state, current = result.state, result.replicas
        got.append(current)
    assert got == want
