"""``kpa``: a port of the Knative Pod Autoscaler's decider as a pure function.

Knative's KPA sizes a revision from two averages of in-flight requests: a long *stable*
window and a short *panic* window. Normally the stable average decides. When the panic
average alone would call for at least ``panic_threshold`` times the ready pods, the decider
enters *panic mode*: it follows whichever average asks for more and never scales down until
a whole stable window has passed without the burst. Each decision is bounded by rate
limits relative to the ready pods, and an optional scale-down delay replays the largest
decision of the last ``scale_down_delay_s`` seconds.

``kpa_scale`` mirrors the Go ``autoscaler.Scale`` method of knative serving
(``pkg/autoscaler/scaling/autoscaler.go``) step for step, with the decider's mutable fields
moved into an immutable ``KpaState`` that is passed in and handed back. ``KpaPolicy`` adapts
it to this project's ``Policy`` contract: the observed values are the snapshot's stable and
panic load, the windows are the deployment's own ``window_s`` / ``panic_window_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated

from annotated_types import Ge, Gt, Le

from autoscaler.core.policy import PolicyParams, PolicySpec, Recommendation
from autoscaler.core.settings import MAX_LOAD, MAX_RATE, MAX_REPLICAS, MIN_PERIOD_S, Settings
from autoscaler.core.snapshot import Snapshot

KNATIVE_TICK_S = 2.0
"""Knative's decider tick (``tickInterval``)."""

DelayWindow = tuple[tuple[float, int], ...]
"""``(recorded_at, pods)`` pairs, oldest first, pods strictly decreasing: the only entries
that can still become the window's maximum (see ``_delay_window_record``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class KpaParams(PolicyParams):
    """Knative's autoscaler settings, with Knative's defaults."""

    panic_threshold: Annotated[float, Ge(1.1), Le(10.0)] = 2.0
    """panic when the panic window asks for this many times the ready pods (Knative's
    panic-threshold-percentage 200 = 2.0; Knative allows 110%..1000%)"""
    max_scale_up_rate: Annotated[float, Gt(1.0), Le(MAX_RATE)] = 1000.0
    """one decision asks for at most ceil(rate x ready pods)"""
    max_scale_down_rate: Annotated[float, Gt(1.0), Le(MAX_RATE)] = 2.0
    """one decision asks for at least floor(ready pods / rate)"""
    scale_down_delay_s: Annotated[float, Ge(0.0), Le(3600.0)] = 0.0
    """answer the largest decision of this many past seconds (0 = off)"""
    activation_scale: Annotated[int, Ge(1), Le(MAX_REPLICAS)] = 1
    """when scaling from zero (or any demand at all), ask for at least this many"""
    # A floor, not just > 0: load / 1e-300 is infinite and the replica count overflows.
    target_per_replica: Annotated[float, Ge(0.001), Le(MAX_LOAD)] | None = None
    """load one replica should carry; null = parallelism x target_utilization"""


@dataclass(frozen=True, slots=True)
class KpaSpec:
    """The fields of Knative's ``DeciderSpec`` the decider reads (plus the tick, which is a
    package constant in Knative and sizes the scale-down delay window's buckets)."""

    target_value: float
    """Observed units (concurrent requests) one pod should carry."""
    panic_threshold: float = 2.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    stable_window_s: float = 60.0
    scale_down_delay_s: float = 0.0
    activation_scale: int = 1
    reachable: bool = True
    """Knative only rate-limits scale-downs (and delays them) for revisions that receive
    traffic; this project always passes ``True``."""
    tick_s: float = 2.0


@dataclass(frozen=True, slots=True)
class KpaState:
    """What the Go decider keeps between calls, plus the tick bookkeeping of ``KpaPolicy``.

    Small on purpose: it is persisted between daemon restarts."""

    panic_time: float | None = None
    """Last time the panic window was over the threshold; ``None`` when not panicking."""
    max_panic_pods: int = 0
    """Largest count asked for during the current panic (panic never scales down)."""
    delay_window: DelayWindow = ()
    last_tick: float | None = None
    """When ``KpaPolicy`` last evaluated; ``None`` before the first call."""


@dataclass(frozen=True, slots=True)
class KpaScaleResult:
    """Knative's ``ScaleResult`` (desired count) with the intermediate numbers, so callers
    can explain a decision."""

    desired_pod_count: int
    stable_pods: int
    """ceil(observed stable / target), before limits."""
    panic_pods: int
    """ceil(observed panic / target), before limits."""
    desired_stable: int
    """``stable_pods`` within the rate limits, raised to the activation scale."""
    desired_panic: int
    max_scale_up: int
    max_scale_down: int
    panicking: bool
    undelayed_pod_count: int
    """The count before the scale-down delay window; differs while a delay holds."""


