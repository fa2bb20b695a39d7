"""The Kubernetes actuator: scales Deployments and StatefulSets through their ``scale``
subresource and watches them to know their current and ready replicas.

It is three parts behind the engine's ``Actuator`` port, and this module only joins them:

- the workload cache (``kube_cache``): one list-then-watch per kind and namespace keeps every
  workload's replicas, ready replicas, resourceVersion and controls; ``observe`` is a lookup
  in it, never a request;
- the scale writer (``kube_writer``): a decision that changes a target's replicas becomes its
  desired count, written by a few writer tasks as a guarded merge patch, surviving conflicts
  and backing off on refusals;
- the annotation handling (``kube_annotations``): ops pause a target, pin its replicas or
  override policy keys for it (``autoscaler.config.annotations``); a pin is written like a
  decision.

All three share one client and request budget (``kube_api``). Scope: the actuator only ever
writes to workloads it has seen in its watches and that the policies manage (``manages``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from kubernetes_asyncio import client as k8s

from autoscaler.adapters.kube_api import KINDS, Kind, KubeApi, api_client
from autoscaler.adapters.kube_cache import Workload, WorkloadCache
from autoscaler.adapters.kube_writer import ScaleWriter
from autoscaler.adapters.rate_budget import RequestBudget
from autoscaler.core.decider import Decision
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import Observed

log = structlog.get_logger("autoscaler.actuator.kubernetes")

NOT_A_TARGET = Observed(0, 0, actionable=False)

__all__ = ["KINDS", "NOT_A_TARGET", "Kind", "KubernetesActuator", "Workload", "api_client"]


class KubernetesActuator:
    def __init__(
        self,
        api: k8s.ApiClient | None,
        metrics: DaemonMetrics,
        *,
        namespaces: Sequence[str] = (),
        kinds: Sequence[Kind] = KINDS,
        budget: RequestBudget | None = None,
        dry_run: bool = False,
        manages: Callable[[str], bool] = lambda _name: True,
        writers: int = 4,
        field_manager: str = "autoscaler",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = KubeApi(api, metrics, budget)
        self.dry_run = dry_run
        self.manages = manages
        self.writers = writers
        self.cache = WorkloadCache(
            self.api, namespaces=namespaces, kinds=kinds, on_pinned=self._pinned, clock=clock
        )
        self.writer = ScaleWriter(self.api, self.cache, field_manager=field_manager, clock=clock)
        self.synced = self.cache.synced
        """Set once every watch has listed its scope: before that, an absent target may
        merely not have been read yet."""
        self._would: dict[str, int] = {}  # dry run: the last change logged per target
        self._closed = asyncio.Event()

    @property
    def on_target(self) -> Callable[[str], Awaitable[None]] | None:
        """Called with each workload the watches find for the first time."""
        return self.cache.on_target

    @on_target.setter
    def on_target(self, callback: Callable[[str], Awaitable[None]] | None) -> None:
        self.cache.on_target = callback

    @property
    def on_gone(self) -> Callable[[str], Awaitable[None]] | None:
        """Called when a workload is deleted."""
        return self.cache.on_gone

    @on_gone.setter
    def on_gone(self, callback: Callable[[str], Awaitable[None]] | None) -> None:
        self.cache.on_gone = callback

    async def connect(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        await self.api.connect(kubeconfig, context)

    async def close(self) -> None:
        await self.api.close()

    def problems(self) -> list[str]:
        """What keeps the actuator from a full picture of the cluster, for /healthz."""
        return self.cache.problems()

    def targets(self) -> list[str]:
        """Every workload in the cache, as ``namespace/name``."""
        return self.cache.targets()

    def target(self, key: str) -> Workload | None:
        """The cached workload named ``namespace/name`` (``WorkloadCache.target``)."""
        return self.cache.target(key)

    # -- the Actuator protocol -------------------------------------------------------------

    async def observe(self, deployment: str) -> Observed | None:
        workload = self.cache.target(deployment)
        if workload is None or workload.controls.held:
            return NOT_A_TARGET
        pending = self.writer.pending(deployment)
        # While a write is queued or in flight the replicas asked for are what was decided:
        # the next decision builds on it instead of deciding the same step again.
        current = pending if pending is not None else workload.replicas
        return Observed(current, workload.ready, True, workload.controls.overrides)

    async def apply(self, deployment: str, decision: Decision, fence: int) -> None:
        # The fence is checked by the state store's compare-and-set before this is called;
        # the write itself is guarded by the resourceVersion the decision was based on.
        workload = self.cache.target(deployment)
        if workload is None or workload.controls.held or not self.manages(deployment):
            return
        replicas = decision.replicas
        if self.dry_run:
            if replicas != workload.replicas and self._would.get(deployment) != replicas:
                log.info(
                    "would scale",
                    target=deployment,
                    kind=workload.kind,
                    current=workload.replicas,
                    replicas=replicas,
                    reason=decision.reason,
                )
            self._would[deployment] = replicas
            return
        if replicas == workload.replicas and self.writer.pending(deployment) is None:
            return
        if replicas != workload.replicas:
            log.info(
                "scaling",
                target=deployment,
                kind=workload.kind,
                current=workload.replicas,
                replicas=replicas,
                ready=workload.ready,
                fence=fence,
                reason=decision.reason,
            )
        self.writer.want(deployment, replicas)

    def _pinned(self, key: str, replicas: int) -> None:
        """A workload pinned by annotation to a count it is not at: written like a decision,
        where this daemon writes and the policies manage the workload."""
        if not self.dry_run and self.manages(key):
            self.writer.want(key, replicas)

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and write until ``stop``; then keep writing until ``drain`` (the daemon's
        last decisions) or 10 s, whichever comes first."""
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(
                    self.cache.watch_loop(kind, ns), name=f"watch-{kind}-{ns or 'all'}"
                )
                for kind, ns in self.cache.scopes
            ]
            tasks += [
                group.create_task(self.writer.writer(), name=f"kube-writer-{index}")
                for index in range(self.writers)
            ]
            await stop.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), timeout=10)
            for task in tasks:
                task.cancel()

    async def list_all(self) -> None:
        """List every scope once, without watching (what ``run`` starts with)."""
        await self.cache.list_all()

    async def run_writers(self, stop: asyncio.Event) -> None:
        """Only the writers, until ``stop`` (a test drives the cache with ``list_all``)."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self.writer.writer()) for _ in range(self.writers)]
            await stop.wait()
            for task in tasks:
                task.cancel()

    async def drain(self, timeout_s: float = 10.0) -> None:
        """Wait (at most ``timeout_s``) for the writes asked for so far, then let ``run``
        end."""
        await self.writer.drain(timeout_s)
        self._closed.set()

    async def settled(self) -> None:
        """Wait until no write is queued or in flight (tests and the benchmark)."""
        await self.writer.settled()
