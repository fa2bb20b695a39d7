"""Per-target annotations: pause, pin, and policy-key overrides, parsed at the boundary."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.config.annotations import NO_CONTROLS, parse_controls
from autoscaler.config.loader import PolicyFileError, parse_policies

POLICY = """
defaults: {min_replicas: 1, max_replicas: 10, parallelism: 4}
deployments:
  - match: models/*
    max_replicas: 8
"""


@pytest.mark.parametrize(
    ("annotations", "paused", "pinned", "overrides"),
    [
        ({}, False, None, {}),
        ({"other.io/x": "1"}, False, None, {}),
        ({"autoscaler.dev/paused": "true"}, True, None, {}),
        ({"autoscaler.dev/paused": "False"}, False, None, {}),
        ({"autoscaler.dev/paused-replicas": "3"}, False, 3, {}),
        ({"autoscaler.dev/paused-replicas": "0"}, False, 0, {}),
        ({"autoscaler.dev/min_replicas": "2"}, False, None, {"min_replicas": 2}),
        ({"autoscaler.dev/target_utilization": "0.5"}, False, None, {"target_utilization": 0.5}),
        ({"autoscaler.dev/policy": "queue"}, False, None, {"policy": "queue"}),
        (
            {"autoscaler.dev/params": '{"target_per_replica": 8}'},
            False,
            None,
            {"params": {"target_per_replica": 8}},
        ),
    ],
)
def test_parsed(
    annotations: dict[str, str], paused: bool, pinned: int | None, overrides: dict[str, Any]
) -> None:
    controls = parse_controls("models/llm", annotations)
    assert (controls.paused, controls.paused_replicas, dict(controls.overrides)) == (
        paused,
        pinned,
        overrides,
    )
    assert controls.problems == ()
    assert controls.held == (paused or pinned is not None)


def test_no_annotation_of_ours_is_the_shared_empty_controls() -> None:
    assert parse_controls("models/llm", {"kubectl.kubernetes.io/restartedAt": "x"}) is NO_CONTROLS


@pytest.mark.parametrize(
    ("key", "value", "rule"),
    [
        ("autoscaler.dev/paused", "yes", 'must be "true" or "false"'),
        ("autoscaler.dev/paused-replicas", "-1", "must be a whole number >= 0"),
        ("autoscaler.dev/paused-replicas", "two", "must be a whole number >= 0"),
        ("autoscaler.dev/schedule", "[]", "unknown key"),
        ("autoscaler.dev/min_replicas", "[1", "not a YAML value"),
    ],
)
def test_bad_annotations_are_reported_and_ignored(key: str, value: str, rule: str) -> None:
    controls = parse_controls("models/llm", {key: value})
    # A typo neither pauses nor overrides anything.
    assert not controls.held
    assert dict(controls.overrides) == {}
    [problem] = controls.problems
    assert problem.file == "models/llm (annotations)"
    assert (problem.path, problem.value) == (key, value)
    assert rule in problem.rule


def test_overrides_are_validated_with_the_rules_they_refine() -> None:
    policies = parse_policies([("p.yaml", POLICY)])
    resolved = policies.resolve("models/llm", overrides={"min_replicas": 3, "parallelism": 2})
    assert (resolved.settings.min_replicas, resolved.settings.max_replicas) == (3, 8)
    assert resolved.settings.parallelism == 2
    # Without overrides the rules alone apply, from the cache.
    assert policies.resolve("models/llm").settings.min_replicas == 1
    with pytest.raises(PolicyFileError) as caught:
        policies.resolve("models/llm", overrides={"min_replicas": 12})
    [problem] = caught.value.problems
    assert problem.file.startswith("models/llm (annotations over ")
    assert "p.yaml: deployments[0]" in problem.file
    assert "max_replicas" in str(problem)
