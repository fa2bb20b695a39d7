"""The daemon's decision loop around the core: events in, one ``DeploymentAutoscaler`` per
deployment, decisions out to an actuator. It holds no decision logic of its own; the
simulator drives the very same ``DeploymentAutoscaler``.

A deployment is decided as soon as an event makes its load outgrow its replicas (or brings
work to zero replicas), and on every tick otherwise; but only by the daemon holding its lease.
Events for a deployment leased elsewhere are still tracked (a rebalance may bring it here),
and the deployment's saved state is loaded each time its lease is newly taken.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from autoscaler.adapters.memory_state import LocalLeases
from autoscaler.config.loader import PolicyFileError, PolicySet, Resolved
from autoscaler.core.decider import Decision, DecisionState
from autoscaler.core.deployment import DeploymentAutoscaler
from autoscaler.core.events import Event, Rejected
from autoscaler.core.guardrails import GuardState
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import (
    Actuator,
    Leases,
    Observed,
    Saved,
    SaveResult,
    StateStore,
)

log = structlog.get_logger("autoscaler.engine")


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
        leases: Leases | None = None,
        lease_retry_s: float = 1.0,
    ) -> None:
        self.policies = policies
        self.actuator = actuator
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.decide_unmatched = decide_unmatched
        self.leases: Leases = leases if leases is not None else LocalLeases()
        self.lease_retry_s = lease_retry_s
        self._retry_lease_at: dict[str, float] = {}
        self._last_saved: dict[str, Saved] = {}
        self._saved_replicas: dict[str, int] = {}
        self.deployments: dict[str, DeploymentAutoscaler] = {}
        self._resolved: dict[str, Resolved] = {}
        self._pending: dict[str, float] = {}  # deployment -> when its triggering event came in
        # Policy keys a target overrides (its annotations), as resolved into its settings, and
        # the last set found invalid (so it is reported and validated once, not per decision).
        self._overrides: dict[str, Mapping[str, Any]] = {}
        self._rejected_overrides: dict[str, Mapping[str, Any]] = {}

    # -- events ----------------------------------------------------------------------------

    async def ingest(self, items: Sequence[Event | Rejected], received: float) -> tuple[int, int]:
        """Apply decoded messages; returns (accepted, rejected). Never raises on bad input."""
        # The hot path of Kafka ingest (tens of thousands of events a second): per event only
        # the tracker's own work. Outcomes are counted here and added to the metric once per
        # batch (a labelled counter's lookup and lock cost more than applying the event), and
        # a known deployment is found without the coroutine that creating one needs.
        accepted = rejected = unmanaged = 0
        outcomes: dict[str, int] = {}
        try:
            for item in items:
                if isinstance(item, Rejected):
                    rejected += 1
                    self.metrics.rejected.labels(item.reason).inc()
                    log.warning("event rejected", reason=item.reason, detail=item.detail)
                    continue
                name = item.deployment
                auto = self.deployments.get(name)
                if auto is None:
                    auto = await self._autoscaler(name, received)
                    if auto is None:
                        unmanaged += 1
                        continue
                accepted += 1
                outcome = auto.apply(item, received)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                if name not in self._pending and auto.needs_prompt_decision(self._current(name)):
                    self._pending[name] = received
        finally:
            # Also when something raised half-way: what was applied is counted.
            for label, count in outcomes.items():
                self.metrics.events.labels(label).inc(count)
            if unmanaged:
                self.metrics.unmanaged.inc(unmanaged)
        return accepted, rejected

    def in_flight(self, deployment: str, request_id: str) -> bool:
        """Whether this daemon tracks ``request_id`` as running on ``deployment``."""
        auto = self.deployments.get(deployment)
        return auto is not None and auto.tracker.is_in_flight(request_id)

    async def decide_pending(self) -> list[tuple[str, Decision]]:
        """Decide every deployment whose picture changed enough since the last call."""
        pending, self._pending = self._pending, {}
        decisions = []
        for name, received in pending.items():
            decision = await self.decide(name)
            if decision is not None:
                self.metrics.event_to_decision.observe(max(0.0, self.clock() - received))
                decisions.append((name, decision))
        return decisions

    TICK_SLICE = 50
    """Deployments decided per slice of a tick before the loop gets a turn."""

    async def tick(self) -> None:
        for index, name in enumerate(list(self.deployments)):
            if index and index % self.TICK_SLICE == 0:
                # A tick over a thousand deployments takes ~100 ms of CPU; without a turn for
                # the loop every event arriving meanwhile waits for all of it (the reaction
                # benchmark's p99 tail).
                await asyncio.sleep(0)
            if name in self.deployments:  # a hand-off may have run in between
                await self.decide(name)

    # -- deciding --------------------------------------------------------------------------

    async def decide(self, name: str) -> Decision | None:
        """Decide and act for ``name``, if this daemon holds its lease (None otherwise)."""
        auto = self.deployments.get(name)
        if auto is None:
            return None
        observed = await self.actuator.observe(name)
        if observed is not None and not observed.actionable:
            # Not a target the actuator will touch (absent from the cluster, or paused or
            # pinned by ops): keep tracking its events, decide nothing, hold no lease.
            return None
        if observed is not None and observed.overrides != self._overrides.get(name, {}):
            auto = self._override(name, auto, observed.overrides)
        fence = await self._lease(name, auto)
        if fence is None:
            return None
        if observed is None:
            # Never seen by the actuator: start from what the last owner decided, if it
            # saved that, else from the deployment's floor.
            base = self._saved_replicas.get(name, auto.settings.min_replicas)
            observed = Observed(base, base)
        current, ready = observed.current, observed.ready
        before = auto.state
        decision = auto.decide(self.clock(), current, ready)
        if decision.replicas < current and (fence == 0 or not self.store.healthy):
            # Without persisted state (or a checked lease) a successor could not honour this
            # decision's delays: hold, and say so. Scaling up stays allowed (it never strands
            # work).
            decision = self._refuse_scale_down(name, auto, decision, before.guard)
        saved = Saved(decision.state, decision.replicas, fence)
        if saved == self._last_saved.get(name):
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
            decision = self._refuse_scale_down(name, auto, decision, before.guard)
        if result is SaveResult.SAVED:
            self._last_saved[name] = saved
        self.metrics.decisions.labels(name).inc()
        self.metrics.replicas.labels(name, "desired").set(decision.replicas)
        self.metrics.replicas.labels(name, "current").set(current)
        self.metrics.replicas.labels(name, "ready").set(ready)
        if decision.changed:
            direction = "up" if decision.replicas > current else "down"
            self.metrics.scale_changes.labels(name, direction).inc()
        elif log.is_enabled_for(logging.DEBUG):
            # The reason is formatted lazily: not at all for the many unchanged decisions
            # when debug logging is off (about a microsecond each).
            log.debug(
                "decision", deployment=name, replicas=decision.replicas, reason=decision.reason
            )
        await self.actuator.apply(name, decision, fence)
        return decision

    def _refuse_scale_down(
        self, name: str, auto: DeploymentAutoscaler, decision: Decision, guard: GuardState
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
            notes=(*decision.notes, "state store down: no scale-down"),
        )
        auto.state = state
        auto.last_decision = refused
        self.metrics.scale_downs_refused.labels(name).inc()
        return refused

    async def _lease(self, name: str, auto: DeploymentAutoscaler) -> int | None:
        """The fence to act under: a held lease's, 0 when the lease store cannot answer (act
        under the store-down rules), None when another daemon holds the lease."""
        fence = self.leases.valid(name)
        if fence is not None:
            return fence
        now = self.clock()
        if self._retry_lease_at.get(name, now) > now:
            self.metrics.lease_denied.inc()
            return None
        lease = await self.leases.acquire(name)
        if lease.status == "elsewhere":
            self._retry_lease_at[name] = now + self.lease_retry_s
            self.metrics.lease_denied.inc()
            log.debug("lease held elsewhere", deployment=name, holder=lease.holder)
            return None
        self._retry_lease_at.pop(name, None)
        if lease.status == "unknown":
            return 0
        # Newly taken: whoever held it before may have decided since this daemon last did.
        # Its saved state wins unless the last save was this daemon's own (then the memory
        # copy is at least as new).
        saved = await self.store.load(
            name, auto.decider.policy_name, auto.decider.policy.initial_state()
        )
        if saved is not None and (
            name not in self._last_saved or saved.fence != self._last_saved[name].fence
        ):
            auto.state = saved.state
            if saved.replicas is not None:
                self._saved_replicas[name] = saved.replicas
            log.info("state loaded", deployment=name, fence=lease.fence, saved_fence=saved.fence)
        return lease.fence

    def _override(
        self, name: str, auto: DeploymentAutoscaler, overrides: Mapping[str, Any]
    ) -> DeploymentAutoscaler:
        """Re-resolve ``name`` with the policy keys its target overrides. An invalid set is
        reported once and the settings in force stay (the previous overrides included)."""
        if overrides == self._rejected_overrides.get(name):
            return auto
        try:
            resolved = self.policies.resolve(name, overrides=overrides or None)
        except PolicyFileError as exc:
            self._rejected_overrides[name] = overrides
            self.metrics.overrides_rejected.inc()
            log.error(
                "annotation overrides rejected; the settings in force stay",
                deployment=name,
                problems=[str(p) for p in exc.problems],
            )
            return auto
        self._rejected_overrides.pop(name, None)
        self._overrides[name] = overrides
        self._resettle(name, resolved, self.clock())
        log.info("annotation overrides applied", deployment=name, overrides=dict(overrides))
        return self.deployments[name]

    def manages(self, name: str) -> bool:
        """Whether the policies decide for ``name`` at all."""
        return self.decide_unmatched or self.policies.manages(name)

    async def track(self, name: str) -> bool:
        """Start tracking a deployment no event has named yet (an actuator found it in the
        cluster), so that ticks decide it: an idle deployment still goes down to its floor.
        False when the policies do not manage it."""
        return await self._autoscaler(name, self.clock()) is not None

    def _current(self, name: str) -> int:
        auto = self.deployments[name]
        last = auto.last_decision
        return last.replicas if last is not None else auto.settings.min_replicas

    async def _autoscaler(self, name: str, now: float) -> DeploymentAutoscaler | None:
        auto = self.deployments.get(name)
        if auto is not None:
            return auto
        if not self.decide_unmatched and not self.policies.manages(name):
            return None
        resolved = self.policies.resolve(name)
        policy = resolved.policy.build(resolved.params)
        # The stored state is loaded when the lease is taken (see _lease): a restarted or
        # newly assigned daemon continues it, so it neither repeats nor undoes a step.
        auto = DeploymentAutoscaler(name, resolved.settings, policy, resolved.settings.policy, now)
        self.deployments[name] = auto
        self._resolved[name] = resolved
        self.metrics.deployments.set(len(self.deployments))
        return auto

    def forget(self, name: str) -> None:
        """Stop tracking ``name``. Its state is in the state store; this daemon loads it again
        if the deployment comes back."""
        self._untrack(name)
        self.leases.forget(name)

    def _untrack(self, name: str) -> None:
        self.deployments.pop(name, None)
        self._resolved.pop(name, None)
        self._pending.pop(name, None)
        self._retry_lease_at.pop(name, None)
        self._last_saved.pop(name, None)
        self._saved_replicas.pop(name, None)
        self._overrides.pop(name, None)
        self._rejected_overrides.pop(name, None)
        self.metrics.deployments.set(len(self.deployments))

    async def hand_off(self, name: str) -> None:
        """Give ``name`` up (its partition moved to another daemon, or this one is stopping):
        its last decision is saved already; releasing the lease lets the next owner act at
        once instead of waiting for the lease to run out."""
        self._untrack(name)
        await self.leases.release(name)

    async def hand_off_all(self) -> None:
        for name in list(self.deployments):
            await self.hand_off(name)

    # -- policy reload ---------------------------------------------------------------------

    def swap_policies(self, policies: PolicySet) -> list[str]:
        """Use a new, fully validated policy set. Deployments whose settings did not change
        keep everything; others get the new settings and policy, keeping their decision state
        when the policy stayed the same, and lose load history only if a window changed size
        (the warm-up guardrail then holds them until the new window fills)."""
        now = self.clock()
        dropped: list[str] = []  # their leases are the caller's to release, after the swap
        for name in list(self.deployments):
            if not self.decide_unmatched and not policies.manages(name):
                self._untrack(name)
                dropped.append(name)
                log.info("deployment no longer managed", deployment=name)
                continue
            try:
                new = policies.resolve(name, overrides=self._overrides.get(name) or None)
            except PolicyFileError as exc:  # a combination of rules that does not validate
                log.error(
                    "policy does not resolve; keeping the old one", deployment=name, error=str(exc)
                )
                continue
            if self._resettle(name, new, now):
                log.info("deployment settings changed", deployment=name, policy=new.settings.policy)
        self.policies = policies
        self.metrics.deployments.set(len(self.deployments))
        return dropped

    def _resettle(self, name: str, new: Resolved, now: float) -> bool:
        """Give ``name`` new settings (a policy reload, or its target's overrides), keeping its
        decision state when the policy stayed the same, and its load history unless a window
        changed size (the warm-up guardrail then holds it until the new window fills).
        False when nothing changed."""
        old = self._resolved[name]
        if new.settings == old.settings:
            return False
        auto = self.deployments[name]
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
        replacement = DeploymentAutoscaler(
            name, new.settings, policy, new.settings.policy, now, state
        )
        if same_windows:
            replacement.tracker = auto.tracker
            auto.tracker.settings = new.settings
        replacement.last_decision = auto.last_decision
        self.deployments[name] = replacement
        self._resolved[name] = new
        return True
