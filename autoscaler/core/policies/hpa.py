"""``hpa``: a port of the Kubernetes HorizontalPodAutoscaler (autoscaling/v2) as a pure function.

Two halves of the Go controller (``pkg/controller/podautoscaler``) are ported:

* the replica calculator's plain-metric path (``calcPlainMetricReplicas``): desired =
  ceil(usage ratio x pods with metrics), a tolerance band around the target, and the
  treatment of pods that report no metric (0 usage when scaling up, exactly the target when
  scaling down, then no change if that recomputation lands inside the tolerance or flips
  the direction);
* the controller's normalization with ``behavior`` (``normalizeDesiredReplicasWithBehaviors``):
  stabilization over the recent unstabilized recommendations, then rate limits from the
  scale events inside each policy's period, then min/max replicas.

The metric is the average concurrency per pod with an ``AverageValue`` target of
``parallelism x target_utilization``. Ready pods report ``stable_load / ready_replicas``
each; pods that exist but are not ready yet report nothing, i.e. they are the HPA's
*missing* pods. Every function below mirrors one Go function (named in its docstring) and
takes the time as an argument; ``HpaPolicy`` strings them together and keeps the Go
controller's maps (recommendations, scale-up and scale-down events) in an immutable state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Literal, NamedTuple

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen

from autoscaler.core.policy import PolicyParams, PolicySpec, Recommendation
from autoscaler.core.settings import MAX_REPLICAS
from autoscaler.core.snapshot import Snapshot

# --------------------------------------------------------------------------- parameters

HPA_SYNC_PERIOD_S = 15.0
"""kube-controller-manager's default ``--horizontal-pod-autoscaler-sync-period``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalingPolicy:
    """One rate limit (``HPAScalingPolicy``): change by at most ``value`` pods, or ``value``
    percent of the pods at the start of the period, within any ``period_s`` seconds."""

    type: Literal["Pods", "Percent"]
    # Kubernetes only asks for > 0 (an int32); a bound keeps `1 + value / 100` a float.
    value: Annotated[int, Gt(0), Le(MAX_REPLICAS)]
    # Kubernetes validates 0 < periodSeconds <= 1800.
    period_s: Annotated[int, Gt(0), Le(1800)]


