"""Strict numbers in the policy-file models and the built-in policies' params (issue 9,
items 6 and 11): no bool where a number goes, finite floats only, a bound on every number."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.config.models import DeploymentSettings, InstanceSpec, ScheduleRule
from autoscaler.config.params import validate_params
from autoscaler.core.policies.concurrency import ConcurrencyParams
from autoscaler.core.policies.hpa import HpaParams
from autoscaler.core.policies.kpa import KpaParams
from autoscaler.core.policies.metric import MetricParams
from autoscaler.core.policies.queue import QueueParams

NOT_BOOL = "must be a number, not true/false"
NOT_STR = "must be a number, not a string"
FINITE = "must be a finite number"
HUGE = 10**400
"""The issue's 401-digit parallelism."""


def at_most(bound: object) -> str:
    return f"Input should be less than or equal to {bound}"


def at_least(bound: object) -> str:
    return f"Input should be greater than or equal to {bound}"


def above(bound: object) -> str:
    return f"Input should be greater than {bound}"


S = DeploymentSettings
SCHEDULE = {"start": "09:00", "end": "17:00"}

REJECTED = [
    # 11: `max_replicas: true` was accepted as 1, `parallelism: true` too.
    (S, {"max_replicas": True}, ("max_replicas",), NOT_BOOL),
    (S, {"parallelism": True}, ("parallelism",), NOT_BOOL),
    (S, {"min_replicas": False}, ("min_replicas",), NOT_BOOL),
    (S, {"target_utilization": True}, ("target_utilization",), NOT_BOOL),
    (S, {"max_scale_up_rate": True}, ("max_scale_up_rate",), NOT_BOOL),
    (S, {"window_s": "60"}, ("window_s",), NOT_STR),
    (S, {"parallelism": "4"}, ("parallelism",), NOT_STR),
    # 6: accepted by `validate`, then OverflowError in the first decision.
    (S, {"max_scale_up_rate": math.inf}, ("max_scale_up_rate",), FINITE),
    (S, {"parallelism": HUGE}, ("parallelism",), at_most(100000)),
    (S, {"panic_window_s": 1.0e-300}, ("panic_window_s",), at_least(0.1)),
    # The same family: infinities, NaN, no upper bound, floors that were only "> 0".
    (S, {"max_scale_down_rate": math.inf}, ("max_scale_down_rate",), FINITE),
    (S, {"max_scale_down_rate": math.nan}, ("max_scale_down_rate",), FINITE),
    (S, {"max_scale_up_rate": 1001}, ("max_scale_up_rate",), at_most(1000)),
    (S, {"max_replicas": 100001}, ("max_replicas",), at_most(100000)),
    (S, {"min_replicas": HUGE}, ("min_replicas",), at_most(100000)),
    (S, {"target_utilization": 1e-300}, ("target_utilization",), at_least(0.01)),
    (S, {"target_utilization": HUGE}, ("target_utilization",), FINITE + " (too large for a float)"),
    (S, {"window_s": 0.01}, ("window_s",), at_least(0.1)),
    (S, {"window_s": -math.inf}, ("window_s",), FINITE),
    (S, {"panic_window_s": math.nan}, ("panic_window_s",), FINITE),
    (S, {"scale_to_zero_grace_s": math.nan}, ("scale_to_zero_grace_s",), FINITE),
    (S, {"max_request_duration_s": math.inf}, ("max_request_duration_s",), FINITE),
    (S, {"max_request_duration_s": 1e9}, ("max_request_duration_s",), at_most(604800)),
    (S, {"max_request_duration_s": 1e-300}, ("max_request_duration_s",), at_least(0.001)),
    (S, {"policy": "x" * 257}, ("policy",), "String should have at most 256 characters"),
    (ScheduleRule, {**SCHEDULE, "min_replicas": True}, ("min_replicas",), NOT_BOOL),
    (ScheduleRule, {**SCHEDULE, "max_replicas": HUGE}, ("max_replicas",), at_most(100000)),
    (InstanceSpec, {"cpu": "1" * 65}, ("cpu",), "String should have at most 64 characters"),
    (InstanceSpec, {"memory": 10**70}, ("memory",), "String should have at most 64 characters"),
    # Every built-in policy's params, the same way.
    (ConcurrencyParams, {"panic_threshold": math.inf}, ("panic_threshold",), FINITE),
    (ConcurrencyParams, {"panic_threshold": True}, ("panic_threshold",), NOT_BOOL),
    (ConcurrencyParams, {"target_per_replica": 1e-300}, ("target_per_replica",), at_least(0.001)),
    (ConcurrencyParams, {"target_per_replica": 1e10}, ("target_per_replica",), at_most(1000000000)),
    (
        ConcurrencyParams,
        {"expected_cold_start_s": 1e-300},
        ("expected_cold_start_s",),
        at_least(0.001),
    ),
    (QueueParams, {"target_per_replica": True}, ("target_per_replica",), NOT_BOOL),
    (QueueParams, {"activation_threshold": math.inf}, ("activation_threshold",), FINITE),
    (S, {"decision_period_s": math.nan}, ("decision_period_s",), FINITE),
    (S, {"decision_period_s": -1}, ("decision_period_s",), at_least(0)),
    (
        S,
        {"decision_period_s": 1e-300},
        (),  # a cross-field rule: the loader re-anchors it at the key it names
        "decision_period_s=1e-300: must be 0 (no period) or at least 0.01",
    ),
    (S, {"decision_period_s": 1e9}, ("decision_period_s",), at_most(3600)),
    (MetricParams, {"target_per_replica": 1e-300}, ("target_per_replica",), at_least(0.001)),
    (MetricParams, {"activation_threshold": 1e10}, ("activation_threshold",), at_most(1000000000)),
    (KpaParams, {"activation_scale": True}, ("activation_scale",), NOT_BOOL),
    (KpaParams, {"activation_scale": HUGE}, ("activation_scale",), at_most(100000)),
    (KpaParams, {"max_scale_up_rate": 1e9}, ("max_scale_up_rate",), at_most(1000)),
    (KpaParams, {"target_per_replica": 1e-300}, ("target_per_replica",), at_least(0.001)),
    (HpaParams, {"tolerance": True}, ("tolerance",), NOT_BOOL),
    (
        HpaParams,
        {
            "behavior": {
                "scale_up": {"policies": [{"type": "Percent", "value": HUGE, "period_s": 15}]}
            }
        },
        ("behavior", "scale_up", "policies", 0, "value"),
        at_most(100000),
    ),
    (
        HpaParams,
        {
            "behavior": {
                "scale_down": {"policies": [{"type": "Pods", "value": 1, "period_s": True}]}
            }
        },
        ("behavior", "scale_down", "policies", 0, "period_s"),
        NOT_BOOL,
    ),
    (
        HpaParams,
        {"behavior": {"scale_down": {"stabilization_window_s": False}}},
        ("behavior", "scale_down", "stabilization_window_s"),
        NOT_BOOL,
    ),
]


