"""The ``hpa`` policy, checked against the test cases of the Go original.

Rows come from kubernetes ``pkg/controller/podautoscaler/horizontal_test.go`` and
``replica_calculator_test.go`` (autoscaling/v2 era) with their original inputs and
expected outputs; each table or row names the Go test it comes from. Go builds timestamps
with ``time.Now().Add(-d)``; here they are ``NOW - d``. Rows marked ``(added)`` are not in
the Go tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import pytest
from pydantic import ValidationError

from autoscaler.config.params import validate_params
from autoscaler.core.policies.hpa import (
    SPEC,
    HpaBehavior,
    HpaParams,
    HpaPolicy,
    HpaState,
    ScaleDownRules,
    ScaleEvent,
    ScaleUpRules,
    ScalingPolicy,
    ScalingRules,
    TimestampedRecommendation,
    convert_desired_replicas_with_behavior_rate,
    normalize_desired_replicas_with_behavior,
    plain_metric_replicas,
    replicas_change_per_period,
    scale_down_limit,
    scale_up_limit,
    stabilize_recommendation,
    store_scale_event,
    uniform_metric_replicas,
)
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot

NOW = 1_700_000_000.0
TOLERANCE = 0.1  # defaultTestingTolerance


def go_rules(
    pods: int, pods_period: int, percent: int, percent_period: int, window: int
) -> ScalingRules:
    """Go ``generateScalingRules``: a Pods policy (if pods != 0) then a Percent policy (if
    percent != 0), select policy Max."""
    policies: list[ScalingPolicy] = []
    if pods:
        policies.append(ScalingPolicy(type="Pods", value=pods, period_s=pods_period))
    if percent:
        policies.append(ScalingPolicy(type="Percent", value=percent, period_s=percent_period))
    return ScalingRules(
        stabilization_window_s=window, select_policy="Max", policies=tuple(policies)
    )


def uniform_events(raw: list[int], period_s: int) -> tuple[ScaleEvent, ...]:
    """Go ``generateEventsUniformDistribution``: split the last ``period_s`` seconds into one
    segment per event and put each event in the middle of its segment, oldest first."""
    segment = period_s / len(raw)
    return tuple(
        ScaleEvent(change, NOW - (period_s - segment * (index + 1) + segment / 2))
        for index, change in enumerate(raw)
    )


def recs(*pairs: tuple[int, float]) -> tuple[TimestampedRecommendation, ...]:
    """(replicas, age in seconds) pairs as a recommendation log."""
    return tuple(TimestampedRecommendation(replicas, NOW - age) for replicas, age in pairs)


# --------------------------------------------------------------------------- rate limits

Select = Literal["Max", "Min", "Disabled"]
MIN_RULES = (
    ScalingPolicy(type="Pods", value=2, period_s=60),
    ScalingPolicy(type="Percent", value=50, period_s=60),
)


@pytest.mark.parametrize(
    ("current", "select", "expected"),
    [
        # TestCalculateScaleUpLimitWithScalingRules: min(1 + 2, ceil(1 x 1.5)) = 2
        (1, "Min", 2),
        # (added) the same rules with Max: max(3, 2) = 3
        (1, "Max", 3),
        # (added) Disabled never allows more than the current count
        (1, "Disabled", 1),
        # (added) Max at 10 pods: max(12, 15) = 15
        (10, "Max", 15),
    ],
)
def test_scale_up_limit_with_scaling_rules(current: int, select: Select, expected: int) -> None:
    rules = ScalingRules(stabilization_window_s=300, select_policy=select, policies=MIN_RULES)
    assert scale_up_limit(current, (), (), rules, NOW) == expected


@pytest.mark.parametrize(
    ("current", "select", "expected"),
    [
        # TestCalculateScaleDownLimitWithBehaviors: max(5 - 2, int(5 x 0.5)) = 3
        (5, "Min", 3),
        # (added) the same rules with Max: min(3, 2) = 2
        (5, "Max", 2),
        # (added) Disabled never allows fewer than the current count
        (5, "Disabled", 5),
    ],
)
def test_scale_down_limit_with_behaviors(current: int, select: Select, expected: int) -> None:
    rules = ScalingRules(stabilization_window_s=300, select_policy=select, policies=MIN_RULES)
    assert scale_down_limit(current, (), (), rules, NOW) == expected


@dataclass(frozen=True)
class RateCase:
    """A TestScalingWithRules row. ``None`` rules are the Kubernetes defaults (Go
    ``GenerateHPAScale{Up,Down}Rules(nil)``); min/max default to the common 1/1000."""

    name: str
    current: int
    desired: int
    """Prenormalized desired replicas."""
    expected: int
    condition: str
    min_replicas: int = 1
    max_replicas: int = 1000
    up_rules: ScalingRules | None = None
    down_rules: ScalingRules | None = None
    up_events: tuple[ScaleEvent, ...] = ()
    down_events: tuple[ScaleEvent, ...] = ()


_E3 = [1, 5, 9]
_E4 = [8, 12, 9, 11]
# TestScalingWithRules (convertDesiredReplicasWithBehaviorRate), every row in Go order.
# fmt: off
SCALING_WITH_RULES = [
    RateCase(
        "prenormalized desired replicas within range",
        5, 7, 7, "DesiredWithinRange", min_replicas=3, max_replicas=8,
    ),
    RateCase(
        "prenormalized desired replicas < minReplicas",
        3, 1, 2, "TooFewReplicas", min_replicas=2, max_replicas=8,
    ),
    RateCase(
        "prenormalized desired replicas within range when minReplicas is 0",
        1, 0, 0, "DesiredWithinRange", min_replicas=0, max_replicas=10,
    ),
    RateCase(
        "maxReplicas is the limit because maxReplicas < scaleUpLimit",
        20, 1000, 10, "TooManyReplicas", max_replicas=10,
    ),
    RateCase(
        "desired replica count is more than the maximum replica count",
        100, 1000, 150, "TooManyReplicas", min_replicas=100, max_replicas=150,
    ),
    RateCase(
        "scaleUpLimit is the limit because scaleUpLimit < maxReplicas with user policies",
        3, 1000, 4, "ScaleUpLimit", max_replicas=2000, up_rules=go_rules(0, 0, 1, 60, 0),
    ),
    # Marked testThis in Go, which makes the Go loop skip it; it holds all the same.
    RateCase(
        "scaleDownLimit is the limit because scaleDownLimit > minReplicas with user defined "
        "policies",
        1000, 3, 980, "ScaleDownLimit", min_replicas=3, max_replicas=2000,
        down_rules=go_rules(20, 60, 0, 0, 0),
    ),
    RateCase(
        "scaleUp with default behavior",
        10, 50, 20, "ScaleUpLimit",
    ),
    RateCase(
        "scaleUp with pods policy larger than percent policy",
        10, 500, 110, "ScaleUpLimit", up_rules=go_rules(100, 60, 100, 60, 0),
    ),
    RateCase(
        "scaleUp with percent policy larger than pods policy",
        10, 500, 20, "ScaleUpLimit", up_rules=go_rules(2, 60, 100, 60, 0),
    ),
    RateCase(
        "scaleUp with spec MaxReplicas limitation with large pod policy",
        10, 50, 50, "DesiredWithinRange", up_rules=go_rules(100, 60, 0, 0, 0),
    ),
    RateCase(
        "scaleUp with spec MaxReplicas limitation with large percent policy",
        10, 50, 50, "DesiredWithinRange", up_rules=go_rules(10000, 60, 0, 0, 0),
    ),
    RateCase(
        "scaleUp with pod policy limitation",
        10, 50, 40, "ScaleUpLimit", up_rules=go_rules(30, 60, 0, 0, 0),
    ),
    RateCase(
        "scaleUp with percent policy limitation",
        10, 50, 30, "ScaleUpLimit", up_rules=go_rules(0, 0, 200, 60, 0),
    ),
    RateCase(
        "scaleDown with percent policy larger than pod policy",
        100, 2, 80, "ScaleDownLimit", down_rules=go_rules(20, 60, 1, 60, 300),
    ),
    RateCase(
        "scaleDown with pod policy larger than percent policy",
        100, 2, 98, "ScaleDownLimit", down_rules=go_rules(2, 60, 1, 60, 300),
    ),
    RateCase(
        "scaleDown with spec MinReplicas=nil limitation with large pod policy",
        10, 0, 1, "TooFewReplicas", down_rules=go_rules(100, 60, 0, 0, 300),
    ),
    RateCase(
        "scaleDown with spec MinReplicas limitation with large pod policy",
        10, 0, 1, "TooFewReplicas", down_rules=go_rules(100, 60, 0, 0, 300),
    ),
    RateCase(
        "scaleDown with spec MinReplicas limitation with large percent policy",
        10, 2, 5, "TooFewReplicas", min_replicas=5, down_rules=go_rules(0, 0, 100, 60, 300),
    ),
    RateCase(
        "scaleDown with pod policy limitation",
        10, 2, 5, "ScaleDownLimit", down_rules=go_rules(5, 60, 0, 0, 300),
    ),
    RateCase(
        "scaleDown with percent policy limitation",
        10, 5, 5, "DesiredWithinRange", down_rules=go_rules(0, 0, 50, 60, 300),
    ),
    RateCase(
        "scaleUp with spec MaxReplicas limitation with large pod policy and events",
        100, 500, 200, "TooManyReplicas", max_replicas=200, up_rules=go_rules(300, 60, 0, 0, 0),
        up_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleUp with spec MaxReplicas limitation with large percent policy and events",
        100, 500, 200, "TooManyReplicas", max_replicas=200, up_rules=go_rules(0, 0, 10000, 60, 0),
        up_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleUp with currentReplicas limitation with rate.PeriodSeconds with a lot of recent "
        "scale up events",
        100, 500, 100, "ScaleUpLimit", up_rules=go_rules(5, 120, 0, 0, 0),
        up_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleUp with pod policy and previous scale up events",
        100, 500, 235, "ScaleUpLimit", up_rules=go_rules(150, 120, 0, 0, 0),
        up_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleUp with percent policy and previous scale up events",
        100, 500, 255, "ScaleUpLimit", up_rules=go_rules(0, 0, 200, 120, 0),
        up_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleUp with percent policy and previous scale up and down events",
        6, 24, 16, "ScaleUpLimit", up_rules=go_rules(0, 0, 300, 300, 0),
        up_events=uniform_events([4], 120), down_events=uniform_events([2], 120),
    ),
    RateCase(
        "scaleDown with default policy and previous events",
        10, 5, 5, "DesiredWithinRange", down_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleDown with spec MinReplicas=nil limitation with large pod policy and previous events",
        100, 0, 1, "TooFewReplicas", down_rules=go_rules(115, 120, 0, 0, 300),
        down_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleDown with spec MinReplicas limitation with large pod policy and previous events",
        100, 0, 5, "TooFewReplicas", min_replicas=5, down_rules=go_rules(130, 120, 0, 0, 300),
        down_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleDown with spec MinReplicas limitation with large percent policy and previous events",
        100, 2, 5, "TooFewReplicas", min_replicas=5, down_rules=go_rules(0, 0, 100, 120, 300),
        down_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleDown with pod policy limitation and previous events",
        100, 2, 100, "ScaleDownLimit", down_rules=go_rules(5, 120, 0, 0, 300),
        down_events=uniform_events(_E3, 120),
    ),
    RateCase(
        "scaleDown with percent policy limitation and previous events",
        100, 0, 56, "ScaleDownLimit", down_rules=go_rules(0, 0, 50, 120, 300),
        down_events=uniform_events([2, 4, 6], 120),
    ),
    RateCase(
        "scaleDown with percent policy and previous scale up and down events",
        10, 1, 6, "ScaleDownLimit", down_rules=go_rules(0, 0, 50, 180, 0),
        up_events=uniform_events([2], 120), down_events=uniform_events([4], 120),
    ),
    RateCase(
        "scaleDown with previous events preventing further scale down",
        100, 0, 100, "ScaleDownLimit", down_rules=go_rules(0, 0, 10, 120, 300),
        down_events=uniform_events([10, 10, 10], 120),
    ),
    RateCase(
        "scaleDown with with previous events still allowing more scale down",
        10, 5, 5, "DesiredWithinRange", down_rules=go_rules(0, 0, 1000, 120, 300),
        down_events=uniform_events([10, 10, 10], 120),
    ),
    RateCase(
        "check 'outdated' flag for events for one behavior for up",
        100, 200, 200, "DesiredWithinRange", up_rules=go_rules(1000, 60, 0, 0, 0),
        up_events=uniform_events(_E4, 120),
    ),
    RateCase(
        "check that events were not marked 'outdated' for two different policies in the behavior "
        "for up",
        100, 200, 200, "DesiredWithinRange", up_rules=go_rules(1000, 120, 100, 60, 0),
        up_events=uniform_events(_E4, 120),
    ),
    RateCase(
        "check that events were marked 'outdated' for two different policies in the behavior for "
        "up",
        100, 200, 200, "DesiredWithinRange", up_rules=go_rules(1000, 30, 100, 60, 0),
        up_events=uniform_events(_E4, 120),
    ),
    RateCase(
        "check 'outdated' flag for events for one behavior for down",
        100, 5, 5, "DesiredWithinRange", down_rules=go_rules(1000, 60, 0, 0, 300),
        down_events=uniform_events(_E4, 120),
    ),
    RateCase(
        "check that events were not marked 'outdated' for two different policies in the behavior "
        "for down",
        100, 5, 5, "DesiredWithinRange", down_rules=go_rules(1000, 120, 100, 60, 300),
        down_events=uniform_events(_E4, 120),
    ),
    RateCase(
        "check that events were marked 'outdated' for two different policies in the behavior for "
        "down",
        100, 5, 5, "DesiredWithinRange", down_rules=go_rules(1000, 30, 100, 60, 300),
        down_events=uniform_events(_E4, 120),
    ),
]
# fmt: on


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in SCALING_WITH_RULES])
def test_scaling_with_rules(case: RateCase) -> None:
    replicas, reason = convert_desired_replicas_with_behavior_rate(
        case.current,
        case.desired,
        min_replicas=case.min_replicas,
        max_replicas=case.max_replicas,
        scale_up_rules=case.up_rules or ScaleUpRules(),
        scale_down_rules=case.down_rules or ScaleDownRules(),
        scale_up_events=case.up_events,
        scale_down_events=case.down_events,
        now=NOW,
    )
    assert (replicas, reason) == (case.expected, case.condition)


def test_scaling_with_rules_table_is_complete() -> None:
    assert len(SCALING_WITH_RULES) == 42


# --------------------------------------------------------------------------- scale events

# TestStoreScaleEvents, the rows with a behavior (without one, Go stores nothing; this
# policy always has one): (name, stored events as (change, age), rules, expected
# getReplicasChangePerPeriod(60) before storing, expected events as (change, outdated)).
# fmt: off
STORE_SCALE_EVENTS = [
    (
        "empty entries with two-policy-behavior",
        [], go_rules(10, 60, 100, 60, 0), 0, [(5, False)],
    ),
    (
        "one outdated entry to be replaced with behavior",
        [(7, 61)], go_rules(10, 60, 100, 60, 0), 0, [(5, False)],
    ),
    (
        "one actual entry to be not touched with behavior",
        [(7, 58)], go_rules(10, 60, 100, 60, 0), 7, [(7, False), (5, False)],
    ),
    (
        "two entries, one of them to be replaced",
        [(7, 61), (6, 59)], go_rules(10, 60, 0, 0, 0), 6, [(5, False), (6, False)],
    ),
    (
        "replace one entry, use policies with different periods",
        [(8, 29), (6, 59), (7, 61), (9, 61)], go_rules(10, 60, 100, 30, 0), 14,
        [(8, False), (6, False), (7, True), (5, False)],
    ),
    (
        "two entries, both actual",
        [(7, 58), (6, 59)], go_rules(10, 120, 100, 30, 0), 13, [(7, False), (6, False), (5, False)],
    ),
]
# fmt: on


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in STORE_SCALE_EVENTS])
def test_store_scale_events(
    case: tuple[str, list[tuple[int, float]], ScalingRules, int, list[tuple[int, bool]]],
) -> None:
    _, stored, rules, change_before, expected = case
    events = tuple(ScaleEvent(change, NOW - age) for change, age in stored)
    assert replicas_change_per_period(60, events, NOW) == change_before
    longest = max(p.period_s for p in rules.policies)
    # Go checks scale-up (10 -> 15) and scale-down (10 -> 5) alike: both store a change of 5.
    after = store_scale_event(events, 5, longest, NOW)
    assert [(e.replica_change, e.outdated) for e in after] == expected


# --------------------------------------------------------------------------- stabilization

# TestNormalizeDesiredReplicasWithBehavior: (name, log as (replicas, age), current,
# prenormalized desired, expected stabilized, expected log replicas or None (not checked in
# Go), scale-up window, scale-down window). Unset windows are 0 in the Go test struct.
# fmt: off
NORMALIZE_WITH_BEHAVIOR = [
    (
        "empty recommendations for scaling down",
        [], 100, 5, 5, [5], 0, 0,
    ),
    (
        "simple scale down stabilization",
        [(4, 120), (5, 60)], 100, 3, 5, [4, 5, 3], 0, 180,
    ),
    (
        "simple scale up stabilization",
        [(4, 120), (5, 60)], 1, 7, 4, [4, 5, 7], 300, 0,
    ),
    (
        "no scale down stabilization",
        [(1, 120), (2, 60)], 100, 3, 3, [1, 2, 3], 300, 0,
    ),
    (
        "no scale up stabilization",
        [(4, 120), (5, 60)], 1, 3, 3, [4, 5, 3], 0, 300,
    ),
    (
        "no scale down stabilization, reuse recommendation element",
        [(10, 600), (9, 540)], 100, 3, 3, [10, 3], 0, 0,
    ),
    (
        "no scale up stabilization, reuse recommendation element",
        [(10, 600), (9, 540)], 1, 100, 100, [10, 100], 0, 0,
    ),
    (
        "scale down stabilization, reuse one of obsolete recommendation element",
        [(10, 600), (4, 60), (5, 120), (9, 540)], 100, 3, 5, [10, 4, 5, 3], 0, 180,
    ),
    (
        "scale up stabilization, reuse one of obsolete recommendation element",
        [(10, 6000), (6, 60), (5, 120), (9, 180)], 1, 100, 5, [100, 6, 5, 9], 300, 0,
    ),
    (
        "scale up and down stabilization, do not scale up when prenormalized rec goes down",
        [(2, 6000), (3, 180)], 2, 1, 2, None, 300, 300,
    ),
    (
        "scale up and down stabilization, do not scale down when prenormalized rec goes up",
        [(2, 6000), (1, 180)], 2, 3, 2, None, 300, 300,
    ),
]
# fmt: on


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in NORMALIZE_WITH_BEHAVIOR])
def test_normalize_desired_replicas_with_behavior(
    case: tuple[str, list[tuple[int, float]], int, int, int, list[int] | None, int, int],
) -> None:
    _, log, current, desired, expected, expected_log, up_window, down_window = case
    stabilized, new_log = stabilize_recommendation(
        recs(*log),
        current,
        desired,
        scale_up_window_s=up_window,
        scale_down_window_s=down_window,
        now=NOW,
    )
    assert stabilized == expected
    if expected_log is not None:
        assert [r.replicas for r in new_log] == expected_log


@pytest.mark.parametrize(
    "case",
    [
        # (added, like the rest of this table) the 300 s window holds 10 pods ...
        ([(10, 200)], 10, 2, 10, 10, "DesiredWithinRange"),
        # ... until the high recommendation is older than the window; 100 %/15 s then allows it
        ([(10, 301)], 10, 2, 2, 2, "DesiredWithinRange"),
        # scale-up is stabilized over 0 s and limited to max(2 x 3, 3 + 4) = 7
        ([(3, 10)], 3, 50, 7, 50, "ScaleUpLimit"),
        # scale-down below min_replicas 2 stops at 2
        ([(1, 400)], 5, 1, 2, 1, "TooFewReplicas"),
    ],
)
def test_normalize_combines_stabilization_and_rate(
    case: tuple[list[tuple[int, float]], int, int, int, int, str],
) -> None:
    log, current, desired, expected, stabilized, condition = case
    result = normalize_desired_replicas_with_behavior(
        current,
        desired,
        min_replicas=2,
        max_replicas=100,
        behavior=HpaBehavior(),
        recommendations=recs(*log),
        scale_up_events=(),
        scale_down_events=(),
        now=NOW,
    )
    assert (result.replicas, result.stabilized, result.condition) == (
        expected,
        stabilized,
        condition,
    )
    assert result.recommendations[-1] == TimestampedRecommendation(desired, NOW)


# --------------------------------------------------------------------------- replica calculator

# Plain-metric cases with per-pod values: (Go test, current, per-pod values, target,
# missing pods, expected replicas or None for the Go error). Custom-metric (podMetric) cases
# use their milli-values as is. CPU cases translate exactly where every pod requests the
# same amount: utilization is sum(usage) / sum(requests), so the plain target is
# request x target% (and missing pods filled at the target equal "100 % of request" only
# at a 100 % target, which is why only those missing-metric cases are here).
# fmt: off
PLAIN_METRIC = [
    (
        "TestReplicaCalcScaleUpCM",
        3, [20000, 10000, 30000], 15000, 0, 4,
    ),
    # Unready pods with metrics count for non-CPU metrics: readiness is ignored.
    (
        "TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale",
        3, [50000, 10000, 30000], 15000, 0, 6,
    ),
    (
        "TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown",
        3, [50000, 15000, 30000], 15000, 0, 7,
    ),
    (
        "TestReplicaCalcScaleUpCMExternal",
        1, [8600], 4400, 0, 2,
    ),
    (
        "TestReplicaCalcScaleUpCMExternalNoLabels",
        1, [8600], 4400, 0, 2,
    ),
    (
        "TestReplicaCalcScaleDownCM",
        5, [12000] * 5, 20000, 0, 3,
    ),
    (
        "TestReplicaCalcToleranceCM",
        3, [20000, 21000, 21000], 20000, 0, 3,
    ),
    (
        "TestReplicaCalcScaleUp (cpu 30 % of 1000m)",
        3, [300, 500, 700], 300, 0, 5,
    ),
    (
        "TestReplicaCalcScaleDown (cpu 50 % of 1000m)",
        5, [100, 300, 500, 250, 250], 500, 0, 3,
    ),
    # requests 0.9/1.0/1.1: sum 3000m, so 100 % of the mean request is 1000m
    (
        "TestReplicaCalcTolerance (cpu 100 %)",
        3, [1010, 1030, 1020], 1000, 0, 3,
    ),
    (
        "TestReplicaCalcMissingMetrics (cpu 100 %)",
        4, [400, 95], 1000, 2, 3,
    ),
    (
        "TestReplicaCalcMissingMetricsNoChangeEq (cpu 100 %)",
        2, [1000], 1000, 1, 2,
    ),
    (
        "TestReplicaCalcMissingMetricsNoChangeGt (cpu 100 %)",
        2, [1900], 1000, 1, 2,
    ),
    (
        "TestReplicaCalcMissingMetricsNoChangeLt (cpu 100 %)",
        2, [600], 1000, 1, 2,
    ),
    # target int32((1 / (2 x 0.9) + 0.01) x 100) = 56 % of 300m; then + 0.004 -> 55 %
    (
        "TestReplicaCalcComputedToleranceAlgImplementation (scale)",
        10, [150] * 10, 168, 0, 9,
    ),
    (
        "TestReplicaCalcComputedToleranceAlgImplementation (no scale)",
        10, [150] * 10, 165, 0, 10,
    ),
    (
        "TestReplicaCalcEmptyMetrics",
        4, [], 1000, 0, None,
    ),
]
# fmt: on


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in PLAIN_METRIC])
def test_plain_metric_replicas(case: tuple[str, int, list[float], float, int, int | None]) -> None:
    _, current, values, target, missing, expected = case
    proposal = plain_metric_replicas(current, values, target, TOLERANCE, missing_pods=missing)
    assert (None if proposal is None else proposal.replicas) == expected


@pytest.mark.parametrize(
    ("current", "values", "unready", "expected"),
    [
        # (added) pending pods count as 0 only on a scale-up: 2 ready at ratio 2 plus 2
        # pending -> ratio 1.0, within tolerance: keep
        (4, [2.0, 2.0], 2, 4),
        # (added) ratio 3 -> with 2 pending at 0, ratio 1.5 over 4 pods: 6
        (4, [3.0, 3.0], 2, 6),
        # (added) on a scale-down pending pods are ignored: ceil(0.5 x 2) = 1
        (4, [0.5, 0.5], 2, 1),
    ],
)
def test_plain_metric_replicas_with_pending_pods(
    current: int, values: list[float], unready: int, expected: int
) -> None:
    proposal = plain_metric_replicas(current, values, 1.0, TOLERANCE, unready_pods=unready)
    assert proposal is not None
    assert proposal.replicas == expected


# The same cases in this policy's uniform model (every ready pod reports total / ready, the
# rest are missing); exact because the calculator only uses the mean of the reported values:
# (Go test, current, ready, total, target, expected).
# fmt: off
UNIFORM = [
    (
        "TestReplicaCalcScaleUpCM",
        3, 3, 60.0, 15.0, 4,
    ),
    (
        "TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale",
        3, 3, 90.0, 15.0, 6,
    ),
    (
        "TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown",
        3, 3, 95.0, 15.0, 7,
    ),
    (
        "TestReplicaCalcScaleUpCMExternal",
        1, 1, 8.6, 4.4, 2,
    ),
    (
        "TestReplicaCalcScaleDownCM",
        5, 5, 60.0, 20.0, 3,
    ),
    (
        "TestReplicaCalcToleranceCM",
        3, 3, 62.0, 20.0, 3,
    ),
    (
        "TestReplicaCalcScaleUp",
        3, 3, 1500.0, 300.0, 5,
    ),
    (
        "TestReplicaCalcScaleDown",
        5, 5, 1400.0, 500.0, 3,
    ),
    (
        "TestReplicaCalcTolerance",
        3, 3, 3060.0, 1000.0, 3,
    ),
    (
        "TestReplicaCalcMissingMetrics",
        4, 2, 495.0, 1000.0, 3,
    ),
    (
        "TestReplicaCalcMissingMetricsNoChangeEq",
        2, 1, 1000.0, 1000.0, 2,
    ),
    (
        "TestReplicaCalcMissingMetricsNoChangeGt",
        2, 1, 1900.0, 1000.0, 2,
    ),
    (
        "TestReplicaCalcMissingMetricsNoChangeLt",
        2, 1, 600.0, 1000.0, 2,
    ),
    (
        "TestReplicaCalcComputedToleranceAlgImplementation (scale)",
        10, 10, 1500.0, 168.0, 9,
    ),
    (
        "TestReplicaCalcComputedToleranceAlgImplementation (no scale)",
        10, 10, 1500.0, 165.0, 10,
    ),
    (
        "TestReplicaCalcEmptyMetrics",
        4, 0, 0.0, 1000.0, None,
    ),
]
# fmt: on


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in UNIFORM])
def test_uniform_metric_replicas(case: tuple[str, int, int, float, float, int | None]) -> None:
    _, current, ready, total, target, expected = case
    proposal = uniform_metric_replicas(current, ready, total, target, TOLERANCE)
    assert (None if proposal is None else proposal.replicas) == expected


# --------------------------------------------------------------------------- the policy


def snap(
    now: float,
    current: int,
    load: float,
    *,
    ready: int | None = None,
    min_replicas: int = 1,
    max_replicas: int = 100,
    parallelism: int = 1,
    target_utilization: float = 1.0,
) -> Snapshot:
    settings = Settings(
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        parallelism=parallelism,
        target_utilization=target_utilization,
    )
    return Snapshot(
        now=now,
        deployment="ns/app",
        settings=settings,
        current_replicas=current,
        ready_replicas=current if ready is None else ready,
        in_flight=int(load),
        queue_length=0.0,
        stable_load=load,
        panic_load=load,
        history_s=600.0,
        idle_s=0.0,
    )


def run(policy: HpaPolicy, steps: list[tuple[float, int, float]]) -> list[int]:
    """Feed (time offset, current replicas, load) snapshots; return the answers."""
    state = policy.initial_state()
    answers: list[int] = []
    for offset, current, load in steps:
        rec = policy.recommend(snap(NOW + offset, current, load), state)
        answers.append(rec.replicas)
        state = rec.state
    return answers


def test_spec_and_kubernetes_defaults() -> None:
    assert SPEC.name == "hpa"
    assert SPEC.params_type is HpaParams
    params = HpaParams()
    assert params.tolerance == 0.1
    # The sync period is the framework's decision period, defaulted for this policy.
    assert SPEC.settings_defaults == {"decision_period_s": 15.0}
    up, down = params.behavior.scale_up, params.behavior.scale_down
    assert (up.stabilization_window_s, up.select_policy) == (0, "Max")
    assert [(p.type, p.value, p.period_s) for p in up.policies] == [
        ("Percent", 100, 15),
        ("Pods", 4, 15),
    ]
    assert (down.stabilization_window_s, down.select_policy) == (300, "Max")
    assert [(p.type, p.value, p.period_s) for p in down.policies] == [("Percent", 100, 15)]
    assert isinstance(SPEC.build(params), HpaPolicy)


def test_params_validation() -> None:
    parsed = validate_params(
        HpaParams,
        {
            "tolerance": 0.05,
            "behavior": {
                "scale_down": {"stabilization_window_s": 60},
                "scale_up": {"policies": [{"type": "Pods", "value": 2, "period_s": 60}]},
            },
        },
    )
    # A partly given direction keeps that direction's defaults for the rest.
    assert parsed.behavior.scale_down.policies[0].type == "Percent"
    assert parsed.behavior.scale_up.stabilization_window_s == 0
    bad: dict[str, Any]
    for bad in (
        {"tolerance": 1.0},
        {"unknown": 1},
        {"behavior": {"scale_up": {"select_policy": "Largest"}}},
        {"behavior": {"scale_up": {"policies": []}}},
        {"behavior": {"scale_down": {"policies": [{"type": "Pods", "value": 0, "period_s": 15}]}}},
        {"behavior": {"scale_down": {"policies": [{"type": "Pods", "value": 1, "period_s": 0}]}}},
    ):
        with pytest.raises(ValidationError):
            validate_params(HpaParams, bad)


def test_reason_explains_tolerance() -> None:
    # 12 in flight over 4 pods = 3.00/pod vs 4 x 0.7 = 2.80: ratio 1.07, inside 10 %.
    rec = HpaPolicy(HpaParams()).recommend(
        snap(NOW, 4, 12.0, parallelism=4, target_utilization=0.7), HpaState()
    )
    assert rec.replicas == 4
    assert rec.reason.startswith("hpa: load 12.0 over 4 ready pods = 3.00/pod vs target 2.80")
    assert "(ratio 1.07 within tolerance 0.10)" in rec.reason
    assert rec.reason.endswith("keep 4")
    assert "\n" not in rec.reason


def test_go_metric_cases_through_the_policy() -> None:
    # TestReplicaCalcScaleUpCM / ...ScaleWouldScaleDown / ...ScaleUpCMExternal on a first sync:
    # within the default scale-up limit, so the calculator's answer goes through.
    policy = HpaPolicy(HpaParams())
    assert policy.recommend(snap(NOW, 3, 60.0, parallelism=15), HpaState()).replicas == 4
    assert policy.recommend(snap(NOW, 3, 95.0, parallelism=15), HpaState()).replicas == 7
    external = snap(NOW, 1, 8.6, parallelism=22, target_utilization=0.2)  # target 4.4
    assert policy.recommend(external, HpaState()).replicas == 2


def test_sync_period_holds_previous_result() -> None:
    answers = run(
        HpaPolicy(HpaParams()),
        [
            (0.0, 2, 6.0),  # syncs: 3 per pod vs 1 -> 6 (limit max(4, 6))
            (5.0, 6, 60.0),  # between syncs: the previous answer
            (14.9, 6, 60.0),
            (15.0, 6, 60.0),  # syncs: 10 per pod -> 60, limit max(12, 10) = 12
            (20.0, 12, 0.0),
        ],
    )
    assert answers == [6, 6, 6, 12, 12]


def test_scale_down_waits_for_the_300s_stabilization_window() -> None:
    steps = [(0.0, 10, 10.0)] + [(float(t), 10, 2.0) for t in range(15, 301, 15)]
    answers = run(HpaPolicy(HpaParams()), steps)
    # 10 per pod at t=0 (and the initial recommendation of 10) hold for 300 s; then the
    # recommendations of 2 are all that remain and 100 %/15 s lets it go at once.
    assert answers[:-1] == [10] * 20
    assert answers[-1] == 2


def test_scale_up_is_limited_to_double_or_plus_four_per_15s() -> None:
    steps = [
        (0.0, 1, 100.0),
        (15.0, 5, 100.0),
        (30.0, 10, 100.0),
        (45.0, 20, 100.0),
        (60.0, 40, 100.0),
        (75.0, 80, 100.0),
    ]
    assert run(HpaPolicy(HpaParams()), steps) == [5, 10, 20, 40, 80, 100]


def test_scale_events_inside_the_period_count() -> None:
    # Syncing every 5 s: the +4 made at t=0 is still inside the 15 s policies at t=5 and
    # t=10 (period start 2 -> limit max(4, 6) = 6), and out of them at t=15.
    policy = HpaPolicy(HpaParams())
    steps = [(0.0, 2, 100.0), (5.0, 6, 100.0), (10.0, 6, 100.0), (15.0, 6, 100.0)]
    assert run(policy, steps) == [6, 6, 6, 12]


def test_cold_starting_pods_are_missing_pods() -> None:
    policy = HpaPolicy(HpaParams())
    # 2 ready at 2/pod (ratio 2), 2 starting counted as 0 -> ratio 1.0: keep 4.
    rec = policy.recommend(snap(NOW, 4, 4.0, ready=2), HpaState())
    assert rec.replicas == 4
    assert "2 starting pods counted -> 1.00" in rec.reason
    # 3/pod: with the starting pods at 0, ratio 1.5 over 4 pods -> 6.
    assert policy.recommend(snap(NOW, 4, 6.0, ready=2), HpaState()).replicas == 6
    # Scale-down: starting pods count at the target; (0.8 + 2) / 4 = 0.7 -> 3 (no window).
    no_window = validate_params(
        HpaParams, {"behavior": {"scale_down": {"stabilization_window_s": 0}}}
    )
    rec = HpaPolicy(no_window).recommend(snap(NOW, 4, 0.8, ready=2), HpaState())
    assert rec.replicas == 3


def test_special_cases_of_the_controller() -> None:
    policy = HpaPolicy(HpaParams())
    # No ready pod reports a metric: the HPA errors and keeps the count.
    rec = policy.recommend(snap(NOW, 3, 50.0, ready=0), HpaState())
    assert rec.replicas == 3
    assert "no ready pod" in rec.reason
    # Zero replicas with min_replicas > 0: autoscaling is disabled.
    assert policy.recommend(snap(NOW, 0, 50.0, min_replicas=1), HpaState()).replicas == 0
    # Outside the bounds: straight to the bound, no metric needed.
    assert policy.recommend(snap(NOW, 12, 0.0, max_replicas=10), HpaState()).replicas == 10
    assert policy.recommend(snap(NOW, 1, 50.0, min_replicas=3), HpaState()).replicas == 3
    # From zero with min_replicas 0: ceil(load / target), limited to +4 per 15 s.
    assert policy.recommend(snap(NOW, 0, 3.0, min_replicas=0), HpaState()).replicas == 3
    assert policy.recommend(snap(NOW, 0, 30.0, min_replicas=0), HpaState()).replicas == 4
    assert policy.recommend(snap(NOW, 0, 0.0, min_replicas=0), HpaState()).replicas == 0


def test_state_stays_small() -> None:
    policy = HpaPolicy(HpaParams())
    state: object = policy.initial_state()
    current = 4
    for step in range(200):
        load = 40.0 if step % 3 == 0 else 2.0
        rec = policy.recommend(snap(NOW + 15.0 * step, current, load), state)
        current, state = rec.replicas, rec.state
    assert isinstance(state, HpaState)
    # Only what can still matter: recommendations inside the 300 s window, events inside
    # the 15 s periods.
    assert len(state.recommendations) <= 21
    assert len(state.scale_up_events) <= 2
    assert len(state.scale_down_events) <= 2
    assert all(r.timestamp >= state.last_sync - 300 for r in state.recommendations)  # type: ignore[operator]
