"""The daemon's decision loop around the core: events in, one ``Managed`` record per
deployment (its ``DeploymentAutoscaler`` and the engine's bookkeeping for it), decisions out to
an actuator. It holds no decision logic of its own; the
simulator drives the very same ``DeploymentAutoscaler``.

A deployment is decided as soon as an event makes its load outgrow its replicas (or brings
work to zero replicas), and on every tick otherwise, except while it is at rest (``next_due``:
then only once per 1 to 2 x ``IDLE_RECHECK_S``, or at the first tick after an event); but
only by the daemon holding its lease.
Events for a deployment leased elsewhere are still tracked (a rebalance may bring it here),
and the deployment's saved state is loaded each time its lease is newly taken.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from autoscaler.config.loader import PolicyFileError, PolicySet, Resolved
from autoscaler.core.decider import Decision, DecisionState
from autoscaler.core.deployment import DeploymentAutoscaler
from autoscaler.core.events import Event, Rejected
from autoscaler.core.guardrails import STORE_DOWN_NOTE, GuardState
from autoscaler.core.measures import RATE_HISTORY_S
from autoscaler.daemon.config import LimitsConfig
from autoscaler.daemon.metrics import DaemonMetrics, DeploymentCounts
from autoscaler.daemon.ports import (
    ACCEPTED_OUTCOMES,
    Actuator,
    Delivery,
    IngestResult,
    Leases,
    Observed,
    Saved,
    SaveResult,
    StateStore,
)
from autoscaler.daemon.ratelog import RateLimitedLog

log = structlog.get_logger("autoscaler.engine")


@dataclass(slots=True)
class Managed:
    """Everything the engine keeps for one deployment, in one record: created together,
    dropped together (Knative's one ``scalerRunner`` per managed object)."""

    auto: DeploymentAutoscaler
    resolved: Resolved
    """The settings in force, as resolved from the files and the target's overrides."""
    seen: float
    """When its last event came in (its creation, before any)."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Policy keys its target overrides (its annotations), as resolved into its settings."""
    rejected_overrides: Mapping[str, Any] | None = None
    """The last override set found invalid: reported and validated once, not per decision."""
    retry_lease_at: float | None = None
    """When to ask again for a lease another daemon held."""
    last_saved: Saved | None = None
    """What this daemon last persisted, to skip writing the same again."""
    saved_replicas: int | None = None
    """The replicas the last owner saved, for an actuator that cannot observe the target."""
    counts: DeploymentCounts = field(default_factory=DeploymentCounts)
    """Its own metric series (decisions, changes, replicas), exported at each scrape."""
    due: float = 0.0
    """When a tick must next decide it (0: at every tick). Set past the next tick only for a
    deployment at rest (see ``Engine.next_due``), which then waits on the engine's heap;
    any event for it sets it back to 0."""


class Engine:
    def __init__(
        self,
        policies: PolicySet,
        actuator: Actuator,
        store: StateStore,
        metrics: DaemonMetrics,
        clock: Callable[[], float],
        *,
        decide_unmatched: bool,
        leases: Leases,
        lease_retry_s: float = 1.0,
        limits: LimitsConfig | None = None,
    ) -> None:
        self.policies = policies
        self.limits = limits if limits is not None else LimitsConfig()
        self.actuator = actuator
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.decide_unmatched = decide_unmatched
        self.leases = leases
        self.lease_retry_s = lease_retry_s
        self._taking_lease: set[str] = set()  # deployments whose saved state is loading
        self._deciding: set[str] = set()  # deployments with a decision under way
        self.managed: dict[str, Managed] = {}
        # Which deployments a tick decides: every one in ``_active`` (in the order they came),
        # and those in ``_resting`` whose recheck is due, taken off a heap of (due, name).
        self._active: dict[str, None] = {}
        self._resting: list[tuple[float, str]] = []
        self._pending: dict[str, float] = {}  # deployment -> when its triggering event came in
        self._next_eviction_at = -float("inf")
        self._reject_log = RateLimitedLog(log, clock)
        metrics.per_deployment(self._series)
        self._error_log = RateLimitedLog(log, clock)

    def _series(self) -> list[tuple[str, DeploymentCounts]]:
        # A copy: a scrape must not see the records change under it.
        return [(name, record.counts) for name, record in self.managed.items()]

    # -- events ----------------------------------------------------------------------------

    async def ingest(self, items: Sequence[Event | Rejected], received: float) -> IngestResult:
        """Apply decoded messages received at ``received``. Never raises on bad input.

        Refused before the tracker (counted in ``autoscaler_events_rejected_total{reason}``):
        what did not decode; events whose ``ts`` is further than ``max_event_skew_s`` from
        ``received`` either way (``skewed``: a sample a year ahead would make every real one
        after it "stale", and one from 1970 would be applied as merely late); and events that
        would make a deployment tracked beyond ``max_deployments``. The simulator replays old
        traces through the core directly, on its own clock, and is not subject to this."""
        # The hot path of Kafka ingest (over a hundred thousand events a second): events are
        # first grouped by deployment, so that per event there is only the tracker's own work
        # and per deployment the rest (its record, its load picture, whether it needs a
        # decision now; see LoadTracker.apply_batch). Outcomes are counted here and added to
        # the metric once per batch (a labelled counter's lookup and lock cost more than
        # applying the event).
        result = IngestResult()
        outcomes = result.outcomes
        skew = self.limits.max_event_skew_s
        earliest, latest = received - skew, received + skew
        managed = self.managed
        groups: dict[str, tuple[Managed, list[Event]]] = {}
        try:
            for item in items:
                if isinstance(item, Rejected):
                    self._reject(result, item.reason, item.detail)
                    continue
                if not earliest <= item.ts <= latest:
                    self._reject(
                        result,
                        "skewed",
                        f"ts {item.ts:.0f} is {item.ts - received:+.0f} s from the receive time"
                        f" (limits.max_event_skew_s: {skew:g})",
                    )
                    continue
                name = item.deployment
                group = groups.get(name)
                if group is None:
                    record = managed.get(name)
                    if record is None:
                        record = self._admit(name, received, result)
                        if record is None:
                            continue
                    group = groups[name] = (record, [])
                group[1].append(item)
            pending = self._pending
            for name, (record, events) in groups.items():
                auto = record.auto
                auto.apply_batch(events, received, outcomes)
                record.seen = received
                if record.due:
                    self._wake(name, record)
                if name not in pending and auto.needs_prompt_decision(self._current(auto)):
                    pending[name] = received
        finally:
            # Also when something raised half-way: what was applied is counted.
            for label, count in outcomes.items():
                self.metrics.events.labels(label).inc(count)
                if label in ACCEPTED_OUTCOMES:
                    result.accepted += count
                else:
                    result.ignored += count
            for reason, count in result.reasons.items():
                self.metrics.rejected.labels(reason).inc(count)
            if result.unmanaged:
                self.metrics.unmanaged.inc(result.unmanaged)
        return result

    def _admit(self, name: str, received: float, result: IngestResult) -> Managed | None:
        """The record for a deployment an event names for the first time, or None (counted in
        ``result``) when it is not managed here or no more may be tracked."""
        if not self.manages(name):
            result.unmanaged += 1
            return None
        if len(self.managed) >= self.limits.max_deployments:
            self._reject(
                result,
                "too_many_deployments",
                f"{name}: already tracking {len(self.managed)} deployments"
                " (limits.max_deployments)",
            )
            return None
        record = self._record(name, received)
        if record is None:
            result.unmanaged += 1
        return record

    async def deliver(self, items: Sequence[Event | Rejected], received: float) -> Delivery:
        """The front door: apply ``items`` and decide the deployments they made pending."""
        result = await self.ingest(items, received)
        return Delivery(result, await self.decide_pending())

    def tracks(self, deployment: str) -> bool:
        return deployment in self.managed

    @property
    def deployments(self) -> dict[str, DeploymentAutoscaler]:
        """Each tracked deployment's autoscaler (a copy, for reading: tests, benchmarks)."""
        return {name: record.auto for name, record in self.managed.items()}

    @property
    def store_healthy(self) -> bool:
        return self.store.healthy

    def _reject(self, result: IngestResult, reason: str, detail: str) -> None:
        result.reject(reason, detail)
        self._reject_log.warning("event rejected", reason=reason, detail=detail)

    def count_rejected(self, reason: str, detail: str) -> IngestResult:
        """A whole body refused before any event was decoded (too deep, too many events):
        counted and logged like a rejected event."""
        result = IngestResult()
        self._reject(result, reason, detail)
        self.metrics.rejected.labels(reason).inc()
        return result

    def in_flight(self, deployment: str, request_id: str) -> bool:
        """Whether this daemon tracks ``request_id`` as running on ``deployment``."""
        record = self.managed.get(deployment)
        return record is not None and record.auto.tracker.is_in_flight(request_id)

    async def decide_pending(self) -> list[tuple[str, Decision]]:
        """Decide every deployment whose picture changed enough since the last call."""
        pending, self._pending = self._pending, {}
        decisions = []
        for index, (name, received) in enumerate(pending.items()):
            if index and index % self.TICK_SLICE == 0:
                # One body can make thousands of deployments pending (see tick).
                await asyncio.sleep(0)
            decision = await self.decide(name)
            if decision is not None:
                self.metrics.event_to_decision.observe(max(0.0, self.clock() - received))
                decisions.append((name, decision))
        return decisions

    TICK_SLICE = 50
    """Deployments decided per slice of a tick before the loop gets a turn."""

    async def tick(self) -> None:
        await self.evict_idle()
        now = self.clock()
        # Resting deployments whose recheck has come wake up; the others cost nothing here.
        resting, managed = self._resting, self.managed
        while resting and resting[0][0] <= now:
            due, name = heapq.heappop(resting)
            record = managed.get(name)
            if record is not None and record.due == due:  # not woken or untracked meanwhile
                self._wake(name, record)
        for decided, name in enumerate(list(self._active)):
            if decided and decided % self.TICK_SLICE == 0:
                # A tick over a thousand deployments takes ~100 ms of CPU; without a turn for
                # the loop every event arriving meanwhile waits for all of it (the reaction
                # benchmark's p99 tail).
                await asyncio.sleep(0)
            if name in self.managed:  # a hand-off may have run in between
                await self.decide(name)

    def _wake(self, name: str, record: Managed) -> None:
        """Back to being decided at every tick (an event came, settings changed, or its
        recheck is due). Its heap entry, if any, is left to go stale (``due`` no longer
        matches it)."""
        record.due = 0.0
        self._active[name] = None

    def _rest(self, name: str, record: Managed, due: float) -> None:
        """Decided by the ticks again only at ``due`` (or at the first event before)."""
        record.due = due
        self._active.pop(name, None)
        heapq.heappush(self._resting, (due, name))
        if len(self._resting) > 2 * len(self.managed) + 1024:
            # Wakings leave stale entries behind; drop them now and then.
            self._resting = [
                (d, n)
                for d, n in self._resting
                if (r := self.managed.get(n)) is not None and r.due == d
            ]
            heapq.heapify(self._resting)

    IDLE_RECHECK_S = 10.0
    """How long a deployment at rest goes at least undecided by the ticks (at most twice
    this): what bounds how late an outside change to it (replicas scaled by hand, a policy
    state that fades with time) is noticed. Events for it end the rest at once."""

    def next_due(self, auto: DeploymentAutoscaler, decision: Decision, now: float) -> float:
        """When the ticks must next decide ``auto`` after ``decision``: at every tick (0)
        unless it is at rest. At rest means: the decision kept the count and no guardrail but
        the bounds held anything back (``Decision.settled``: no delay, interval or grace is
        counting down), the deployment has no schedule (whose edges are times of their own),
        and it has had no work for longer
        than every window and the arrival history reach back (so no rate or mean it reads
        can still fall). Then only time-driven policy state could change the answer, and
        the recheck bounds that."""
        settings = auto.settings
        if (
            decision.replicas != decision.current
            or not decision.settled
            or settings.schedule
            or auto.tracker.idle_for(now) < max(settings.window_s, RATE_HISTORY_S)
        ):
            return 0.0
        # Spread over [1, 2) x the recheck by name: deployments that came to rest in one tick
        # must not all be rechecked in one tick again (10,000 of them take a second).
        spread = zlib.crc32(auto.name.encode()) / 2**32
        return now + self.IDLE_RECHECK_S * (1.0 + spread)

    # -- deciding --------------------------------------------------------------------------

    async def decide(self, name: str) -> Decision | None:
        """Decide and act for ``name``, if this daemon holds its lease (None otherwise)."""
        if name in self._deciding:
            # A tick and an event-driven decision can meet at an await (the state save, the
            # actuator): two would both act on one count. The second is made once the first
            # has finished, from its outcome.
            self._pending.setdefault(name, self.clock())
            return None
        self._deciding.add(name)
        try:
            return await self._decide(name)
        except Exception as exc:
            # One deployment's failure (a plug-in policy's bug, an actuator error) must not
            # stop the ticker and with it every other deployment: counted, logged, and tried
            # again at the next tick.
            self.metrics.decision_errors.inc()
            self._error_log.warning(
                "decision failed; retried at the next tick",
                deployment=name,
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
            return None
        finally:
            self._deciding.discard(name)

    async def _decide(self, name: str) -> Decision | None:
        record = self.managed.get(name)
        if record is None:
            return None
        auto = record.auto
        observed = await self.actuator.observe(name)
        if observed is not None and not observed.actionable:
            # Not a target the actuator will touch (absent from the cluster, or paused or
            # pinned by ops): keep tracking its events, decide nothing, hold no lease.
            return None
        if observed is not None and observed.overrides != record.overrides:
            auto = self._override(name, record, observed.overrides)
        fence = await self._lease(name, record)
        if fence is None:
            return None
        if observed is None:
            # Never seen by the actuator: start from what the last owner decided, if it
            # saved that, else from the deployment's floor.
            saved_replicas = record.saved_replicas
            base = saved_replicas if saved_replicas is not None else auto.settings.min_replicas
            observed = Observed(base, base)
        current, ready = observed.current, observed.ready
        before = auto.state
        # Without persisted state (or a checked lease) a successor could not honour this
        # decision's delays: the guardrails refuse a scale-down, and say so.
        persisted = fence != 0 and self.store.healthy
        decision = auto.decide(self.clock(), current, ready, persisted)
        counts = record.counts
        if STORE_DOWN_NOTE in decision.notes:
            counts.scale_downs_refused += 1
        saved = Saved(decision.state, decision.replicas, fence)
        if saved == record.last_saved:
            # Nothing a successor needs has changed (a steady deployment between ticks):
            # skip the write. The lease is still checked locally before every decision.
            result = SaveResult.SAVED
        else:
            result = await self.store.save(name, auto.decider.policy_name, saved)
        if result is SaveResult.FENCED:
            # Another daemon took the deployment over since our lease was last renewed: its
            # decisions stand, ours is dropped unapplied.
            log.warning("lease lost: decision dropped", deployment=name, fence=fence)
            self.metrics.leases_lost.inc()
            self.leases.forget(name)
            return None
        if result is SaveResult.FAILED and decision.replicas < current:
            decision = self._refuse_scale_down(auto, decision, before.guard)
            counts.scale_downs_refused += 1
        if result is SaveResult.SAVED:
            record.last_saved = saved
        counts.decisions += 1
        counts.desired, counts.current, counts.ready = decision.replicas, current, ready
        if decision.changed:
            if decision.replicas > current:
                counts.scale_ups += 1
            else:
                counts.scale_downs += 1
        elif log.is_enabled_for(logging.DEBUG):
            # The reason is formatted lazily: not at all for the many unchanged decisions
            # when debug logging is off (about a microsecond each).
            log.debug(
                "decision", deployment=name, replicas=decision.replicas, reason=decision.reason
            )
        await self.actuator.apply(name, decision, fence)
        due = self.next_due(auto, decision, auto.last_decision_at or self.clock())
        if due:
            self._rest(name, record, due)
        elif record.due:
            self._wake(name, record)
        return decision

    @staticmethod
    def _refuse_scale_down(
        auto: DeploymentAutoscaler, decision: Decision, guard: GuardState
    ) -> Decision:
        # The scale-down did not happen, so its timestamp must not start a scale-down rate
        # window either; the recommendation history is real and is kept.
        state = replace(
            decision.state,
            guard=replace(decision.state.guard, last_scale_down_ts=guard.last_scale_down_ts),
        )
        refused = replace(
            decision,
            replicas=decision.current,
            state=state,
            notes=(*decision.notes, STORE_DOWN_NOTE),
            settled=False,
        )
        auto.state = state
        auto.last_decision = refused
        return refused

    async def _lease(self, name: str, record: Managed) -> int | None:
        """The fence to act under: a held lease's, 0 when the lease store cannot answer (act
        under the store-down rules), None when this daemon may not decide ``name`` now: another
        daemon holds the lease, or this one is still taking it."""
        if name in self._taking_lease:
            # A decision that came first is taking the lease and loading the state saved under
            # the last one. The store already counts the lease as held, but until that state
            # is in, deciding would start from min_replicas and fresh history and save it over
            # the previous owner's. That decision runs after the load with everything
            # ingested meanwhile, so this one is not needed.
            return None
        fence = self.leases.valid(name)
        if fence is not None:
            return fence
        self._taking_lease.add(name)
        try:
            return await self._take_lease(name, record)
        finally:
            self._taking_lease.discard(name)

    async def _take_lease(self, name: str, record: Managed) -> int | None:
        now = self.clock()
        auto = record.auto
        if record.retry_lease_at is not None and record.retry_lease_at > now:
            self.metrics.lease_denied.inc()
            return None
        lease = await self.leases.acquire(name)
        if lease.status == "elsewhere":
            record.retry_lease_at = now + self.lease_retry_s
            self.metrics.lease_denied.inc()
            log.debug("lease held elsewhere", deployment=name, holder=lease.holder)
            return None
        record.retry_lease_at = None
        if lease.status == "unknown":
            return 0
        # Newly taken: whoever held it before may have decided since this daemon last did.
        # Its saved state wins unless the last save was this daemon's own (then the memory
        # copy is at least as new).
        saved = await self.store.load(
            name, auto.decider.policy_name, auto.decider.policy.initial_state()
        )
        if saved is None and not self.store.healthy:
            # The load failed (the store marks itself unhealthy before returning, with no
            # await in between). No state is not "no saved state": deciding now would write
            # fresh state over the previous owner's. Not counting the lease as taken makes
            # the next decision (the next tick at the latest) take it again and retry.
            log.warning("saved state not loaded; deciding later", deployment=name)
            self.leases.forget(name)
            return None
        if (
            self.managed.get(name) is not record
            or record.auto is not auto
            or self.leases.valid(name) != lease.fence
        ):
            # Replaced (a policy reload or new overrides) or handed off while loading: what was
            # loaded belongs to an object no longer in use. The next decision starts over.
            self.leases.forget(name)
            return None
        if saved is not None and (
            record.last_saved is None or saved.fence != record.last_saved.fence
        ):
            auto.state = saved.state
            if saved.replicas is not None:
                record.saved_replicas = saved.replicas
            log.info("state loaded", deployment=name, fence=lease.fence, saved_fence=saved.fence)
        return lease.fence

    def _override(
        self, name: str, record: Managed, overrides: Mapping[str, Any]
    ) -> DeploymentAutoscaler:
        """Re-resolve ``name`` with the policy keys its target overrides. An invalid set is
        reported once and the settings in force stay (the previous overrides included)."""
        if overrides == record.rejected_overrides:
            return record.auto
        try:
            resolved = self.policies.resolve(name, overrides=overrides or None)
        except PolicyFileError as exc:
            record.rejected_overrides = overrides
            self.metrics.overrides_rejected.inc()
            log.error(
                "annotation overrides rejected; the settings in force stay",
                deployment=name,
                problems=[str(p) for p in exc.problems],
            )
            return record.auto
        record.rejected_overrides = None
        record.overrides = overrides
        self._resettle(record, resolved, self.clock())
        log.info("annotation overrides applied", deployment=name, overrides=dict(overrides))
        return record.auto

    def manages(self, name: str) -> bool:
        """Whether the policies decide for ``name`` at all."""
        return self.decide_unmatched or self.policies.manages(name)

    async def track(self, name: str) -> bool:
        """Start tracking a deployment no event has named yet (an actuator found it in the
        cluster), so that ticks decide it: an idle deployment still goes down to its floor.
        False when the policies do not manage it, or ``max_deployments`` are tracked."""
        if name not in self.managed and len(self.managed) >= self.limits.max_deployments:
            self._reject_log.warning(
                "not tracked: limits.max_deployments reached",
                deployment=name,
                tracked=len(self.managed),
            )
            return False
        return self._record(name, self.clock()) is not None

    @staticmethod
    def _current(auto: DeploymentAutoscaler) -> int:
        last = auto.last_decision
        return last.replicas if last is not None else auto.settings.min_replicas

    def _record(self, name: str, now: float) -> Managed | None:
        record = self.managed.get(name)
        if record is not None:
            return record
        if not self.decide_unmatched and not self.policies.manages(name):
            return None
        resolved = self.policies.resolve(name)
        policy = resolved.policy.build(resolved.params)
        # The stored state is loaded when the lease is taken (see _lease): a restarted or
        # newly assigned daemon continues it, so it neither repeats nor undoes a step.
        auto = DeploymentAutoscaler(name, resolved.core, policy, resolved.settings.policy, now)
        record = Managed(auto, resolved, seen=now)
        self.managed[name] = record
        self._active[name] = None
        self.metrics.deployments.set(len(self.managed))
        return record

    def forget(self, name: str) -> None:
        """Stop tracking ``name``. Its state is in the state store; this daemon loads it again
        if the deployment comes back."""
        self._untrack(name)
        self.leases.forget(name)

    def _untrack(self, name: str) -> None:
        self.managed.pop(name, None)
        self._active.pop(name, None)
        self._pending.pop(name, None)
        self.metrics.deployments.set(len(self.managed))

    async def hand_off(self, name: str) -> None:
        """Give ``name`` up (its partition moved to another daemon, or this one is stopping):
        its last decision is saved already; releasing the lease lets the next owner act at
        once instead of waiting for the lease to run out."""
        self._untrack(name)
        await self.leases.release(name)

    async def hand_off_all(self) -> None:
        for name in list(self.managed):
            await self.hand_off(name)

    # -- eviction --------------------------------------------------------------------------

    async def evict_idle(self) -> list[str]:
        """Forget deployments idle for ``limits.idle_ttl_s``: no event came in, no work was
        left (no request in flight, no queue, no busy replica; expired ones let go first), and
        the last decision, if any, settled at the floor. Each is handed off like one whose
        partition moved (lease released, state kept in the store, loaded again if it comes
        back), and its metric series go with its record. Runs on the tick, at most every
        ``idle_ttl_s / 10`` (at most a minute). Returns the names evicted."""
        now = self.clock()
        evicted: list[str] = []
        if now >= self._next_eviction_at:
            ttl = self.limits.idle_ttl_s
            self._next_eviction_at = now + min(60.0, ttl / 10)
            cutoff = now - ttl
            idle = [name for name, record in self.managed.items() if self._idle(record, cutoff)]
            for index, name in enumerate(idle):
                if index and index % self.TICK_SLICE == 0:
                    await asyncio.sleep(0)
                record = self.managed.get(name)
                # A hand-off awaits the lease store: an event may have come in meanwhile.
                if record is not None and self._idle(record, cutoff):
                    await self.hand_off(name)
                    evicted.append(name)
            if evicted:
                self.metrics.deployments_evicted.inc(len(evicted))
                log.info("idle deployments evicted", count=len(evicted), first=evicted[:5])
        return evicted

    def _idle(self, record: Managed, cutoff: float) -> bool:
        auto, name = record.auto, record.auto.name
        if record.seen > cutoff:
            return False
        if name in self._pending or name in self._taking_lease or name in self._deciding:
            return False
        if auto.tracker.idle_for(cutoff + self.limits.idle_ttl_s) < self.limits.idle_ttl_s:
            return False
        last = auto.last_decision
        # Never above its floor: a deployment still to come down is not idle yet, even if its
        # producers went quiet (the ticks bring it down first).
        return last is None or last.replicas == last.current <= auto.settings.min_replicas

    # -- policy reload ---------------------------------------------------------------------

    def swap_policies(self, policies: PolicySet) -> list[str]:
        """Use a new, fully validated policy set. Deployments whose settings did not change
        keep everything; others get the new settings and policy, keeping their decision state
        when the policy stayed the same, and lose load history only if a window changed size
        (the warm-up guardrail then holds them until the new window fills)."""
        now = self.clock()
        dropped: list[str] = []  # their leases are the caller's to release, after the swap
        for name, record in list(self.managed.items()):
            if not self.decide_unmatched and not policies.manages(name):
                self._untrack(name)
                dropped.append(name)
                log.info("deployment no longer managed", deployment=name)
                continue
            try:
                new = policies.resolve(name, overrides=record.overrides or None)
            except PolicyFileError as exc:  # a combination of rules that does not validate
                log.error(
                    "policy does not resolve; keeping the old one", deployment=name, error=str(exc)
                )
                continue
            if self._resettle(record, new, now):
                log.info("deployment settings changed", deployment=name, policy=new.settings.policy)
        self.policies = policies
        self.metrics.deployments.set(len(self.managed))
        return dropped

    def _resettle(self, record: Managed, new: Resolved, now: float) -> bool:
        """Give ``name`` new settings (a policy reload, or its target's overrides), keeping its
        decision state when the policy stayed the same, and its load history unless a window
        changed size (the warm-up guardrail then holds it until the new window fills).
        False when nothing changed."""
        old = record.resolved
        if new.settings == old.settings:
            return False
        auto = record.auto
        name = auto.name
        same_policy = new.settings.policy == old.settings.policy and new.params == old.params
        same_windows = (
            new.settings.window_s == old.settings.window_s
            and new.settings.panic_window_s == old.settings.panic_window_s
        )
        policy = new.policy.build(new.params)
        # The guardrails' history belongs to the framework and survives a policy change;
        # only the policy's own state starts over when the policy is a different one.
        state = (
            auto.state if same_policy else DecisionState(policy.initial_state(), auto.state.guard)
        )
        replacement = DeploymentAutoscaler(name, new.core, policy, new.settings.policy, now, state)
        if same_windows:
            replacement.tracker = auto.tracker
            auto.tracker.settings = replacement.settings
        replacement.last_decision = auto.last_decision
        record.auto = replacement
        record.resolved = new
        self._wake(name, record)  # new settings: the next tick decides it, at rest or not
        return True
