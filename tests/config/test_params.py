"""A policy's params dataclass, validated at the boundary into exactly the type it declares."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import pytest
from annotated_types import Ge, Le, MinLen
from pydantic import ValidationError

from autoscaler.config.params import (
    attribute_docs,
    params_as_json,
    params_model,
    validate_params,
)
from autoscaler.config.registry import BUILTIN, UnknownPolicyError, get_policy
from autoscaler.core.policies.hpa import HpaParams, ScalingPolicy
from autoscaler.core.policy import Pattern, PolicyParams, PolicySpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    kind: Literal["up", "down"]
    size: Annotated[int, Ge(1)]


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample(PolicyParams):
    rate: Annotated[float, Ge(0), Le(10)] = 1.0
    """how fast, per
    second"""
    count: Annotated[int, Ge(0)] = 3
    name: Annotated[str, Pattern(r"^[a-z]+$")] = "abc"
    limit: Annotated[float, Ge(1)] | None = None
    steps: Annotated[tuple[Step, ...], MinLen(1)] = (Step(kind="up", size=1),)
    inner: Step = field(default_factory=lambda: Step(kind="down", size=2))
    on: bool = True


def test_defaults_when_nothing_is_set() -> None:
    assert validate_params(Sample, {}) == Sample()


def test_values_come_back_as_the_declared_types() -> None:
    got = validate_params(
        Sample,
        {
            "rate": 2,
            "count": 4.0,
            "limit": 5,
            "steps": [{"kind": "down", "size": 3}],
            "inner": {"kind": "up", "size": 1},
        },
    )
    assert got == Sample(
        rate=2.0,
        count=4,
        limit=5.0,
        steps=(Step(kind="down", size=3),),
        inner=Step(kind="up", size=1),
    )
    assert type(got.rate) is float and type(got.count) is int
    assert isinstance(got.steps, tuple) and type(got.steps[0]) is Step
    assert type(got.inner) is Step


@pytest.mark.parametrize(
    ("values", "loc", "message"),
    [
        ({"rate": True}, ("rate",), "must be a number, not true/false"),
        ({"rate": "2"}, ("rate",), "must be a number, not a string"),
        ({"rate": float("inf")}, ("rate",), "must be a finite number"),
        ({"rate": 11}, ("rate",), "Input should be less than or equal to 10"),
        ({"count": 1.5}, ("count",), "Input should be a valid integer, got a number with a"),
        ({"name": "A"}, ("name",), "String should match pattern '^[a-z]+$'"),
        ({"limit": 0.5}, ("limit",), "Input should be greater than or equal to 1"),
        ({"steps": []}, ("steps",), "Tuple should have at least 1 item after validation"),
        ({"inner": {"kind": "sideways", "size": 1}}, ("inner", "kind"), "Input should be 'up'"),
        ({"inner": {"kind": "up"}}, ("inner", "size"), "Field required"),
        ({"bogus": 1}, ("bogus",), "Extra inputs are not permitted"),
    ],
)
def test_rejections_name_the_key_and_the_rule(
    values: dict[str, Any], loc: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        validate_params(Sample, values)
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [loc]
    assert errors[0]["msg"].startswith(message)


def test_descriptions_are_the_strings_below_the_fields() -> None:
    assert attribute_docs(Sample)["rate"] == "how fast, per second"
    assert "count" not in attribute_docs(Sample)
    assert params_model(Sample).model_fields["rate"].description == "how fast, per second"


def test_json_form_is_plain() -> None:
    assert params_as_json(Sample(steps=(Step(kind="up", size=2),))) == {
        "rate": 1.0,
        "count": 3,
        "name": "abc",
        "limit": None,
        "steps": [{"kind": "up", "size": 2}],
        "inner": {"kind": "down", "size": 2},
        "on": True,
    }


def test_nested_defaults_of_the_hpa_are_the_kubernetes_ones() -> None:
    got = validate_params(HpaParams, {"behavior": {"scale_down": {"stabilization_window_s": 60}}})
    assert got.behavior.scale_down.stabilization_window_s == 60
    assert got.behavior.scale_down.policies == (
        ScalingPolicy(type="Percent", value=100, period_s=15),
    )
    assert got.behavior.scale_up == HpaParams().behavior.scale_up


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_params_type_validates_its_defaults(name: str) -> None:
    spec = get_policy(name)
    default = spec.params_type()
    assert validate_params(spec.params_type, {}) == default
    # Every field a file may set is documented.
    model = params_model(spec.params_type)
    undocumented = [k for k, info in model.model_fields.items() if not info.description]
    assert not undocumented, undocumented
    assert validate_params(spec.params_type, params_as_json(default)) == default


class NotADataclass(PolicyParams):
    replicas: int = 1


SPEC_WITHOUT_DATACLASS = PolicySpec(
    name="broken", params_type=NotADataclass, factory=lambda params: params
)


def test_a_plugin_whose_params_are_not_a_dataclass_is_refused() -> None:
    assert dataclasses.is_dataclass(NotADataclass)  # inherited: why the registry looks closer
    path = f"{__name__}:SPEC_WITHOUT_DATACLASS"
    with pytest.raises(UnknownPolicyError, match="is not a dataclass"):
        get_policy(path, (path,))


@dataclass(frozen=True, slots=True, kw_only=True)
class ListParams(PolicyParams):
    sizes: list[int] = field(default_factory=list)


SPEC_WITH_A_LIST = PolicySpec(name="listy", params_type=ListParams, factory=lambda params: params)


def test_a_plugin_whose_params_the_files_cannot_express_is_refused() -> None:
    path = f"{__name__}:SPEC_WITH_A_LIST"
    with pytest.raises(UnknownPolicyError, match="is not supported"):
        get_policy(path, (path,))
