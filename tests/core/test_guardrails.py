"""The framework guardrails: property tests over random settings and decision sequences,
then concrete cases.

The delay oracle keeps every bounded recommendation as an ``(at, value)`` event (plus the
seed ``(first now, current)`` after a (re)start, in effect until the first decision) and
takes an event as "in the window of ``d`` seconds" while it was still in effect after
``now - d``: a value leaves the window exactly ``d`` seconds after it was superseded. The
seed is superseded at the first decision, so it counts for ``now - first < d``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.config.models import DeploymentSettings, ScheduleRule
from autoscaler.core.guardrails import (
    STORE_DOWN_NOTE,
    Guarded,
    GuardState,
    apply_guardrails,
    bounds,
)
from autoscaler.core.schedule import active_at
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=ZoneInfo("UTC")).timestamp()  # a Monday

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun", "weekdays", "weekends", "daily"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


# --- helpers -----------------------------------------------------------------------------


def snap(
    s: Settings,
    *,
    now: float = T0,
    current: int = 1,
    ready: int | None = None,
    in_flight: int = 0,
    queue: float = 0.0,
    history_s: float = 3600.0,
    idle_s: float | None = None,
) -> Snapshot:
    has_work = in_flight > 0 or queue > 0
    return Snapshot(
        now=now,
        deployment="ns/model",
        settings=s,
        current_replicas=current,
        ready_replicas=current if ready is None else ready,
        in_flight=in_flight,
        queue_length=queue,
        stable_load=float(in_flight) + queue,
        panic_load=float(in_flight) + queue,
        history_s=history_s,
        idle_s=(0.0 if has_work else 3600.0) if idle_s is None else idle_s,
    )


def window_values(events: list[tuple[float, int]], now: float, d: float) -> list[int]:
    cutoff = now - d
    out = []
    for i, (_, value) in enumerate(events):
        ends = events[i + 1][0] if i + 1 < len(events) else math.inf
        if ends > cutoff:
            out.append(value)
    return out


# --- strategies --------------------------------------------------------------------------


@st.composite
def hhmm(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 20)) == 0:
        return "24:00"
    return f"{draw(st.integers(0, 23)):02d}:{draw(st.sampled_from([0, 1, 15, 30, 59])):02d}"


@st.composite
def schedule_rule(draw: st.DrawFn, low: int, high: int) -> ScheduleRule:
    start = draw(hhmm())
    end = draw(hhmm().filter(lambda e: e != start))
    rule_min = draw(st.none() | st.integers(0, high))
    floor = max(1, low, rule_min or 0)
    rule_max = draw(st.none() | st.integers(floor, high + 5))
    if rule_min is None and rule_max is None:
        rule_min = draw(st.integers(0, high))
    return ScheduleRule(
        days=tuple(draw(st.lists(st.sampled_from(DAYS), min_size=1, max_size=3))),
        start=start,
        end=end,
        timezone=draw(st.sampled_from(ZONES)),
        min_replicas=rule_min,
        max_replicas=rule_max,
    )


rates = st.none() | st.sampled_from([1.1, 1.5, 2.0, 3.7, 10.0])
delays = st.sampled_from([0.0, 0.0, 1.0, 30.0, 60.0, 150.0, 300.0, 3600.0]) | st.floats(0, 900)
intervals = st.sampled_from([0.0, 0.0, 0.0, 10.0, 20.0, 60.0]) | st.floats(0, 300)


@st.composite
def deployment_settings(draw: st.DrawFn) -> Settings:
    low = draw(st.integers(0, 5))
    high = draw(st.integers(max(1, low), 20))
    window = float(draw(st.sampled_from([1, 6, 60, 120, 600])))
    # Validated by the file model, as the loader does, then handed to the core.
    return DeploymentSettings(
        min_replicas=low,
        max_replicas=high,
        window_s=window,
        panic_window_s=min(6.0, window),
        scale_up_delay_s=draw(delays),
        scale_down_delay_s=draw(delays),
        scale_up_interval_s=draw(intervals),
        scale_down_interval_s=draw(intervals),
        scale_to_zero_grace_s=draw(st.sampled_from([0.0, 30.0, 300.0]) | st.floats(0, 600)),
        max_scale_up_rate=draw(rates),
        max_scale_down_rate=draw(rates),
        schedule=tuple(draw(st.lists(schedule_rule(low, high), max_size=3))),
    ).core()


@dataclass(frozen=True)
class Step:
    dt: float
    recommended: int
    ready_fraction: float
    in_flight: int
    queue: float
    idle_s: float
    restart: bool
    persisted: bool


steps = st.builds(
    Step,
    dt=st.integers(1, 30) | st.integers(31, 900) | st.integers(901, 6 * 3600),
    recommended=st.integers(0, 30),
    ready_fraction=st.sampled_from([0.0, 0.5, 1.0, 1.0]) | st.floats(0, 1),
    in_flight=st.just(0) | st.integers(1, 40),
    queue=st.just(0.0) | st.floats(0.01, 80),
    idle_s=st.floats(0, 900),
    restart=st.integers(0, 15).map(lambda n: n == 0),
    persisted=st.integers(0, 7).map(lambda n: n != 0),
)


@dataclass(frozen=True)
class Decision:
    snapshot: Snapshot
    recommended: int
    state_before: GuardState
    result: Guarded
    up_window: list[int]
    """Bounded recommendations in the scale-up delay window (oracle)."""
    down_window: list[int]


def run(s: Settings, first_current: int, first_history_s: float, seq: list[Step]) -> list[Decision]:
    """Drives ``apply_guardrails`` through ``seq``, feeding each result back as current."""
    now, current, started = T0, first_current, T0 - first_history_s
    state = GuardState()
    events: list[tuple[float, int]] = []
    out = []
    for step in seq:
        now += step.dt
        if step.restart:
            state, events, started = GuardState(), [], now
        has_work = step.in_flight > 0 or step.queue > 0
        snapshot = Snapshot(
            now=now,
            deployment="ns/model",
            settings=s,
            current_replicas=current,
            ready_replicas=math.floor(step.ready_fraction * current),
            in_flight=step.in_flight,
            queue_length=step.queue,
            stable_load=step.in_flight + step.queue,
            panic_load=step.in_flight + step.queue,
            history_s=now - started,
            idle_s=0.0 if has_work else step.idle_s,
            state_persisted=step.persisted,
        )
        low, high = bounds(s, now)
        if not events:
            events.append((now, current))
        events.append((now, min(max(step.recommended, low), high)))
        result = apply_guardrails(snapshot, step.recommended, state)
        out.append(
            Decision(
                snapshot,
                step.recommended,
                state,
                result,
                window_values(events, now, s.scale_up_delay_s),
                window_values(events, now, s.scale_down_delay_s),
            )
        )
        state, current = result.state, result.replicas
    return out


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
scenarios = st.tuples(
    deployment_settings(),
    st.integers(0, 25),
    st.sampled_from([0.0, 3600.0]) | st.floats(0, 700),
    st.lists(steps, min_size=1, max_size=25),
)


# --- properties --------------------------------------------------------------------------


@PROPERTY
@given(scenarios)
def test_every_rule_holds_over_decision_sequences(
    scenario: tuple[Settings, int, float, list[Step]],
) -> None:
    s, first_current, first_history_s, seq = scenario
    decisions = run(s, first_current, first_history_s, seq)
    for d in decisions:
        snapshot, final = d.snapshot, d.result.replicas
        current, ready = snapshot.current_replicas, snapshot.ready_replicas
        low, high = bounds(s, snapshot.now)
        context = (snapshot.now, current, d.recommended, final, d.result.notes)

        # (1) bounds, with the schedule applied
        assert low <= final <= high, context
        # (2) never zero with work in flight or queued
        if snapshot.has_work:
            assert final >= 1, context
        # (3) never 1 -> 0 inside the grace period
        if current > 0 and snapshot.idle_s < s.scale_to_zero_grace_s:
            assert final >= 1, context
        # (4) rate limits (bounds win; the 0 -> 1 activation is within any rate, >= 2)
        if s.max_scale_up_rate is not None:
            ceiling = math.ceil(s.max_scale_up_rate * max(1, ready))
            assert final <= max(current, ceiling, low), context
        if s.max_scale_down_rate is not None:
            floor = math.floor(current / s.max_scale_down_rate)
            assert final >= min(current, floor, high), context
        # (5) delays: a scale-down only to at least the largest bounded recommendation of
        # the window (or as far as the bounds' maximum forces), a scale-up only to at most
        # the smallest (or as far as the minimum or the activation force)
        if final < current and s.scale_down_delay_s > 0:
            assert final >= min(high, max(d.down_window)), (context, d.down_window)
        if final > current and s.scale_up_delay_s > 0:
            activation = current == 0 and final == 1 and snapshot.has_work
            assert activation or final <= max(low, min(d.up_window)), (context, d.up_window)
        # (6) intervals: no second step the same way within its interval, unless the bounds
        # or the activation force it
        last_up, last_down = d.state_before.last_scale_up_ts, d.state_before.last_scale_down_ts
        if (
            final > current
            and last_up is not None
            and snapshot.now - last_up < s.scale_up_interval_s
        ):
            activation = current == 0 and final == 1 and snapshot.has_work
            assert activation or final <= max(low, current), context
        if (
            final < current
            and last_down is not None
            and snapshot.now - last_down < s.scale_down_interval_s
        ):
            assert final >= min(high, current), context
        # (7) no scale-down while the state cannot be persisted, unless the bounds force it
        if not snapshot.state_persisted:
            assert final >= min(current, high), context
        # (8) warm-up: no scale-down before a full window of history, unless bounds force it
        if snapshot.history_s < s.window_s:
            assert final >= min(current, high), context
        # every change from the policy's number is explained
        if final != d.recommended:
            assert d.result.notes, context
        assert d.result.state.last_scale_up_ts == (
            snapshot.now if final > current else d.state_before.last_scale_up_ts
        )
        assert d.result.state.last_scale_down_ts == (
            snapshot.now if final < current else d.state_before.last_scale_down_ts
        )
        # (9) determinism: the same inputs give the same replicas, state and notes
        assert apply_guardrails(snapshot, d.recommended, d.state_before) == d.result
    again = run(s, first_current, first_history_s, seq)
    assert [d.result for d in again] == [d.result for d in decisions]


@PROPERTY
@given(scenarios)
def test_delays_are_exact_when_nothing_else_interferes(
    scenario: tuple[Settings, int, float, list[Step]],
) -> None:
    """Without rate limits, after warm-up and away from zero, the result is exactly the
    stabilized recommendation: min over the up window for a scale-up, max over the down
    window for a scale-down (never past current), then bounds."""
    s, first_current, first_history_s, seq = scenario
    s = replace(
        s,
        max_scale_up_rate=None,
        max_scale_down_rate=None,
        scale_up_interval_s=0.0,
        scale_down_interval_s=0.0,
    )
    for d in run(s, first_current, first_history_s, seq):
        snapshot, current = d.snapshot, d.snapshot.current_replicas
        if snapshot.history_s < s.window_s or not snapshot.state_persisted:
            continue
        low, high = bounds(s, snapshot.now)
        bounded = min(max(d.recommended, low), high)
        if bounded > current and s.scale_up_delay_s > 0:
            want = max(current, min(d.up_window))
        elif bounded < current and s.scale_down_delay_s > 0:
            want = min(current, max(d.down_window))
        else:
            want = bounded
        if want == 0 and (
            snapshot.has_work or (current > 0 and snapshot.idle_s < s.scale_to_zero_grace_s)
        ):
            continue
        assert d.result.replicas == min(max(want, low), high), (
            snapshot.now,
            current,
            d.recommended,
            d.up_window,
            d.down_window,
            d.result.notes,
        )


@settings(max_examples=100, deadline=None)
@given(deployment_settings(), st.integers(0, 30 * 24 * 3600))
def test_bounds_narrow_by_active_rules(s: Settings, offset: int) -> None:
    now = T0 + offset
    low, high = bounds(s, now)
    active = [r for r in s.schedule if active_at(r.window, now)]
    want_low = max(
        [s.min_replicas] + [r.min_replicas for r in active if r.min_replicas is not None]
    )
    want_high = min(
        [s.max_replicas] + [r.max_replicas for r in active if r.max_replicas is not None]
    )
    assert (low, high) == (want_low, max(want_low, want_high))


# --- concrete cases ----------------------------------------------------------------------


def cfg(**kw: object) -> Settings:
    return DeploymentSettings.model_validate(kw).core()


SINGLE = [
    pytest.param(cfg(min_replicas=0), dict(current=0, in_flight=1), 0, 1, id="activation-0-to-1"),
    pytest.param(
        cfg(min_replicas=0, scale_up_delay_s=300, max_scale_up_rate=1.5),
        dict(current=0, ready=0, queue=4),
        8,
        1,
        id="activation-bypasses-delay",
    ),
    pytest.param(cfg(min_replicas=0), dict(current=0), 0, 0, id="idle-at-zero-stays"),
    pytest.param(cfg(min_replicas=0), dict(current=0), 3, 3, id="zero-to-three-no-work"),
    pytest.param(
        cfg(min_replicas=0, scale_to_zero_grace_s=30), dict(idle_s=10), 0, 1, id="grace-holds-1"
    ),
    pytest.param(
        cfg(min_replicas=0, scale_to_zero_grace_s=30),
        dict(idle_s=29.9),
        0,
        1,
        id="grace-holds-1-just-before",
    ),
    pytest.param(
        cfg(min_replicas=0, scale_to_zero_grace_s=30), dict(idle_s=30), 0, 0, id="grace-over"
    ),
    pytest.param(
        cfg(min_replicas=0, scale_to_zero_grace_s=0),
        dict(current=3, in_flight=1),
        0,
        1,
        id="in-flight-keeps-1",
    ),
    pytest.param(
        cfg(min_replicas=0, scale_to_zero_grace_s=0),
        dict(current=3, queue=0.5),
        0,
        1,
        id="queued-keeps-1",
    ),
    pytest.param(cfg(min_replicas=2), dict(current=2), 0, 2, id="min-replicas"),
    pytest.param(cfg(max_replicas=4), dict(current=2), 9, 4, id="max-replicas"),
    pytest.param(cfg(max_scale_up_rate=2), dict(current=4, ready=3), 20, 6, id="up-rate-ceil-2x3"),
    pytest.param(
        cfg(max_scale_up_rate=1.1), dict(current=2, ready=2), 5, 3, id="up-rate-ceil-1.1x2"
    ),
    pytest.param(
        cfg(max_scale_up_rate=2), dict(current=4, ready=0), 20, 4, id="up-rate-no-ready-holds"
    ),
    pytest.param(cfg(max_scale_down_rate=2), dict(current=9), 1, 4, id="down-rate-floor-9/2"),
    pytest.param(
        cfg(max_replicas=4, max_scale_down_rate=2),
        dict(current=20),
        4,
        4,
        id="bounds-beat-down-rate",
    ),
    pytest.param(
        cfg(min_replicas=6, max_scale_up_rate=2), dict(current=1), 1, 6, id="bounds-beat-up-rate"
    ),
    pytest.param(
        cfg(min_replicas=5, scale_up_delay_s=600), dict(current=1), 1, 5, id="bounds-beat-up-delay"
    ),
    pytest.param(
        cfg(max_replicas=3, scale_down_delay_s=600),
        dict(current=8),
        8,
        3,
        id="bounds-beat-down-delay",
    ),
    pytest.param(cfg(window_s=60), dict(current=5, history_s=30), 1, 5, id="warm-up-holds"),
    pytest.param(cfg(window_s=60), dict(current=5, history_s=60), 1, 1, id="warmed-up"),
    pytest.param(
        cfg(window_s=60), dict(current=2, history_s=0), 7, 7, id="warm-up-allows-scale-up"
    ),
    pytest.param(cfg(max_replicas=3), dict(current=8, history_s=0), 8, 3, id="bounds-beat-warm-up"),
    pytest.param(cfg(scale_up_delay_s=60), dict(current=2), 7, 2, id="first-decision-seeded-up"),
    pytest.param(
        cfg(scale_down_delay_s=60), dict(current=7), 2, 7, id="first-decision-seeded-down"
    ),
]


@pytest.mark.parametrize(("s", "inputs", "recommended", "want"), SINGLE)
def test_single_decision(
    s: Settings, inputs: dict[str, float], recommended: int, want: int
) -> None:
    result = apply_guardrails(snap(s, **inputs), recommended, GuardState())  # type: ignore[arg-type]
    assert result.replicas == want
    if want != recommended:
        assert result.notes


@pytest.mark.parametrize(
    ("s", "inputs", "recommended", "settled"),
    [
        pytest.param(cfg(), dict(current=3), 3, True, id="unchanged"),
        pytest.param(cfg(min_replicas=2), dict(current=2), 0, True, id="bounds-only"),
        pytest.param(cfg(max_replicas=4), dict(current=4), 9, True, id="ceiling-only"),
        pytest.param(
            cfg(min_replicas=0, scale_to_zero_grace_s=30), dict(idle_s=10), 0, False, id="grace"
        ),
        pytest.param(cfg(), dict(current=3, history_s=5), 1, False, id="warm-up"),
        pytest.param(cfg(scale_down_delay_s=60), dict(current=5), 2, False, id="down-delay"),
        pytest.param(
            cfg(max_scale_up_rate=2), dict(current=2, in_flight=9), 9, False, id="rate-limit"
        ),
        pytest.param(cfg(min_replicas=0), dict(current=0, in_flight=1), 0, False, id="activation"),
    ],
)
def test_settled_says_whether_only_the_bounds_changed_the_number(
    s: Settings, inputs: dict[str, float], recommended: int, settled: bool
) -> None:
    result = apply_guardrails(snap(s, **inputs), recommended, GuardState())  # type: ignore[arg-type]
    assert result.settled is settled, result.notes


# (seconds after T0, recommendation, expected result); current follows the results
SEQUENCES = [
    pytest.param(
        cfg(scale_down_delay_s=60),
        5,
        [(0, 5, 5), (30, 2, 5), (60, 2, 5), (89, 2, 5), (90, 2, 2)],
        id="down-delay-60-counts-from-last-wanted",
    ),
    pytest.param(
        cfg(scale_down_delay_s=60),
        5,
        [(0, 2, 5), (30, 3, 5), (59, 3, 5), (60, 3, 3), (100, 1, 3), (120, 1, 3), (160, 1, 1)],
        id="down-delay-steps-to-window-max",
    ),
    pytest.param(
        cfg(scale_up_delay_s=30),
        1,
        [(0, 5, 1), (10, 5, 1), (29, 5, 1), (30, 5, 5)],
        id="up-delay-30-from-seed",
    ),
    pytest.param(
        cfg(scale_up_delay_s=30, scale_down_delay_s=600),
        1,
        [(0, 5, 1), (10, 5, 1), (29, 5, 1), (30, 5, 5)],
        id="up-delay-boundary-independent-of-down-delay",
    ),
    pytest.param(
        cfg(scale_up_delay_s=30),
        1,
        [(0, 1, 1), (10, 6, 1), (20, 4, 1), (39, 6, 1), (40, 6, 4), (68, 6, 4), (69, 6, 6)],
        id="up-delay-takes-window-min",
    ),
    pytest.param(
        cfg(scale_up_delay_s=30, scale_down_delay_s=30),
        4,
        [(0, 8, 4), (10, 1, 4), (20, 8, 4), (41, 8, 4), (51, 8, 8)],
        id="both-delays-flapping-holds",
    ),
    pytest.param(
        cfg(min_replicas=0, scale_to_zero_grace_s=30),
        1,
        [(0, 0, 1), (20, 0, 1), (40, 0, 0)],
        id="grace-then-zero",
    ),
    pytest.param(
        cfg(scale_up_interval_s=20),
        1,
        [(0, 2, 2), (5, 3, 2), (19, 5, 2), (20, 6, 6), (25, 9, 6), (40, 9, 9)],
        id="up-interval-holds-then-takes-the-whole-step",
    ),
    pytest.param(
        cfg(scale_up_interval_s=20),
        4,
        [(0, 6, 6), (5, 2, 2), (10, 8, 2), (20, 8, 8)],
        id="up-interval-does-not-hold-a-scale-down",
    ),
    pytest.param(
        cfg(scale_down_interval_s=60),
        10,
        [(0, 9, 9), (10, 8, 9), (59, 5, 9), (60, 4, 4), (70, 10, 10), (80, 3, 10), (120, 3, 3)],
        id="down-interval-holds-only-scale-downs",
    ),
    pytest.param(
        cfg(min_replicas=2, scale_down_interval_s=60),
        5,
        [(0, 4, 4), (10, 3, 4), (20, 2, 4), (60, 1, 2)],
        id="down-interval-then-bounds",
    ),
    pytest.param(
        cfg(max_replicas=40, max_scale_up_rate=2),
        1,
        [(0, 20, 2), (10, 20, 4), (20, 20, 8), (30, 20, 16), (40, 20, 20)],
        id="up-rate-doubles-each-decision",
    ),
]


@pytest.mark.parametrize(("s", "start", "steps"), SEQUENCES)
def test_sequence(s: Settings, start: int, steps: list[tuple[int, int, int]]) -> None:
    current, state = start, GuardState()
    idle_since = T0
    got = []
    for at, recommended, _ in steps:
        snapshot = snap(s, now=T0 + at, current=current, idle_s=T0 + at - idle_since)
        result = apply_guardrails(snapshot, recommended, state)
        current, state = result.replicas, result.state
        got.append(current)
    assert got == [want for _, _, want in steps]


NEW_YORK = ZoneInfo("America/New_York")
OVERNIGHT = cfg(
    min_replicas=1,
    max_replicas=10,
    schedule=[
        {
            "days": "weekdays",
            "start": "22:00",
            "end": "06:00",
            "timezone": "America/New_York",
            "min_replicas": 3,
            "max_replicas": 4,
        }
    ],
)


def ny(day: int, hour: int, minute: int = 0) -> float:
    """Unix time of 2026-11-<day> hour:minute in New York (23 Nov 2026 is a Monday)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=NEW_YORK).timestamp()


