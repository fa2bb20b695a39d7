"""``metric``: scale on a named signal, the way KEDA's prometheus scaler does.

KEDA hands the query's value to the HPA as an ``External`` metric of type ``AverageValue``, so
the HPA wants ``ceil(value / threshold)`` replicas; at zero replicas KEDA activates only when the
value exceeds ``activationThreshold``. The HPA's default 300 s scale-down stabilization is the
framework's guardrail (``scale_down_delay_s``, 300 s by default for this policy), as in
``queue``. The value is the latest ``signal`` event of
the configured name (the daemon's Prometheus source writes them); with no reading, or none for
the tracker's signal TTL, the policy holds the current replicas rather than guess, as the HPA
does when an external metric cannot be fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Le

from autoscaler.core.events import SIGNAL_NAME_PATTERN
from autoscaler.core.policies._keda import KEDA_STABILIZATION_S, average_value_replicas
from autoscaler.core.policy import Pattern, PolicyParams, PolicySpec, Recommendation
from autoscaler.core.settings import MAX_LOAD
from autoscaler.core.snapshot import Snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricParams(PolicyParams):
    signal: Annotated[str, Pattern(SIGNAL_NAME_PATTERN)] = "prometheus"
    """the signal to scale on (a daemon prometheus_queries entry's `signal`)"""
    # A floor, not just > 0: a value / 1e-300 is infinite and the replica count overflows.
    target_per_replica: Annotated[float, Ge(0.001), Le(MAX_LOAD)] | None = None
    """signal value one replica carries (KEDA's threshold); null = parallelism x
    target_utilization, for a signal that counts requests"""
    activation_threshold: Annotated[float, Ge(0), Le(MAX_LOAD)] = 0.0
    """at zero replicas, scale up only once the value exceeds this"""


@dataclass(frozen=True, slots=True)
class MetricState:
    """None: the reading is the whole decision (stabilization is the guardrails')."""


class MetricPolicy:
    def __init__(self, params: MetricParams) -> None:
        self.params = params

    def initial_state(self) -> MetricState:
        return MetricState()

    def recommend(self, snapshot: Snapshot, previous: MetricState) -> Recommendation[MetricState]:
        params = self.params
        current = snapshot.current_replicas
        value = snapshot.signals.get(params.signal)
        if value is None:
            # Holding is itself the recommendation, so it goes into the guardrails' delay
            # history: once readings return, a drop below `current` waits out the delay.
            return Recommendation(
                current,
                previous,
                f"metric: no {params.signal!r} reading (none yet, or none for the signal TTL): "
                f"holding {current}",
            )
        target = params.target_per_replica or snapshot.settings.target_per_replica
        raw = average_value_replicas(value, target, current, params.activation_threshold)
        reason = f"metric: {params.signal} {value:g} at {target:g}/replica -> {raw}"
        return Recommendation(raw, previous, reason)


SPEC = PolicySpec(
    name="metric",
    params_type=MetricParams,
    factory=MetricPolicy,
    summary="KEDA prometheus-scaler style: a named signal's value per replica",
    # The HPA's default scale-down stabilization, which KEDA leaves in force.
    settings_defaults={"scale_down_delay_s": KEDA_STABILIZATION_S},
    moved_params={
        "scale_down_stabilization_s": "moved: the stabilization is the deployment setting "
        "scale_down_delay_s (300 s by default for this policy), not a param"
    },
)
