"""Per-target controls that ops set as annotations on a Deployment or StatefulSet, read once
here at the boundary.

    autoscaler.dev/paused: "true"          # leave the target alone (KEDA's paused)
    autoscaler.dev/paused-replicas: "3"    # set it to 3 and hold it there (KEDA's paused-replicas)
    autoscaler.dev/min_replicas: "2"       # override a policy-file key for this target only
    autoscaler.dev/params: '{"target_per_replica": 8}'

Override keys are the policy-file keys themselves, so one vocabulary serves both; values are
YAML scalars (or a flow mapping for ``params``). Overrides are validated by the policy loader
together with the rules they refine; this module only splits and parses them, and reports
what it cannot parse instead of raising: whoever can annotate one workload must not be able
to break the watch that serves them all. Values are read with the bounded YAML reader (a
5,000-deep ``params`` is a problem, not a ``RecursionError``), ``paused-replicas`` must be
ASCII digits in range (``"²"`` passes ``str.isdigit()``), and ``policy`` may name only a
registered policy, never an import path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from autoscaler.config.models import SETTINGS_KEYS
from autoscaler.config.problems import PolicyFileError, Problem
from autoscaler.config.yaml_safe import YamlLimits, load_yaml

PREFIX = "autoscaler.dev/"
PAUSED = PREFIX + "paused"
PAUSED_REPLICAS = PREFIX + "paused-replicas"

OVERRIDABLE: frozenset[str] = SETTINGS_KEYS - {"schedule", "instance", "slo"}
"""Scalar policy keys (and ``params``). Schedules and instance constraints stay in the files:
they are reviewed policy, not a per-target knob."""

MAX_PAUSED_REPLICAS: Final = 100_000
_PAUSED_REPLICAS = re.compile(r"[0-9]{1,6}")  # ASCII only: int() also takes "٣" and "²" fails
# Kubernetes caps all of an object's annotations at 256 KiB together; one value needs far less.
ANNOTATION_LIMITS: Final = YamlLimits(max_bytes=16 * 1024, max_depth=16, max_aliases=0)


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
            pinned = _paused_replicas(text)
            if pinned is None:
                rule = f"must be a whole number from 0 to {MAX_PAUSED_REPLICAS}"
                problems.append(Problem(where, key, text, rule))
            else:
                paused_replicas = pinned
        elif name in OVERRIDABLE:
            problem = _override(where, key, name, text, overrides)
            if problem is not None:
                problems.append(problem)
        else:
            known = sorted({"paused", "paused-replicas", *OVERRIDABLE})
            problems.append(Problem(where, key, text, f"unknown key (known: {', '.join(known)})"))
    return TargetControls(paused, paused_replicas, overrides, tuple(problems))


def _paused_replicas(text: str) -> int | None:
    stripped = text.strip()
    if not _PAUSED_REPLICAS.fullmatch(stripped):
        return None
    value = int(stripped)
    return value if value <= MAX_PAUSED_REPLICAS else None


def _override(
    where: str, key: str, name: str, text: str, overrides: dict[str, Any]
) -> Problem | None:
    """Parse one override into ``overrides``, or say why it cannot be."""
    try:
        value = load_yaml(text, key, ANNOTATION_LIMITS)
    except PolicyFileError as exc:
        return Problem(where, key, text, f"not a YAML value: {exc.problems[0].rule}")
    if name == "policy" and isinstance(value, str) and ":" in value:
        # Only ops' files may name an import path (and only one they allow-listed).
        return Problem(where, key, text, "must name a registered policy, not an import path")
    overrides[name] = value
    return None