def kpa_initial_state(ready_pods: int, now: float) -> KpaState:
    """State of a freshly created decider (Knative's ``newAutoscaler``).

    With more than one pod ready the decider starts in panic mode, holding the current
    count: a restarted autoscaler has lost its metric history, and without this it would
    briefly read that as low load and scale down."""
    if ready_pods > 1:
        return KpaState(panic_time=now, max_panic_pods=ready_pods)
    return KpaState(max_panic_pods=max(ready_pods, 0))


def kpa_scale(
    spec: KpaSpec,
    state: KpaState,
    *,
    observed_stable: float,
    observed_panic: float,
    ready_pods: int,
    now: float,
) -> tuple[KpaScaleResult, KpaState]:
    """One decision of Knative's decider (``autoscaler.Scale``), without side effects.

    Returns the result and the state for the next call; ``state.last_tick`` is passed through
    untouched (it belongs to ``KpaPolicy``)."""
    # Rate limits are relative to the ready pods; at zero ready pods, count one so a
    # scale from zero may still go up to `rate` pods at once.
    ready = float(max(1, ready_pods))
    max_scale_up = math.ceil(spec.max_scale_up_rate * ready)
    # The ceil/floor pair guarantees progress: even a rate like 1.1 can add or remove a pod.
    max_scale_down = math.floor(ready / spec.max_scale_down_rate) if spec.reachable else 0

    stable_pods = math.ceil(observed_stable / spec.target_value)
    panic_pods = math.ceil(observed_panic / spec.target_value)
    desired_stable = min(max(stable_pods, max_scale_down), max_scale_up)
    desired_panic = min(max(panic_pods, max_scale_down), max_scale_up)

    # Activation scale only applies when there is some demand, so it never blocks
    # scale-to-zero.
    if spec.activation_scale > 1:
        if stable_pods > 0 and desired_stable < spec.activation_scale:
            desired_stable = spec.activation_scale
        if panic_pods > 0 and desired_panic < spec.activation_scale:
            desired_panic = spec.activation_scale

    # The threshold is judged on the unlimited panic count: a burst that the rate limit
    # hides is still a burst.
    over_threshold = panic_pods / ready >= spec.panic_threshold
    panic_time = state.panic_time
    max_panic_pods = state.max_panic_pods
    if over_threshold:
        # Entering or still in a burst: (re)start the stable window the burst must clear.
        panic_time = now
    elif panic_time is not None and panic_time + spec.stable_window_s < now:
        # A full stable window without the burst: it is now part of the stable average.
        panic_time = None
        max_panic_pods = 0

    desired = desired_stable
    if panic_time is not None:
        # The stable average can exceed the panic one (a burst that just ended inside the
        # short window); provision for whichever is larger, and never shrink while panicking.
        desired = max(desired_stable, desired_panic, max_panic_pods)
        max_panic_pods = desired

    undelayed = desired
    delay_window = state.delay_window
    if spec.scale_down_delay_s > 0 and spec.reachable:
        # An unreachable revision gets no traffic, so holding its pods would only waste them.
        delay_window = _delay_window_record(
            delay_window, now, desired, spec.scale_down_delay_s, spec.tick_s
        )
        desired = delay_window[0][1]

    result = KpaScaleResult(
        desired_pod_count=desired,
        stable_pods=stable_pods,
        panic_pods=panic_pods,
        desired_stable=desired_stable,
        desired_panic=desired_panic,
        max_scale_up=max_scale_up,
        max_scale_down=max_scale_down,
        panicking=panic_time is not None,
        undelayed_pod_count=undelayed,
    )
    new_state = replace(
        state,
        panic_time=panic_time,
        max_panic_pods=max_panic_pods,
        delay_window=delay_window,
    )
    return result, new_state


def _delay_window_record(
    window: DelayWindow, now: float, pods: int, delay_s: float, bucket_s: float
) -> DelayWindow:
    """Add ``pods`` at ``now`` to a sliding-maximum window (Knative's ``max.TimeWindow``).

    Time is cut into ``bucket_s`` buckets and the window spans ``ceil(delay_s / bucket_s)``
    of them, ending with the current one. Only a strictly decreasing run of entries is
    kept: an older entry not larger than a newer one can never be the maximum again, which
    keeps the persisted state tiny. The maximum is the first entry."""
    buckets = max(1, math.ceil(delay_s / bucket_s))
    bucket = math.floor(now / bucket_s)
    kept = list(window)
    while kept and kept[-1][1] <= pods:
        kept.pop()
    kept = [entry for entry in kept if bucket - math.floor(entry[0] / bucket_s) < buckets]
    if kept and math.floor(kept[-1][0] / bucket_s) == bucket:
        # Two decisions in one bucket: the bucket holds the larger (which is the kept one,
        # since smaller ones were popped above), now stamped with the later time.
        pods = max(pods, kept.pop()[1])
    kept.append((now, pods))
    return tuple(kept)