Policies = Annotated[tuple[ScalingPolicy, ...], MinLen(1), MaxLen(10)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScalingRules:
    """``HPAScalingRules`` for one direction. ``select_policy`` picks the policy allowing the
    largest change (``Max``), the smallest (``Min``), or forbids this direction (``Disabled``)."""

    stabilization_window_s: Annotated[int, Ge(0), Le(3600)]
    policies: Policies
    select_policy: Literal["Max", "Min", "Disabled"] = "Max"


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleUpRules(ScalingRules):
    """Kubernetes' scale-up defaults: no stabilization; double or add 4 pods per 15 s,
    whichever is more."""

    stabilization_window_s: Annotated[int, Ge(0), Le(3600)] = 0
    policies: Policies = (
        ScalingPolicy(type="Percent", value=100, period_s=15),
        ScalingPolicy(type="Pods", value=4, period_s=15),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScaleDownRules(ScalingRules):
    """Kubernetes' scale-down defaults: the controller's 300 s stabilization window, then
    any reduction at once (100 % per 15 s)."""

    stabilization_window_s: Annotated[int, Ge(0), Le(3600)] = 300
    policies: Policies = (ScalingPolicy(type="Percent", value=100, period_s=15),)


@dataclass(frozen=True, slots=True, kw_only=True)
class HpaBehavior:
    scale_up: ScaleUpRules = field(default_factory=ScaleUpRules)
    scale_down: ScaleDownRules = field(default_factory=ScaleDownRules)


@dataclass(frozen=True, slots=True, kw_only=True)
class HpaParams(PolicyParams):
    """The HPA's knobs, with the Kubernetes defaults."""

    tolerance: Annotated[float, Ge(0.0), Lt(1.0)] = 0.1
    """no change while |1 - usage/target| <= tolerance (kube-controller-manager
    --horizontal-pod-autoscaler-tolerance)"""
    behavior: HpaBehavior = field(default_factory=HpaBehavior)
    """the HorizontalPodAutoscaler's `behavior`: `scale_up` and `scale_down` rules, each a
    `stabilization_window_s`, a `select_policy` and a list of `policies`"""


# --------------------------------------------------------------------------- state


@dataclass(frozen=True, slots=True)
class TimestampedRecommendation:
    """An unstabilized recommendation and when it was made (Go ``timestampedRecommendation``)."""

    replicas: int
    timestamp: float


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    """A scale the controller made (Go ``timestampedScaleEvent``): ``replica_change`` is the
    size of the step (positive, the direction is given by the list it is stored in)."""

    replica_change: int
    timestamp: float
    outdated: bool = False


@dataclass(frozen=True, slots=True)
class HpaState:
    """The Go controller's per-HPA maps plus the sync bookkeeping. Pruned on every sync to
    what can still matter (the longest window or period), so it stays small."""

    last_sync: float | None = None
    recommendations: tuple[TimestampedRecommendation, ...] = ()
    scale_up_events: tuple[ScaleEvent, ...] = ()
    scale_down_events: tuple[ScaleEvent, ...] = ()


# --------------------------------------------------------------------------- replica calculator


class MetricProposal(NamedTuple):
    replicas: int
    usage_ratio: float
    """Mean of the reporting pods over the target."""
    usage: float
    """Mean of the reporting pods (the HPA's reported current average value)."""
    adjusted_ratio: float | None
    """The ratio after filling in missing/unready pods; ``None`` when nothing was filled."""


def _ratio(values: Sequence[float], target: float) -> tuple[float, float]:
    # The Go code averages integer milli-values (truncating); our metric is a float, so the
    # mean is taken as is.
    usage = sum(values) / len(values)
    return usage / target, usage


def plain_metric_replicas(
    current_replicas: int,
    pod_values: Sequence[float],
    target_per_pod: float,
    tolerance: float,
    *,
    missing_pods: int = 0,
    unready_pods: int = 0,
) -> MetricProposal | None:
    """``ReplicaCalculator.calcPlainMetricReplicas`` for an ``AverageValue`` target.

    ``pod_values`` are the metrics of the pods that reported one (ready, not terminating);
    ``missing_pods`` exist but reported nothing; ``unready_pods`` are pending. Returns
    ``None`` when no pod reported (the Go code returns an error and the HPA does not scale).
    """
    if not pod_values:
        return None
    usage_ratio, usage = _ratio(pod_values, target_per_pod)
    scale_up_with_unready = unready_pods > 0 and usage_ratio > 1.0

    if not scale_up_with_unready and missing_pods == 0:
        if abs(1.0 - usage_ratio) <= tolerance:
            return MetricProposal(current_replicas, usage_ratio, usage, None)
        return MetricProposal(math.ceil(usage_ratio * len(pod_values)), usage_ratio, usage, None)

    values = list(pod_values)
    if missing_pods > 0:
        # Assume the worst for the direction we are heading: a scale-down must not count
        # silent pods as idle, a scale-up must not count them as busy. At exactly the target
        # neither applies and the silent pods are simply left out.
        if usage_ratio < 1.0:
            values += [target_per_pod] * missing_pods
        elif usage_ratio > 1.0:
            values += [0.0] * missing_pods
    if scale_up_with_unready:
        values += [0.0] * unready_pods

    new_ratio, _ = _ratio(values, target_per_pod)
    if (
        abs(1.0 - new_ratio) <= tolerance
        or (usage_ratio < 1.0 < new_ratio)
        or (usage_ratio > 1.0 > new_ratio)
    ):
        # The pessimistic fill-in made the change too small or reversed it: stay put.
        return MetricProposal(current_replicas, usage_ratio, usage, new_ratio)
    new_replicas = math.ceil(new_ratio * len(values))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        # Counting more pods than currentReplicas can turn "scale down" into a larger number.
        return MetricProposal(current_replicas, usage_ratio, usage, new_ratio)
    return MetricProposal(new_replicas, usage_ratio, usage, new_ratio)


def uniform_metric_replicas(
    current_replicas: int,
    ready_replicas: int,
    total_value: float,
    target_per_pod: float,
    tolerance: float,
) -> MetricProposal | None:
    """Our metric model fed to ``plain_metric_replicas``: each ready pod reports an equal
    share of ``total_value``; the ``current - ready`` pods still starting are missing.

    More ready pods than current ones are terminating: they still carry load (so the share
    divides by all ready pods) but, like the HPA's pods with a deletion timestamp, they do
    not count."""
    reporting = min(ready_replicas, current_replicas)
    if reporting <= 0:
        return None
    share = total_value / ready_replicas
    return plain_metric_replicas(
        current_replicas,
        [share] * reporting,
        target_per_pod,
        tolerance,
        missing_pods=current_replicas - reporting,
    )


# --------------------------------------------------------------------------- normalization


def stabilize_recommendation(
    recommendations: Sequence[TimestampedRecommendation],
    current_replicas: int,
    desired_replicas: int,
    *,
    scale_up_window_s: float,
    scale_down_window_s: float,
    now: float,
) -> tuple[int, tuple[TimestampedRecommendation, ...]]:
    """``HorizontalController.stabilizeRecommendationWithBehaviors``.

    A scale-up goes only as far as the *lowest* recommendation in the scale-up window, a
    scale-down only as far as the *highest* in the scale-down window; ``desired_replicas``
    takes part in both. Returns the stabilized count and the recommendation log with
    ``desired_replicas`` recorded: like the Go code, it overwrites the last entry too old
    for both windows, or appends when there is none."""
    up_cutoff = now - scale_up_window_s
    down_cutoff = now - scale_down_window_s
    up_recommendation = desired_replicas
    down_recommendation = desired_replicas
    obsolete_index: int | None = None
    for index, rec in enumerate(recommendations):
        if rec.timestamp > up_cutoff:
            up_recommendation = min(up_recommendation, rec.replicas)
        if rec.timestamp > down_cutoff:
            down_recommendation = max(down_recommendation, rec.replicas)
        if rec.timestamp < up_cutoff and rec.timestamp < down_cutoff:
            obsolete_index = index

    # Move the current count just inside [up, down]: no change unless every recent
    # recommendation agrees on the direction.
    recommendation = min(max(current_replicas, up_recommendation), down_recommendation)

    entry = TimestampedRecommendation(desired_replicas, now)
    log = list(recommendations)
    if obsolete_index is None:
        log.append(entry)
    else:
        log[obsolete_index] = entry
    return recommendation, tuple(log)


def replicas_change_per_period(
    period_s: float, scale_events: Sequence[ScaleEvent], now: float
) -> int:
    """``getReplicasChangePerPeriod``: the replicas added (or removed) in the last ``period_s``."""
    cutoff = now - period_s
    return sum(event.replica_change for event in scale_events if event.timestamp > cutoff)


def longest_policy_period(rules: ScalingRules) -> int:
    """``getLongestPolicyPeriod``."""
    return max((policy.period_s for policy in rules.policies), default=0)


def store_scale_event(
    scale_events: Sequence[ScaleEvent], replica_change: int, longest_period_s: float, now: float
) -> tuple[ScaleEvent, ...]:
    """``HorizontalController.storeScaleEvent`` for one direction: mark events older than
    the longest policy period as outdated, then reuse the last outdated slot for the new
    event (or append one)."""
    cutoff = now - longest_period_s
    marked = [
        ScaleEvent(e.replica_change, e.timestamp, True) if e.timestamp < cutoff else e
        for e in scale_events
    ]
    new_event = ScaleEvent(replica_change, now)
    outdated = [index for index, event in enumerate(marked) if event.outdated]
    if outdated:
        marked[outdated[-1]] = new_event
    else:
        marked.append(new_event)
    return tuple(marked)


def scale_up_limit(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """``calculateScaleUpLimitWithScalingRules``: the most replicas the scale-up policies
    allow now. Each policy measures from the count at the start of its period, rebuilt
    from the scale events inside that period."""
    if rules.select_policy == "Disabled":
        return current_replicas
    proposals: list[int] = []
    for policy in rules.policies:
        added = replicas_change_per_period(policy.period_s, scale_up_events, now)
        deleted = replicas_change_per_period(policy.period_s, scale_down_events, now)
        period_start = current_replicas - added + deleted
        if policy.type == "Pods":
            proposals.append(period_start + policy.value)
        else:
            # Rounded up so that a small percentage of a small count still adds a pod.
            proposals.append(math.ceil(period_start * (1 + policy.value / 100)))
    # "Min" picks the policy allowing the smallest change, which for scale-up is the lowest.
    return min(proposals) if rules.select_policy == "Min" else max(proposals)


def scale_down_limit(
    current_replicas: int,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    rules: ScalingRules,
    now: float,
) -> int:
    """``calculateScaleDownLimitWithBehaviors``: the fewest replicas the scale-down policies
    allow now (may be negative or above ``current_replicas``; the caller clamps)."""
    if rules.select_policy == "Disabled":
        return current_replicas
    proposals: list[int] = []
    for policy in rules.policies:
        added = replicas_change_per_period(policy.period_s, scale_up_events, now)
        deleted = replicas_change_per_period(policy.period_s, scale_down_events, now)
        period_start = current_replicas - added + deleted
        if policy.type == "Pods":
            proposals.append(period_start - policy.value)
        else:
            # int() truncates toward zero, as Go's int32() conversion does.
            proposals.append(int(period_start * (1 - policy.value / 100)))
    # "Min" picks the smallest change, which for scale-down is the highest count.
    return max(proposals) if rules.select_policy == "Min" else min(proposals)


def convert_desired_replicas_with_behavior_rate(
    current_replicas: int,
    desired_replicas: int,
    *,
    min_replicas: int,
    max_replicas: int,
    scale_up_rules: ScalingRules,
    scale_down_rules: ScalingRules,
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    now: float,
) -> tuple[int, str]:
    """``HorizontalController.convertDesiredReplicasWithBehaviorRate``: apply the rate limit
    and min/max in the direction of the change. Returns the count and the Go condition
    reason (``ScaleUpLimit``, ``TooManyReplicas``, ``ScaleDownLimit``, ``TooFewReplicas``
    or ``DesiredWithinRange``)."""
    if desired_replicas > current_replicas:
        # Events from a policy change can put the limit below the current count: hold
        # instead of scaling down on a scale-up.
        up_limit = max(
            scale_up_limit(
                current_replicas, scale_up_events, scale_down_events, scale_up_rules, now
            ),
            current_replicas,
        )
        if max_replicas > up_limit:
            maximum, reason = up_limit, "ScaleUpLimit"
        else:
            maximum, reason = max_replicas, "TooManyReplicas"
        if desired_replicas > maximum:
            return maximum, reason
    elif desired_replicas < current_replicas:
        down_limit = min(
            scale_down_limit(
                current_replicas, scale_up_events, scale_down_events, scale_down_rules, now
            ),
            current_replicas,
        )
        if min_replicas < down_limit:
            minimum, reason = down_limit, "ScaleDownLimit"
        else:
            minimum, reason = min_replicas, "TooFewReplicas"
        if desired_replicas < minimum:
            return minimum, reason
    return desired_replicas, "DesiredWithinRange"


class Normalized(NamedTuple):
    replicas: int
    stabilized: int
    """After stabilization, before rate limits and bounds."""
    condition: str
    recommendations: tuple[TimestampedRecommendation, ...]


def normalize_desired_replicas_with_behavior(
    current_replicas: int,
    desired_replicas: int,
    *,
    min_replicas: int,
    max_replicas: int,
    behavior: HpaBehavior,
    recommendations: Sequence[TimestampedRecommendation],
    scale_up_events: Sequence[ScaleEvent],
    scale_down_events: Sequence[ScaleEvent],
    now: float,
) -> Normalized:
    """``HorizontalController.normalizeDesiredReplicasWithBehaviors``: stabilize, then
    rate-limit and bound."""
    stabilized, log = stabilize_recommendation(
        recommendations,
        current_replicas,
        desired_replicas,
        scale_up_window_s=behavior.scale_up.stabilization_window_s,
        scale_down_window_s=behavior.scale_down.stabilization_window_s,
        now=now,
    )
    replicas, condition = convert_desired_replicas_with_behavior_rate(
        current_replicas,
        stabilized,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        scale_up_rules=behavior.scale_up,
        scale_down_rules=behavior.scale_down,
        scale_up_events=scale_up_events,
        scale_down_events=scale_down_events,
        now=now,
    )
    return Normalized(replicas, stabilized, condition, log)


# --------------------------------------------------------------------------- policy


class HpaPolicy:
    def __init__(self, params: HpaParams) -> None:
        self.params = params

    def initial_state(self) -> HpaState:
        return HpaState()

    def recommend(self, snapshot: Snapshot, previous: HpaState) -> Recommendation[HpaState]:
        params = self.params
        now = snapshot.now
        # The controller reconciles once per sync period: the framework's decision period
        # (15 s by default for this policy) repeats the last count in between.
        behavior = params.behavior
        settings = snapshot.settings
        current = snapshot.current_replicas
        min_replicas, max_replicas = settings.min_replicas, settings.max_replicas
        recommendations = previous.recommendations
        if previous.last_sync is None and not recommendations:
            # recordInitialRecommendation: the count found at the first sync counts as a
            # recommendation, so a fresh controller does not scale down at once.
            recommendations = (TimestampedRecommendation(current, now),)

        if current == 0 and min_replicas != 0:
            desired = 0
            reason = f"hpa: 0 replicas with min_replicas {min_replicas}: scaling disabled, keep 0"
        elif current > max_replicas:
            desired = max_replicas
            reason = f"hpa: {current} replicas above max_replicas {max_replicas}: {desired}"
        elif current < min_replicas:
            desired = min_replicas
            reason = f"hpa: {current} replicas below min_replicas {min_replicas}: {desired}"
        else:
            desired, reason, recommendations = self._from_metric(
                snapshot, recommendations, previous
            )

        up_events, down_events = previous.scale_up_events, previous.scale_down_events
        if desired > current:
            up_events = store_scale_event(
                up_events, desired - current, longest_policy_period(behavior.scale_up), now
            )
        elif desired < current:
            down_events = store_scale_event(
                down_events, current - desired, longest_policy_period(behavior.scale_down), now
            )

        # Entries past every window and period can never count again; the Go controller
        # keeps them as reusable slots, a persisted state is better off without them.
        window = max(
            behavior.scale_up.stabilization_window_s, behavior.scale_down.stabilization_window_s
        )
        period = max(
            longest_policy_period(behavior.scale_up), longest_policy_period(behavior.scale_down)
        )
        new_state = HpaState(
            last_sync=now,
            recommendations=tuple(r for r in recommendations if r.timestamp >= now - window),
            scale_up_events=tuple(e for e in up_events if e.timestamp >= now - period),
            scale_down_events=tuple(e for e in down_events if e.timestamp >= now - period),
        )
        return Recommendation(desired, new_state, reason)

    def _from_metric(
        self,
        snapshot: Snapshot,
        recommendations: tuple[TimestampedRecommendation, ...],
        previous: HpaState,
    ) -> tuple[int, str, tuple[TimestampedRecommendation, ...]]:
        params = self.params
        settings = snapshot.settings
        current = snapshot.current_replicas
        target = settings.target_per_replica
        load = snapshot.stable_load

        if current == 0:
            # Only reachable with min_replicas 0. Our load is measured outside the pods, so
            # it exists at zero pods; the HPA sizes such metrics (object/external) from zero
            # as ceil(usage / target), without tolerance.
            proposed = math.ceil(load / target)
            described = (
                f"hpa: load {load:.1f} at 0 replicas vs target {target:.2f}/pod: "
                f"metric wants {proposed}"
            )
        else:
            proposal = uniform_metric_replicas(
                current, snapshot.ready_replicas, load, target, params.tolerance
            )
            if proposal is None:
                return (
                    current,
                    f"hpa: no ready pod reports a metric (0 of {current} ready): keep {current}",
                    recommendations,
                )
            proposed = proposal.replicas
            reporting = min(snapshot.ready_replicas, current)
            described = (
                f"hpa: load {load:.1f} over {snapshot.ready_replicas} ready pods = "
                f"{proposal.usage:.2f}/pod vs target {target:.2f} (ratio {proposal.usage_ratio:.2f}"
            )
            ratio = proposal.usage_ratio
            if proposal.adjusted_ratio is not None:
                ratio = proposal.adjusted_ratio
                described += f", {current - reporting} starting pods counted -> {ratio:.2f}"
            if proposed == current and abs(1.0 - ratio) <= params.tolerance:
                described += f" within tolerance {params.tolerance:.2f})"
            elif proposed == current:
                described += ", would reverse direction)"
            else:
                described += ")"
            described += f": metric wants {proposed}"

        normalized = normalize_desired_replicas_with_behavior(
            current,
            proposed,
            min_replicas=settings.min_replicas,
            max_replicas=settings.max_replicas,
            behavior=params.behavior,
            recommendations=recommendations,
            scale_up_events=previous.scale_up_events,
            scale_down_events=previous.scale_down_events,
            now=snapshot.now,
        )
        if normalized.stabilized != proposed:
            described += f", stabilized {normalized.stabilized}"
        if normalized.replicas != normalized.stabilized:
            described += f", {normalized.condition} {normalized.replicas}"
        if normalized.replicas == current:
            described += f": keep {current}"
        else:
            described += f": {normalized.replicas}"
        return normalized.replicas, described, normalized.recommendations


SPEC = PolicySpec(
    name="hpa",
    params_type=HpaParams,
    factory=HpaPolicy,
    summary="Kubernetes HPA v2: ceil(ratio x pods) with tolerance, stabilization windows "
    "and per-period scaling policies",
    # kube-controller-manager's --horizontal-pod-autoscaler-sync-period.
    settings_defaults={"decision_period_s": HPA_SYNC_PERIOD_S},
    moved_params={
        "sync_period_s": "moved: the sync period is the deployment setting "
        "decision_period_s (15 s by default for this policy), not a param"
    },
)