def _validate(model: type[Any], values: dict[str, Any]) -> Any:
    """A file model validates itself; a policy's params dataclass through the config's
    params model, as the loader does."""
    if dataclasses.is_dataclass(model):
        return validate_params(model, values)
    return model.model_validate(values)


def _id(case: tuple[Any, ...]) -> str:
    model, values, loc, _ = case
    value = values[loc[0]] if len(loc) == 1 else "nested"
    shown = "huge" if value is HUGE else repr(value)[:12]
    return f"{model.__name__}-{'.'.join(map(str, loc))}={shown}"


@pytest.mark.parametrize(
    ("model", "values", "loc", "rule"), REJECTED, ids=[_id(c) for c in REJECTED]
)
def test_rejected_naming_the_rule(
    model: type[Any], values: dict[str, Any], loc: tuple[Any, ...], rule: str
) -> None:
    with pytest.raises(ValidationError) as info:
        _validate(model, values)
    errors = [(e["loc"], e["msg"]) for e in info.value.errors()]
    if len(loc) == 1:
        assert errors == [(loc, rule)]
    else:
        # In a list, pydantic adds a "too short" for the tuple that lost its bad item.
        assert (loc, rule) in errors


ACCEPTED = [
    # Ints where a float goes (YAML writes `60` for 60.0), whole floats where an int goes.
    (S, {"window_s": 60, "panic_window_s": 6}, {"window_s": 60.0, "panic_window_s": 6.0}),
    (S, {"max_replicas": 2.0}, {"max_replicas": 2}),
    # Exactly on the bounds.
    (
        S,
        {"max_replicas": 100000, "parallelism": 100000, "min_replicas": 100000},
        {"max_replicas": 100000, "parallelism": 100000},
    ),
    (S, {"panic_window_s": 0.1, "window_s": 0.1}, {"panic_window_s": 0.1, "window_s": 0.1}),
    (S, {"target_utilization": 0.01}, {"target_utilization": 0.01}),
    (S, {"max_scale_up_rate": 1000, "max_scale_down_rate": 1000}, {"max_scale_up_rate": 1000.0}),
    (S, {"max_request_duration_s": 604800}, {"max_request_duration_s": 604800.0}),
    (S, {"max_scale_up_rate": None}, {"max_scale_up_rate": None}),
    (ScheduleRule, {**SCHEDULE, "min_replicas": 100000}, {"min_replicas": 100000}),
    (KpaParams, {"activation_scale": 100000}, {"activation_scale": 100000}),
    (S, {"decision_period_s": 0.01}, {"decision_period_s": 0.01}),
    (ConcurrencyParams, {"expected_cold_start_s": None}, {"expected_cold_start_s": None}),
    (QueueParams, {"include_in_flight": False}, {"include_in_flight": False}),
]


@pytest.mark.parametrize(("model", "values", "expected"), ACCEPTED)
def test_accepted(model: type[Any], values: dict[str, Any], expected: dict[str, Any]) -> None:
    validated = _validate(model, values)
    for key, value in expected.items():
        got = getattr(validated, key)
        assert got == value and type(got) is type(value), key
