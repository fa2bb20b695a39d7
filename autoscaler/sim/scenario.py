"""Scenario files: how the simulated world behaves (cold starts, service times, the SLO)."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from autoscaler.config.loader import PolicyFileError, Problem, problems_from
from autoscaler.config.models import FrozenModel
from autoscaler.paths import BUNDLED_SCENARIO


class ServiceTime(FrozenModel):
    """Service seconds of a request = base_s + tokens x per-token seconds. Traces that carry
    real durations (recorded request_finished events) use those instead."""

    base_s: float = Field(default=0.2, ge=0)
    per_context_token_s: float = Field(default=0.0, ge=0)
    per_generated_token_s: float = Field(default=0.02, ge=0)

    def seconds(self, context_tokens: int, generated_tokens: int) -> float:
        return (
            self.base_s
            + context_tokens * self.per_context_token_s
            + generated_tokens * self.per_generated_token_s
        )


class Scenario(FrozenModel):
    cold_start_s: float = Field(
        default=60.0, ge=0, description="request -> ready for a new replica"
    )
    slo_wait_s: float | None = Field(
        default=None,
        gt=0,
        description="a request meets the SLO if it starts within this; "
        "null = each deployment's own slo.wait_s from the policy file",
    )
    service_time: ServiceTime = Field(default_factory=ServiceTime)
    initial_replicas: int | None = Field(
        default=None, ge=0, description="ready at trace start; null = min_replicas"
    )
    tick_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="periodic decision interval (events also trigger decisions)",
    )


def load_scenario(path: Path | None) -> Scenario:
    """The scenario at ``path``, or the bundled default."""
    path = path or BUNDLED_SCENARIO
    name = str(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PolicyFileError([Problem(name, "", None, f"invalid YAML: {exc}")]) from exc
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise PolicyFileError(problems_from(exc, name, "", Scenario.model_fields)) from exc
