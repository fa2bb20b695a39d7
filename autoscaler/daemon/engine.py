"""The daemon's decision loop around the core: events in, one ``DeploymentAutoscaler`` per
deployment, decisions out to an actuator. It holds no decision logic of its own; the
simulator drives the very same ``DeploymentAutoscaler``.

A deployment is decided as soon as an event makes its load outgrow its replicas (or brings
work to zero replicas), and on every tick otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

import structlog

from autoscaler.config.loader import PolicyFileError, PolicySet, Resolved
from autoscaler.core.decider import Decision, DecisionState
from autoscaler.core.deployment import DeploymentAutoscaler
from autoscaler.core.events import Event, Rejected
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import Actuator, StateStore

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
    ) -> None:
        self.policies = policies
        self.actuator = actuator
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.decide_unmatched = decide_unmatched
        self.deployments: dict[str, DeploymentAutoscaler] = {}
        self._resolved: dict[str, Resolved] = {}
        self._pending: dict[str, float] = {}  # deployment -> when its triggering event came in

    # -- events ----------------------------------------------------------------------------

    async def ingest(self, items: Sequence[Event | Rejected], received: float) -> tuple[int, int]:
        """Apply decoded messages; returns (accepted, rejected). Never raises on bad input."""
        accepted = rejected = 0
        for item in items:
            if isinstance(item, Rejected):
                rejected += 1
                self.metrics.rejected.labels(item.reason).inc()
                log.warning("event rejected", reason=item.reason, detail=item.detail)
                continue
            auto = await self._autoscaler(item.deployment, received)
            if auto is None:
                self.metrics.unmanaged.inc()
                continue
            accepted += 1
            outcome = auto.apply(item, received)
            self.metrics.events.labels(outcome).inc()
            current = self._current(item.deployment)
            if item.deployment not in self._pending and auto.needs_prompt_decision(current):
                self._pending[item.deployment] = received
        return accepted, rejected

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

    async def tick(self) -> None:
        for name in list(self.deployments):
            await self.decide(name)

    # -- deciding --------------------------------------------------------------------------

    async def decide(self, name: str) -> Decision | None:
        auto = self.deployments.get(name)
        if auto is None:
            return None
        observed = await self.actuator.observe(name)
        if observed is None:
            # Never seen by the actuator: start from the deployment's floor.
            observed = (auto.settings.min_replicas, auto.settings.min_replicas)
        current, ready = observed
        decision = auto.decide(self.clock(), current, ready)
        if decision.replicas < current and not self.store.healthy:
            # Without persisted state a successor could not honour this decision's delays:
            # hold, and say so. Scaling up stays allowed (it never strands work).
            decision = replace(
                decision,
                replicas=current,
                notes=(*decision.notes, "state store down: no scale-down"),
            )
            self.metrics.scale_downs_refused.labels(name).inc()
        self.metrics.decisions.labels(name).inc()
        self.metrics.replicas.labels(name, "desired").set(decision.replicas)
        self.metrics.replicas.labels(name, "current").set(current)
        self.metrics.replicas.labels(name, "ready").set(ready)
        if decision.changed:
            direction = "up" if decision.replicas > current else "down"
            self.metrics.scale_changes.labels(name, direction).inc()
        else:
            log.debug(
                "decision", deployment=name, replicas=decision.replicas, reason=decision.reason
            )
        await self.actuator.apply(name, decision)
        await self.store.save(name, auto.decider.policy_name, decision.state)
        return decision

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
        # A restarted (or newly assigned) daemon continues the stored state: the same
        # stabilization history and policy state, so it neither repeats nor undoes a step.
        state = await self.store.load(name, resolved.settings.policy, policy.initial_state())
        auto = DeploymentAutoscaler(
            name, resolved.settings, policy, resolved.settings.policy, now, state
        )
        self.deployments[name] = auto
        self._resolved[name] = resolved
        self.metrics.deployments.set(len(self.deployments))
        return auto

    def forget(self, name: str) -> None:
        """Stop deciding for ``name`` (its partition moved to another daemon). Its state is in
        the state store; this daemon loads it again if the deployment comes back."""
        self.deployments.pop(name, None)
        self._resolved.pop(name, None)
        self._pending.pop(name, None)
        self.metrics.deployments.set(len(self.deployments))

    # -- policy reload ---------------------------------------------------------------------

    def swap_policies(self, policies: PolicySet) -> None:
        """Use a new, fully validated policy set. Deployments whose settings did not change
        keep everything; others get the new settings and policy, keeping their decision state
        when the policy stayed the same, and lose load history only if a window changed size
        (the warm-up guardrail then holds them until the new window fills)."""
        now = self.clock()
        for name in list(self.deployments):
            if not self.decide_unmatched and not policies.manages(name):
                del self.deployments[name]
                self._resolved.pop(name, None)
                log.info("deployment no longer managed", deployment=name)
                continue
            try:
                new = policies.resolve(name)
            except PolicyFileError as exc:  # a combination of rules that does not validate
                log.error(
                    "policy does not resolve; keeping the old one", deployment=name, error=str(exc)
                )
                continue
            old = self._resolved[name]
            if new.settings == old.settings:
                continue
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
                auto.state
                if same_policy
                else DecisionState(policy.initial_state(), auto.state.guard)
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
            log.info("deployment settings changed", deployment=name, policy=new.settings.policy)
        self.policies = policies
        self.metrics.deployments.set(len(self.deployments))
