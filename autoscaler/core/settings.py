"""The settings a decision reads: plain frozen values, validated once, at the boundary.

``autoscaler.config`` validates the policy files into ``DeploymentSettings`` (the file model,
with its file-only keys: the policy's name, its raw params, the instance) and hands the core
``DeploymentSettings.core``, one of these. The core never sees the file model or pydantic.

The defaults here are the file format's defaults (the file model reads them from here, so
there is one copy), which lets a test or a replay build settings directly; nothing here
validates: a value that did not come through the file model is the caller's to vouch for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autoscaler.core.schedule import Window

# Upper bounds for every number a decision reads. Far above any real deployment, and low enough
# that no arithmetic on them can overflow a float or turn a loop into a stall. The file model
# and the policies' params bound their values by them.
MAX_REPLICAS = 100_000
MAX_PARALLELISM = 100_000
MAX_DURATION_S = 7 * 86_400.0
"""The longest duration any setting may name: a week."""
MAX_RATE = 1_000.0
MIN_WINDOW_S = 0.1
"""Windows cut time into buckets of at most a sixth of themselves; a window of 1e-300 s has
buckets no float clock can count (the first decision overflowed)."""
MAX_LOAD = 1e9
"""The largest load, queue length or signal value a target may name (events carry at most 1e9)."""
MIN_PERIOD_S = 0.01
"""The shortest decision period other than none: ``kpa`` cuts time into buckets of one period
(Knative's tick), and ``now / 1e-300`` has no bucket a float can count."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SloTarget:
    """``attainment`` of requests start within ``wait_s`` of arriving."""

    wait_s: float = 2.0
    attainment: float = 0.999


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleBound:
    """A schedule rule as the guardrails read it: while ``window`` holds, ``min_replicas``
    raises the floor and ``max_replicas`` lowers the ceiling."""

    window: Window
    min_replicas: int | None = None
    max_replicas: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """One deployment's effective settings, as every stage of a decision reads them. The
    meaning of each field is documented once, on the file model
    (``autoscaler.config.models.DeploymentSettings``) and in the policy-file schema."""

    min_replicas: int = 1
    max_replicas: int = 10
    parallelism: int = 1
    target_utilization: float = 0.7
    window_s: float = 60.0
    panic_window_s: float = 6.0
    scale_up_delay_s: float = 0.0
    scale_down_delay_s: float = 0.0
    scale_up_interval_s: float = 0.0
    scale_down_interval_s: float = 0.0
    scale_to_zero_grace_s: float = 30.0
    max_scale_up_rate: float | None = None
    max_scale_down_rate: float | None = None
    max_request_duration_s: float = 600.0
    decision_period_s: float = 0.0
    schedule: tuple[ScheduleBound, ...] = ()
    slo: SloTarget = field(default_factory=SloTarget)

    @property
    def target_per_replica(self) -> float:
        """Load one replica should carry: parallelism x target_utilization."""
        return self.parallelism * self.target_utilization
