"""Property: settings that validate never crash a decision (issue 9, item 6).

Random settings and params dicts, drawn inside, on and beyond every bound (huge, tiny,
infinite, NaN, booleans, strings), go through the models; those that validate are built into
the built-in policy they name via the registry and driven through the real decision path
(``DeploymentAutoscaler``: random events through ``apply``, random ``decide(now, current,
ready)``), which must never raise and must stay within the bounds.

The bounds themselves are read from the models, so a new field is fuzzed without editing this.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import annotated_types
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from autoscaler.config.loader import PolicyFileError, parse_policies
from autoscaler.config.models import DeploymentSettings
from autoscaler.config.params import params_model, validate_params
from autoscaler.config.registry import BUILTIN, get_policy
from autoscaler.core.deployment import DeploymentAutoscaler
from autoscaler.core.events import (
    Concurrency,
    Event,
    QueueLength,
    RequestFinished,
    RequestStarted,
    Signal,
)
from autoscaler.core.policies.hpa import HpaBehavior
from autoscaler.core.settings import MAX_REPLICAS

NAME = "fuzz/model"
WILD: list[Any] = [
    True,
    False,
    -1,
    0,
    1e-300,
    10**5 + 1,
    10**400,
    1e308,
    math.inf,
    -math.inf,
    math.nan,
    "4",
]
"""Values that broke, or nearly broke, a bound somewhere: bools (``max_replicas: true`` was 1),
the issue's three triggers (``.inf``, a 401-digit int, ``1.0e-300``) and their neighbours."""


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None]:
    low = high = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge | annotated_types.Gt):
            low = cast(float, item.ge if isinstance(item, annotated_types.Ge) else item.gt)
        elif isinstance(item, annotated_types.Le | annotated_types.Lt):
            high = cast(float, item.le if isinstance(item, annotated_types.Le) else item.lt)
    return low, high


def _near(low: float | None, high: float | None, whole: bool) -> st.SearchStrategy[Any]:
    """Values inside the bounds, and on them."""
    lo = -1e6 if low is None else low
    hi = 1e6 if high is None else high
    if whole:
        return st.one_of(st.integers(math.ceil(lo), math.floor(hi)), st.sampled_from([lo, hi]))
    return st.one_of(st.floats(lo, hi, allow_nan=False), st.sampled_from([lo, hi]))


def _beyond(low: float | None, high: float | None, whole: bool) -> st.SearchStrategy[Any]:
    """Values just past the bounds, far past them, and of the wrong kind."""
    lo = 0.0 if low is None else low
    hi = 1e6 if high is None else high
    edges: list[Any] = [lo - 1, hi + 1, lo * 0.999, hi * 1.001, lo / 7, hi * 1e6]
    if whole:
        edges = [round(e) for e in edges]
    return st.one_of(
        # Three times: the list that found real bugs deserves more draws than uniform floats.
        st.sampled_from(WILD),
        st.sampled_from(WILD),
        st.sampled_from(WILD),
        st.sampled_from(edges),
        st.floats(),  # any float, inf and nan included
        st.integers(-(10**20), 10**20),
    )


def _numeric_fields(model: type[BaseModel]) -> dict[str, tuple[float | None, float | None, bool]]:
    out = {}
    for name, info in model.model_fields.items():
        text = str(info.annotation)
        whole = "int" in text
        if whole or "float" in text:
            out[name] = (*_bounds(info.metadata), whole)
    return out


def _field_values(model: type[BaseModel]) -> dict[str, st.SearchStrategy[Any]]:
    return {name: _near(*bounds) for name, bounds in _numeric_fields(model).items()}


def _wild_values(model: type[BaseModel]) -> dict[str, st.SearchStrategy[Any]]:
    return {name: _beyond(*bounds) for name, bounds in _numeric_fields(model).items()}


def _optional_dict(values: Mapping[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries({}, optional=dict(values))


_SCALING_POLICY = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["Pods", "Percent"]),
        "value": st.one_of(st.integers(1, MAX_REPLICAS), st.sampled_from(WILD)),
        "period_s": st.one_of(st.integers(1, 1800), st.sampled_from(WILD)),
    }
)
_RULES = st.fixed_dictionaries(
    {},
    optional={
        "stabilization_window_s": st.one_of(st.integers(0, 3600), st.sampled_from(WILD)),
        "select_policy": st.sampled_from(["Max", "Min", "Disabled"]),
        "policies": st.lists(_SCALING_POLICY, min_size=1, max_size=3),
    },
)
_HPA_EXTRA = {
    "behavior": st.fixed_dictionaries({}, optional={"scale_up": _RULES, "scale_down": _RULES})
}
_MODELS: dict[str, type[BaseModel]] = {
    name: params_model(get_policy(name).params_type) for name in BUILTIN
}
_PARAMS = {
    name: _optional_dict({**_field_values(model), **(_HPA_EXTRA if name == "hpa" else {})})
    for name, model in _MODELS.items()
}
_SETTINGS = _optional_dict(_field_values(DeploymentSettings))
_WILD_SETTINGS = _wild_values(DeploymentSettings)
_WILD_PARAMS = {name: _wild_values(model) for name, model in _MODELS.items()}