@pytest.mark.parametrize(
    ("now", "want_bounds"),
    [
        pytest.param(ny(23, 21, 59), (1, 10), id="mon-21:59-before"),
        pytest.param(ny(23, 22, 0), (3, 4), id="mon-22:00-starts"),
        pytest.param(ny(24, 5, 59), (3, 4), id="tue-05:59-mondays-night"),
        pytest.param(ny(24, 6, 0), (1, 10), id="tue-06:00-ends"),
        pytest.param(ny(23, 2, 0), (1, 10), id="mon-02:00-is-sundays-night"),
        pytest.param(ny(27, 23, 0), (3, 4), id="fri-23:00"),
        pytest.param(ny(28, 2, 0), (3, 4), id="sat-02:00-is-fridays-night"),
        pytest.param(ny(28, 23, 0), (1, 10), id="sat-23:00-weekend"),
        # 23:00 UTC on Monday is 18:00 in New York: the zone is honoured
        pytest.param(
            datetime(2026, 11, 24, 3, 30, tzinfo=ZoneInfo("UTC")).timestamp(),
            (3, 4),
            id="tue-03:30-utc-is-mon-22:30-ny",
        ),
    ],
)
def test_overnight_schedule(now: float, want_bounds: tuple[int, int]) -> None:
    assert bounds(OVERNIGHT, now) == want_bounds
    low, high = want_bounds
    assert apply_guardrails(snap(OVERNIGHT, now=now, current=2), 1, GuardState()).replicas == max(
        low, 1
    )
    assert apply_guardrails(snap(OVERNIGHT, now=now, current=2), 9, GuardState()).replicas == min(
        high, 9
    )


def test_conflicting_rules_floor_wins() -> None:
    s = cfg(
        max_replicas=10,
        schedule=[
            {"start": "00:00", "end": "24:00", "min_replicas": 6},
            {"start": "00:00", "end": "24:00", "max_replicas": 2},
        ],
    )
    assert bounds(s, T0) == (6, 6)
    assert apply_guardrails(snap(s, current=1), 1, GuardState()).replicas == 6


def test_no_scale_down_while_the_state_cannot_be_persisted() -> None:
    s = cfg(max_replicas=10)
    down = snap(s, current=6)
    held = apply_guardrails(replace(down, state_persisted=False), 2, GuardState())
    assert held.replicas == 6
    assert held.notes == (STORE_DOWN_NOTE,)
    assert held.state.last_scale_down_ts is None  # no scale-down happened
    # scaling up stays allowed, and so does a scale-down the bounds force
    assert apply_guardrails(replace(down, state_persisted=False), 9, GuardState()).replicas == 9
    lowered = snap(cfg(max_replicas=4), current=6)
    assert apply_guardrails(replace(lowered, state_persisted=False), 2, GuardState()).replicas == 4
    # with the state persisted the same scale-down goes ahead
    assert apply_guardrails(down, 2, GuardState()).replicas == 2
