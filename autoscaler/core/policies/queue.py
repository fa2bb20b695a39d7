"""``queue``: KEDA-style queue scaling.

The metric is the backlog: queued requests plus, by default, those in flight (as KEDA's SQS and
RabbitMQ scalers count unacknowledged messages), divided by a target per replica. At zero
replicas nothing happens until the backlog exceeds ``activation_threshold`` (KEDA's
``activationQueueLength``). KEDA drives an HPA, whose default scale-down stabilization is
300 s: the framework's guardrail does that (``scale_down_delay_s``, 300 s by default for this
policy), so it does not flap on an instantaneous metric. KEDA polls every 30 s; set
``decision_period_s`` (a deployment setting: the policy is consulted at most that often) to
replay that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Le

from autoscaler.core.policies._keda import KEDA_STABILIZATION_S, average_value_replicas
from autoscaler.core.policy import PolicyParams, PolicySpec, Recommendation
from autoscaler.core.settings import MAX_LOAD
from autoscaler.core.snapshot import Snapshot


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueParams(PolicyParams):
    # A floor, not just > 0: a backlog / 1e-300 is infinite and the replica count overflows.
    target_per_replica: Annotated[float, Ge(0.001), Le(MAX_LOAD)] | None = None
    """backlog per replica; null = parallelism x target_utilization"""
    activation_threshold: Annotated[float, Ge(0), Le(MAX_LOAD)] = 0.0
    """at zero replicas, scale up only once backlog exceeds this"""
    include_in_flight: bool = True
    """count in-flight requests as backlog"""


@dataclass(frozen=True, slots=True)
class QueueState:
    """None: the backlog is the whole decision (stabilization and polling are the
    framework's: ``scale_down_delay_s`` and ``decision_period_s``)."""


class QueuePolicy:
    def __init__(self, params: QueueParams) -> None:
        self.params = params

    def initial_state(self) -> QueueState:
        return QueueState()

    def recommend(self, snapshot: Snapshot, previous: QueueState) -> Recommendation[QueueState]:
        params = self.params
        target = params.target_per_replica or snapshot.settings.target_per_replica
        backlog = snapshot.queue_length + (snapshot.in_flight if params.include_in_flight else 0)

        raw = average_value_replicas(
            backlog, target, snapshot.current_replicas, params.activation_threshold
        )
        reason = f"queue: backlog {backlog:g} at {target:g}/replica -> {raw}"
        return Recommendation(raw, previous, reason)


SPEC = PolicySpec(
    name="queue",
    params_type=QueueParams,
    factory=QueuePolicy,
    summary="KEDA-style backlog per replica with an activation threshold",
    # The HPA's default scale-down stabilization, which KEDA leaves in force.
    settings_defaults={"scale_down_delay_s": KEDA_STABILIZATION_S},
    moved_params={
        "scale_down_stabilization_s": "moved: the stabilization is the deployment setting "
        "scale_down_delay_s (300 s by default for this policy), not a param",
        "polling_interval_s": "moved: KEDA's polling interval is the deployment setting "
        "decision_period_s, not a param",
    },
)
