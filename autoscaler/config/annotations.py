"""Per-target controls that ops set as annotations on a Deployment or StatefulSet, read once
here at the boundary.

    autoscaler.dev/paused: "true"          # leave the target alone (KEDA's paused)
    autoscaler.dev/paused-replicas: "3"    # set it to 3 and hold it there (KEDA's paused-replicas)
    autoscaler.dev/min_replicas: "2"       # override a policy-file key for this target only
    autoscaler.dev/params: '{"target_per_replica": 8}'

Override keys are the policy-file keys themselves, so one vocabulary serves both; values are
YAML scalars (or a flow mapping for ``params``). Overrides are validated by the policy loader
together with the rules they refine; this module only splits and parses them, and reports
what it cannot parse instead of raising.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from autoscaler.config.loader import Problem
from autoscaler.config.models import SETTINGS_KEYS

PREFIX = "autoscaler.dev/"
PAUSED = PREFIX + "paused"
PAUSED_REPLICAS = PREFIX + "paused-replicas"

OVERRIDABLE: frozenset[str] = SETTINGS_KEYS - {"schedule", "instance"}
"""Scalar policy keys (and ``params``). Schedules and instance constraints stay in the files:
they are reviewed policy, not a per-target knob."""


@dataclass(frozen=True, slots=True)
class TargetControls:
    paused: bool = False
    paused_replicas: int | None = None
    overrides: Mapping[str, Any] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()

    @property
    def held(self) -> bool:
        """Whether the autoscaler must not decide for the target (ops have paused or pinned it)."""
        return self.paused or self.paused_replicas is not None


NO_CONTROLS = TargetControls()


def parse_controls(target: str, annotations: Mapping[str, str]) -> TargetControls:
    """The controls in a target's annotations; an unparsable one is a problem and is ignored
    (a typo must not pause a target, nor un-pause it)."""
    if not any(key.startswith(PREFIX) for key in annotations):
        return NO_CONTROLS
    where = f"{target} (annotations)"
    problems: list[Problem] = []
    paused = False
    paused_replicas: int | None = None
    overrides: dict[str, Any] = {}
    for key, text in sorted(annotations.items()):
        if not key.startswith(PREFIX):
            continue
        name = key.removeprefix(PREFIX)
        if key == PAUSED:
            lowered = text.strip().lower()
            if lowered in ("true", "false"):
                paused = lowered == "true"
            else:
                problems.append(Problem(where, key, text, 'must be "true" or "false"'))
        elif key == PAUSED_REPLICAS:
            stripped = text.strip()
            if stripped.isdigit():
                paused_replicas = int(stripped)
            else:
                problems.append(Problem(where, key, text, "must be a whole number >= 0"))
        elif name in OVERRIDABLE:
            try:
                overrides[name] = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                problems.append(Problem(where, key, text, f"not a YAML value: {exc}"))
        else:
            known = sorted({"paused", "paused-replicas", *OVERRIDABLE})
            problems.append(Problem(where, key, text, f"unknown key (known: {', '.join(known)})"))
    return TargetControls(paused, paused_replicas, overrides, tuple(problems))
