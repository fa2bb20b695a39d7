"""Framework guardrails, wrapped around every policy's recommendation.

Order matters and is fixed here, not in policies, so a plug-in cannot weaken it:

1. bounds: ``[min_replicas, max_replicas]`` narrowed by active schedule rules;
2. stabilization (the delays): a scale-up happens only to the smallest recommendation of the
   last ``scale_up_delay_s``, a scale-down only to the largest of the last
   ``scale_down_delay_s`` (the HPA's stabilization windows; Knative's scale-down-delay);
3. intervals: at least ``scale_up_interval_s`` between two scale-ups and
   ``scale_down_interval_s`` between two scale-downs (the HPA's ``periodSeconds``); a step held
   back is not lost, the next decision after the interval takes it in full, so a ramp is
   followed in a few large steps rather than one replica at a time;
4. rate limits: at most ``ceil(max_scale_up_rate x ready)`` and at least
   ``floor(current / max_scale_down_rate)`` per decision (Knative's semantics);
5. warm-up: no scale-down before a full ``window_s`` of history, so a daemon that has just
   started (or a trace that starts mid-traffic) does not read "no data" as "no load"; and none
   while the decision's state cannot be persisted (``Snapshot.state_persisted``): a successor
   could not honour its delays. Scaling up stays allowed: it never strands work;
6. scale to zero only with no work in flight or queued and ``scale_to_zero_grace_s`` idle;
7. activation: work arriving at zero replicas gets one at once, bypassing delays and rates;
8. bounds again, last: bounds always win over delays and rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoscaler.core.schedule import active_at
from autoscaler.core.settings import Settings
from autoscaler.core.snapshot import Snapshot
from autoscaler.core.window import History, prune_history, record, window_max, window_min

STORE_DOWN_NOTE = "state store down: no scale-down"
"""The note of a scale-down refused because the state could not be persisted."""


@dataclass(frozen=True, slots=True)
class GuardState:
    recommendations: History = ()
    """Run-length history of bounded policy recommendations, for the delay windows."""
    last_scale_up_ts: float | None = None
    """When the count last went up: the start of the scale-up interval."""
    last_scale_down_ts: float | None = None
    """When the count last went down: the start of the scale-down interval."""
    policy_at: float | None = None
    """When the policy was last consulted: the start of the decision period."""
    policy_replicas: int | None = None
    """What it recommended then, repeated until the period is over."""


@dataclass(frozen=True, slots=True)
class Guarded:
    replicas: int
    state: GuardState
    notes: tuple[str, ...]
    """One note per guardrail that changed the number, in the order applied."""
    settled: bool = True
    """No guardrail but the bounds changed the number: none is counting time down (a delay,
    an interval, the warm-up, the grace) or waiting on something else (ready replicas for a
    rate, the store), so the same inputs later give the same number."""


def bounds(settings: Settings, now: float) -> tuple[int, int]:
    """Effective ``(min, max)`` at ``now``: schedule minimums raise the floor, maximums lower
    the ceiling; if two active rules conflict the floor wins (availability first)."""
    low, high = settings.min_replicas, settings.max_replicas
    for rule in settings.schedule:
        if active_at(rule.window, now):
            if rule.min_replicas is not None:
                low = max(low, rule.min_replicas)
            if rule.max_replicas is not None:
                high = min(high, rule.max_replicas)
    return low, max(low, high)


def apply_guardrails(snapshot: Snapshot, recommended: int, state: GuardState) -> Guarded:
    settings = snapshot.settings
    now = snapshot.now
    current = snapshot.current_replicas
    notes: list[str] = []
    low, high = bounds(settings, now)

    replicas = min(max(recommended, low), high)
    if replicas != recommended:
        notes.append(f"bounds [{low}, {high}]")
    bounded = len(notes)

    up_delay, down_delay = settings.scale_up_delay_s, settings.scale_down_delay_s
    history = state.recommendations
    if not history:
        # Before the first decision the deployment ran at `current`: a restart must not
        # be taken as permission to drop the stabilization that was in force.
        history = ((now, current),)
    history = record(history, now, replicas, max(up_delay, down_delay))
    if replicas > current and up_delay > 0:
        # Prune to this delay's own window first: `record` keeps the longer of the two delays,
        # and `window_min`/`window_max` count an entry superseded at the very instant the
        # window starts, so without it the boundary would depend on the *other* delay.
        lowest = window_min(prune_history(history, now - up_delay), now, up_delay)
        if lowest is not None and lowest < replicas:
            replicas = max(current, lowest)
            notes.append(f"scale_up_delay_s={up_delay:g} (min {lowest} over window)")
    elif replicas < current and down_delay > 0:
        highest = window_max(prune_history(history, now - down_delay), now, down_delay)
        if highest is not None and highest > replicas:
            replicas = min(current, highest)
            notes.append(f"scale_down_delay_s={down_delay:g} (max {highest} over window)")

    replicas = _intervals(settings, state, now, current, replicas, notes)

    if settings.max_scale_up_rate is not None and replicas > current:
        ceiling = math.ceil(settings.max_scale_up_rate * max(1, snapshot.ready_replicas))
        if replicas > ceiling:
            replicas = max(current, ceiling)
            notes.append(f"max_scale_up_rate={settings.max_scale_up_rate:g} (<= {ceiling})")
    if settings.max_scale_down_rate is not None and replicas < current:
        floor = math.floor(current / settings.max_scale_down_rate)
        if replicas < floor:
            replicas = floor
            notes.append(f"max_scale_down_rate={settings.max_scale_down_rate:g} (>= {floor})")

    if replicas < current and snapshot.history_s < settings.window_s:
        replicas = current
        notes.append(f"warming up ({snapshot.history_s:.0f}s of {settings.window_s:g}s history)")
    if replicas < current and not snapshot.state_persisted:
        replicas = current
        notes.append(STORE_DOWN_NOTE)

    if replicas == 0 and current > 0:
        if snapshot.has_work:
            replicas = 1
            notes.append("work in flight or queued: keep 1")
        elif snapshot.idle_s < settings.scale_to_zero_grace_s:
            replicas = 1
            notes.append(
                f"scale_to_zero_grace_s={settings.scale_to_zero_grace_s:g} "
                f"(idle {snapshot.idle_s:.0f}s)"
            )
    if replicas == 0 and snapshot.has_work:
        replicas = 1
        notes.append("activation: work arrived at zero")

    # Every note after the first bounds and before the last one is a guardrail that holds.
    settled = len(notes) == bounded
    final = min(max(replicas, low), high)
    if final != replicas:
        # Never to 0 here: with work present `replicas` is already >= 1 and `high` >= 1.
        notes.append(f"bounds [{low}, {high}]")

    return Guarded(
        replicas=final,
        state=GuardState(
            recommendations=history,
            last_scale_up_ts=now if final > current else state.last_scale_up_ts,
            last_scale_down_ts=now if final < current else state.last_scale_down_ts,
            policy_at=state.policy_at,
            policy_replicas=state.policy_replicas,
        ),
        notes=tuple(notes),
        settled=settled,
    )


def _intervals(
    settings: Settings,
    state: GuardState,
    now: float,
    current: int,
    replicas: int,
    notes: list[str],
) -> int:
    """Hold a step that comes sooner than its interval after the last step the same way."""
    if replicas > current:
        interval, last, way = settings.scale_up_interval_s, state.last_scale_up_ts, "up"
    elif replicas < current:
        interval, last, way = settings.scale_down_interval_s, state.last_scale_down_ts, "down"
    else:
        return replicas
    if interval > 0 and last is not None and 0 <= now - last < interval:
        notes.append(f"scale_{way}_interval_s={interval:g} (last {now - last:.0f}s ago)")
        return current
    return replicas
