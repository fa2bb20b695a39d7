"""Annotation handling of the Kubernetes actuator: no annotation can cost a watch, and an
unreadable neighbour neither pauses a target nor un-pauses one."""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.adapters.kube_annotations import pinned_write, read_controls
from autoscaler.config.annotations import NO_CONTROLS, PAUSED, PAUSED_REPLICAS, TargetControls


class Exploding(dict[str, str]):
    """Annotations whose reading raises, as a pathological object from the API could."""

    def __iter__(self) -> Any:
        raise RecursionError("too deep")


@pytest.mark.parametrize(
    ("annotations", "paused", "unreadable"),
    [
        ({}, False, False),
        ({PAUSED: "true"}, True, False),
        (Exploding({PAUSED: "true"}), True, True),  # the pause is kept
        (Exploding({PAUSED: "false"}), False, True),
        (Exploding(), False, True),
    ],
)
def test_controls_survive_unreadable_annotations(
    annotations: dict[str, str], paused: bool, unreadable: bool
) -> None:
    controls, error = read_controls("ns/app", annotations)
    assert controls.paused is paused
    assert (error is not None) is unreadable
    if unreadable:
        assert any("annotations unreadable" in p.rule for p in controls.problems)


def test_a_pin_is_written_only_where_the_workload_is_not_at_it() -> None:
    controls, _ = read_controls("ns/app", {PAUSED_REPLICAS: "3"})
    assert pinned_write(controls, 1) == 3
    assert pinned_write(controls, 3) is None
    assert pinned_write(NO_CONTROLS, 1) is None
    assert pinned_write(TargetControls(paused=True), 1) is None