@st.composite
def settings_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Settings within every bound, and half of the time one value (of the settings or the
    params) around or beyond its bounds: one bad value at a time is what slips through a
    missing rule, since the others being valid lets the model accept it."""
    policy = draw(st.sampled_from(sorted(BUILTIN)))
    values = dict(draw(_SETTINGS))
    params = dict(draw(_PARAMS[policy]))
    if draw(st.booleans(), label="one wild value"):
        choices = [("settings", k) for k in _WILD_SETTINGS] + [
            ("params", k) for k in _WILD_PARAMS[policy]
        ]
        where, key = draw(st.sampled_from(choices), label="wild key")
        if where == "settings":
            values[key] = draw(_WILD_SETTINGS[key], label=key)
        else:
            params[key] = draw(_WILD_PARAMS[policy][key], label=key)
    return {"policy": policy, "params": params, **values}


_COUNT = st.one_of(st.floats(0, 1e9, allow_nan=False), st.sampled_from([0.0, 1.0, 1e9]))


@st.composite
def events(draw: st.DrawFn, now: float) -> Event:
    """One event of any type as the schema admits it (ts 0..1e11, values 0..1e9)."""
    ts = draw(st.one_of(st.just(now), st.floats(0, 1e11, allow_nan=False)))
    rid = draw(st.sampled_from("abcdefgh"))
    # Starts twice: load is what makes a decision scale up, where the rate limits compute.
    kind = draw(st.sampled_from(["start", "start", "finish", "queue", "concurrency", "signal"]))
    if kind == "start":
        return RequestStarted(deployment=NAME, ts=ts, request_id=rid)
    if kind == "finish":
        return RequestFinished(deployment=NAME, ts=ts, request_id=rid)
    if kind == "queue":
        return QueueLength(deployment=NAME, ts=ts, value=draw(_COUNT))
    if kind == "concurrency":
        return Concurrency(deployment=NAME, ts=ts, value=draw(_COUNT), replica=rid)
    # `prometheus` is the metric policy's default signal.
    return Signal(deployment=NAME, ts=ts, name="prometheus", value=draw(_COUNT))


_STEP_S = st.one_of(
    st.floats(0, 5, allow_nan=False), st.sampled_from([0.0, 1e-9, 60.0, 3600.0, 86400.0 * 30])
)
_REPLICAS = st.one_of(st.integers(0, 3), st.integers(0, 20), st.integers(0, MAX_REPLICAS))


def _validated(raw: dict[str, Any]) -> tuple[DeploymentSettings, Any] | None:
    try:
        valid = DeploymentSettings.model_validate(raw)
        spec = get_policy(valid.policy)
        return valid, validate_params(spec.params_type, valid.params)
    except ValidationError:
        return None


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(raw=settings_dicts(), start=st.floats(0, 1e10, allow_nan=False), data=st.data())
def test_validated_settings_decide_without_raising(
    raw: dict[str, Any], start: float, data: st.DataObject
) -> None:
    validated = _validated(raw)
    event("valid" if validated is not None else "rejected")
    if validated is None:
        return
    valid, params = validated
    spec = get_policy(valid.policy)
    autoscaler = DeploymentAutoscaler(NAME, valid.core(), spec.build(params), valid.policy, start)
    now = start
    for _ in range(data.draw(st.integers(1, 12), label="rounds")):
        for _ in range(data.draw(st.integers(0, 6), label="events")):
            now += data.draw(_STEP_S, label="step")
            autoscaler.apply(data.draw(events(now), label="event"), now)
        now += data.draw(_STEP_S, label="step")
        current = data.draw(_REPLICAS, label="current")
        ready = data.draw(_REPLICAS, label="ready")
        autoscaler.needs_prompt_decision(current)
        decision = autoscaler.decide(now, current, ready)
        assert valid.min_replicas <= decision.replicas <= valid.max_replicas
        assert decision.reason  # formatting the reason must not raise either


def test_defaults_of_every_builtin_validate() -> None:
    """The fuzz above only means something if the defaults it starts from are valid."""
    for name in BUILTIN:
        assert _validated({"policy": name}) is not None, name
    assert HpaBehavior() is not None


# The issue's triggers: each passed `validate` and crashed the first decision with
# OverflowError. Now each is rejected at validation, naming the rule.
TRIGGERS = [
    pytest.param("max_scale_up_rate", math.inf, ".inf", "must be a finite number", id="inf-rate"),
    pytest.param(
        "parallelism",
        int("9" * 401),
        "9" * 401,
        "Input should be less than or equal to 100000",
        id="401-digit-parallelism",
    ),
    pytest.param(
        "panic_window_s",
        1.0e-300,
        "1.0e-300",
        "Input should be greater than or equal to 0.1",
        id="tiny-panic-window",
    ),
]


@pytest.mark.parametrize(("key", "value", "yaml_text", "rule"), TRIGGERS)
def test_issue_triggers_are_rejected_at_validation(
    key: str, value: object, yaml_text: str, rule: str
) -> None:
    with pytest.raises(ValidationError) as info:
        DeploymentSettings.model_validate({key: value})
    (error,) = info.value.errors()
    assert (error["loc"], error["msg"]) == ((key,), rule)
    # And a policy file carrying it fails `validate` at that key (the YAML loader may catch
    # an overlong number before the model does).
    with pytest.raises(PolicyFileError) as file_error:
        parse_policies([("p.yaml", f"defaults:\n  {key}: {yaml_text}\n")])
    assert [p.path for p in file_error.value.problems] == [f"defaults.{key}"]