def _num(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


class KpaPolicy:
    """The ``kpa`` policy: ``kpa_scale`` on the snapshot's stable and panic load."""

    def __init__(self, params: KpaParams) -> None:
        self.params = params

    def initial_state(self) -> KpaState:
        # The ready count is unknown here; the first ``recommend`` seeds the panic state.
        return KpaState()

    def spec(self, settings: Settings) -> KpaSpec:
        p = self.params
        target = p.target_per_replica
        return KpaSpec(
            target_value=target if target is not None else settings.target_per_replica,
            panic_threshold=p.panic_threshold,
            max_scale_up_rate=p.max_scale_up_rate,
            max_scale_down_rate=p.max_scale_down_rate,
            stable_window_s=settings.window_s,
            scale_down_delay_s=p.scale_down_delay_s,
            activation_scale=p.activation_scale,
            reachable=True,
            # Knative's tick: the decision period the spec defaults to, which also cuts time
            # into the delay window's buckets (so never 0 here: now / 0 has no bucket; nor
            # below the files' shortest period, for settings built without them).
            tick_s=max(settings.decision_period_s, MIN_PERIOD_S)
            if settings.decision_period_s
            else KNATIVE_TICK_S,
        )

    def recommend(self, snapshot: Snapshot, previous: KpaState) -> Recommendation[KpaState]:
        now = snapshot.now
        current = previous
        # Knative decides on a fixed tick: the framework's decision period (2 s by default
        # for this policy) repeats the last recommendation between ticks.
        if current.last_tick is None:
            current = kpa_initial_state(snapshot.ready_replicas, now)

        if snapshot.history_s <= 0:
            # Knative returns "no valid scale" without data and the replica count stays.
            kept = snapshot.current_replicas
            return Recommendation(
                kept,
                replace(current, last_tick=now),
                f"kpa: no load observed yet; keeping current {kept}",
            )

        spec = self.spec(snapshot.settings)
        result, new_state = kpa_scale(
            spec,
            current,
            observed_stable=snapshot.stable_load,
            observed_panic=snapshot.panic_load,
            ready_pods=snapshot.ready_replicas,
            now=now,
        )
        desired = result.desired_pod_count
        return Recommendation(
            desired,
            replace(new_state, last_tick=now),
            _reason(spec, snapshot, result),
        )


def _reason(spec: KpaSpec, snapshot: Snapshot, result: KpaScaleResult) -> str:
    target = _num(spec.target_value)
    stable = f"stable {_num(snapshot.stable_load)} / target {target} -> {result.stable_pods}"
    if result.desired_stable != result.stable_pods:
        stable += f" (bounded to {result.desired_stable})"
    panic = f"panic {_num(snapshot.panic_load)} -> {result.panic_pods}"
    if result.desired_panic != result.panic_pods:
        panic += f" (bounded to {result.desired_panic})"
    mode = "panicking, no scale-down" if result.panicking else "not panicking"
    extra = ""
    if result.desired_pod_count != result.undelayed_pod_count:
        extra = (
            f", scale-down delay {_num(spec.scale_down_delay_s)} s holds "
            f"{result.desired_pod_count} over {result.undelayed_pod_count}"
        )
    return f"kpa: {stable}, {panic} ({mode}){extra}: {result.desired_pod_count}"


SPEC = PolicySpec(
    name="kpa",
    params_type=KpaParams,
    factory=KpaPolicy,
    summary="Knative Pod Autoscaler: stable/panic windows over concurrency, panic mode "
    "never scales down, rate limits and scale-down delay",
    settings_defaults={"decision_period_s": KNATIVE_TICK_S},
    moved_params={
        "tick_s": "moved: the tick is the deployment setting decision_period_s (2 s by "
        "default for this policy), not a param"
    },
)

__all__ = [
    "SPEC",
    "DelayWindow",
    "KpaParams",
    "KpaPolicy",
    "KpaScaleResult",
    "KpaSpec",
    "KpaState",
    "kpa_initial_state",
    "kpa_scale",
]
