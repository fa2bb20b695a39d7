"""Per-target annotations: pause, pin, and policy-key overrides, parsed at the boundary."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.config.annotations import NO_CONTROLS, parse_controls
from autoscaler.config.loader import PolicyFileError, parse_policies

POLICY = """
defaults: {min_replicas: 1, max_replicas: 10, parallelism: 4}
deployments:
  - match: models/*
    max_replicas: 8
"""


PINNED_RULE = "must be a whole number from 0 to 100000"


@pytest.mark.parametrize(
    ("annotations", "paused", "pinned", "overrides"),
    [
        ({}, False, None, {}),
        ({"other.io/x": "1"}, False, None, {}),
        ({"autoscaler.dev/paused": "true"}, True, None, {}),
        ({"autoscaler.dev/paused": "False"}, False, None, {}),
        ({"autoscaler.dev/paused-replicas": "3"}, False, 3, {}),
        ({"autoscaler.dev/paused-replicas": "0"}, False, 0, {}),
        ({"autoscaler.dev/paused-replicas": " 100000 "}, False, 100_000, {}),
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
        ("autoscaler.dev/paused-replicas", "-1", PINNED_RULE),
        ("autoscaler.dev/paused-replicas", "two", PINNED_RULE),
        ("autoscaler.dev/schedule", "[]", "unknown key"),
        ("autoscaler.dev/min_replicas", "[1", "not a YAML value"),
        # issue 9, item 8: each of these broke the watch of a whole namespace, or the daemon.
        ("autoscaler.dev/paused-replicas", "²", PINNED_RULE),  # isdigit(), then int() fails
        ("autoscaler.dev/paused-replicas", "٣", PINNED_RULE),  # int() takes it: not ASCII
        ("autoscaler.dev/paused-replicas", "100001", PINNED_RULE),
        ("autoscaler.dev/paused-replicas", "9" * 5000, PINNED_RULE),  # int() limit: 4,300
        ("autoscaler.dev/paused-replicas", "1e3", PINNED_RULE),
        ("autoscaler.dev/paused-replicas", "", PINNED_RULE),
        ("autoscaler.dev/params", "[" * 5000 + "]" * 5000, "nested deeper than 16 levels"),
        ("autoscaler.dev/params", "{a: " * 3000 + "}" * 3000, "nested deeper than 16 levels"),
        ("autoscaler.dev/params", "{a: &a [x], b: *a}", "more than 0 aliases"),
        ("autoscaler.dev/params", "{x: 1, x: 2}", "duplicate key"),
        ("autoscaler.dev/parallelism", "9" * 4301, "number longer than 100 characters"),
        ("autoscaler.dev/min_replicas", "!!python/object:os.system x", "unsupported tag"),
        ("autoscaler.dev/min_replicas", "x" * 20_000, "larger than 16384 bytes"),
        ("autoscaler.dev/policy", "os:system", "must name a registered policy"),
        ("autoscaler.dev/policy", "this:SPEC", "must name a registered policy"),
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


KEYS = st.one_of(
    st.sampled_from(
        [
            "autoscaler.dev/paused",
            "autoscaler.dev/paused-replicas",
            "autoscaler.dev/params",
            "autoscaler.dev/policy",
            "autoscaler.dev/min_replicas",
            "autoscaler.dev/schedule",
            "other.io/x",
        ]
    ),
    st.text(max_size=30).map(lambda t: "autoscaler.dev/" + t),
    st.text(max_size=30),
)
VALUES = st.one_of(
    st.text(max_size=200),
    st.text(alphabet="[]{}:,&*!-?|>'\"#%@ \n\t0123456789.eE+xa", max_size=300),
    st.integers(min_value=0, max_value=3000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=0, max_value=3000).map(lambda n: "{a: " * n + "}" * n),
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_parse_controls_never_raises(annotations: dict[str, str]) -> None:
    controls = parse_controls("ns/name", annotations)
    # Whatever it read is usable: a pin is in range, every problem names one of our keys.
    assert controls.paused_replicas is None or 0 <= controls.paused_replicas <= 100_000
    for problem in controls.problems:
        assert problem.path in annotations
        assert len(str(problem)) < 2000
