"""What a workload's annotations tell the actuator: ops' controls (pause, pin, policy-key
overrides; the format is ``autoscaler.config.annotations``), read so that no annotation can
cost a watch, and announced once when they change."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import structlog

from autoscaler.config.annotations import NO_CONTROLS, PAUSED, TargetControls, parse_controls
from autoscaler.config.loader import Problem

log = structlog.get_logger("autoscaler.actuator.kubernetes")


def read_controls(key: str, annotations: Any) -> tuple[TargetControls, BaseException | None]:
    """The controls of the workload ``key``, and the error when its annotations defeated the
    parser (then the controls are ``fallback_controls``)."""
    try:
        return parse_controls(key, annotations), None
    except Exception as exc:  # RecursionError included: one annotation must not cost a watch
        return fallback_controls(key, annotations, exc), exc


def fallback_controls(key: str, annotations: Any, exc: BaseException) -> TargetControls:
    """Controls for annotations the parser could not handle: none, except a readable
    ``paused`` (an unreadable neighbour must not un-pause a target ops paused, nor pause one)."""
    problem = Problem(
        f"{key} (annotations)", "", None, f"annotations unreadable, ignored: {type(exc).__name__}"
    )
    kept: TargetControls = NO_CONTROLS
    if isinstance(annotations, Mapping) and isinstance(annotations.get(PAUSED), str):
        with contextlib.suppress(Exception):
            kept = parse_controls(key, {PAUSED: annotations[PAUSED]})
    return replace(kept, problems=(*kept.problems, problem))


def announce(key: str, controls: TargetControls, old: TargetControls | None) -> None:
    """Log the controls of a workload seen for the first time or whose controls changed:
    each ignored annotation, and a pause."""
    if old is not None and controls == old:
        return
    for problem in controls.problems:
        log.error("annotation ignored", target=key, problem=str(problem))
    if controls.held:
        log.info(
            "target paused by annotation", target=key, pinned_replicas=controls.paused_replicas
        )


def pinned_write(controls: TargetControls, replicas: int) -> int | None:
    """The replicas a pin asks to be written, when the workload is not at them."""
    pinned = controls.paused_replicas
    return pinned if pinned is not None and pinned != replicas else None
