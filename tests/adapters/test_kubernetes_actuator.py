"""The Kubernetes actuator against a real API server (the ``kube`` fixture: etcd,
kube-apiserver, controller-manager, scheduler and KWOK on loopback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest
from kubernetes_asyncio import client as k8s

from autoscaler.adapters.kubernetes import KubernetesActuator
from autoscaler.adapters.rate_budget import RequestBudget
from autoscaler.config.annotations import TargetControls, parse_controls
from autoscaler.core.decider import Decision, DecisionState
from autoscaler.core.guardrails import GuardState
from autoscaler.daemon.metrics import DaemonMetrics
from tests.kube_helpers import (
    create_deployment,
    create_namespace,
    kube_requests,
    replicas_of,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


def decision(current: int, replicas: int) -> Decision:
    return Decision(
        replicas=replicas,
        recommended=replicas,
        current=current,
        state=DecisionState(None, GuardState()),
        policy_reason="test",
    )


class Running:
    """An actuator with its watches and writers running."""

    def __init__(self, actuator: KubernetesActuator) -> None:
        self.actuator = actuator
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> KubernetesActuator:
        self.task = asyncio.create_task(self.actuator.run(self.stop))
        await asyncio.wait_for(self.actuator.synced.wait(), 20)
        return self.actuator

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await self.actuator.drain(timeout_s=5)
        assert self.task is not None
        await asyncio.wait_for(self.task, 15)


def actuator(
    kube_api: k8s.ApiClient,
    kube_namespace: str,
    metrics: DaemonMetrics | None = None,
    **kwargs: Any,
) -> KubernetesActuator:
    return KubernetesActuator(
        kube_api, metrics or DaemonMetrics(), namespaces=[kube_namespace], **kwargs
    )


async def test_watch_reports_current_and_ready_after_the_cold_start(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    await create_deployment(kube_api, kube_namespace, "llm", replicas=2, ready_after_s=2)
    async with Running(actuator(kube_api, kube_namespace)) as act:
        seen = await act.observe(f"{kube_namespace}/llm")
        assert seen is not None and seen.actionable and seen.current == 2
        # The pods exist but are still loading: not ready yet.
        assert seen.ready < 2
        started = time.monotonic()
        while (await act.observe(f"{kube_namespace}/llm")).ready < 2:  # type: ignore[union-attr]
            assert time.monotonic() - started < 30, "pods never became ready"
            await asyncio.sleep(0.1)
        assert time.monotonic() - started > 0.5  # KWOK held them back (2 s from creation)
        absent = await act.observe(f"{kube_namespace}/nothing-here")
        assert absent is not None and not absent.actionable


async def test_scales_through_the_scale_subresource_and_skips_no_op_writes(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    await create_deployment(kube_api, kube_namespace, "llm", replicas=1)
    metrics = DaemonMetrics()
    async with Running(actuator(kube_api, kube_namespace, metrics)) as act:
        key = f"{kube_namespace}/llm"
        await act.apply(key, decision(1, 4), fence=1)
        await act.settled()
        assert await replicas_of(kube_api, kube_namespace, "llm") == 4
        assert kube_requests(metrics, "patch", "200") == 1
        # The cache knows at once (from the patch's answer), before the watch says so.
        observed = await act.observe(key)
        assert observed is not None and observed.current == 4
        for _ in range(5):
            await act.apply(key, decision(4, 4), fence=1)
        await act.settled()
        assert kube_requests(metrics, "patch", "200") == 1  # nothing changed: nothing sent
        await wait_for(
            kube_api, kube_namespace, "llm", lambda d: (d.status.ready_replicas or 0) == 4
        )


async def test_decisions_made_while_a_write_waits_are_coalesced(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    await create_deployment(kube_api, kube_namespace, "llm", replicas=1)
    metrics = DaemonMetrics()
    # A budget spent up front makes the first write wait a second for its token.
    budget = RequestBudget(qps=1, burst=1)
    async with Running(
        actuator(kube_api, kube_namespace, metrics, budget=budget, writers=1)
    ) as act:
        key = f"{kube_namespace}/llm"
        for replicas in (2, 3, 5, 4):
            await act.apply(key, decision(1, replicas), fence=1)
        await act.settled()
        assert await replicas_of(kube_api, kube_namespace, "llm") == 4
        assert kube_requests(metrics, "patch", "200") == 1  # one patch, with the last decision


async def test_a_conflicting_writer_gets_a_409_and_the_decision_still_lands(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    await create_deployment(kube_api, kube_namespace, "llm", replicas=1)
    # Settled first, so that no status update of the controller's own moves the version too.
    await wait_for(kube_api, kube_namespace, "llm", lambda d: (d.status.ready_replicas or 0) == 1)
    await asyncio.sleep(0.5)
    metrics = DaemonMetrics()
    act = actuator(kube_api, kube_namespace, metrics)
    # Only the list, no watch: the cache keeps the resourceVersion the "decision" saw.
    await act.list_all()
    key = f"{kube_namespace}/llm"
    assert act.target(key) is not None
    # Someone else writes the Deployment meanwhile (a label here; kubectl, a GitOps tool).
    await k8s.AppsV1Api(kube_api).patch_namespaced_deployment(
        "llm", kube_namespace, {"metadata": {"labels": {"touched": "yes"}}}
    )
    stop = asyncio.Event()
    writers = asyncio.create_task(act.run_writers(stop))
    await act.apply(key, decision(1, 3), fence=1)
    await asyncio.wait_for(act.settled(), 20)
    stop.set()
    await writers
    assert kube_requests(metrics, "patch", "409") == 1
    assert kube_requests(metrics, "get", "200") == 1  # re-read once
    assert kube_requests(metrics, "patch", "200") == 1
    assert await replicas_of(kube_api, kube_namespace, "llm") == 3
    labels = (
        await k8s.AppsV1Api(kube_api).read_namespaced_deployment("llm", kube_namespace)
    ).metadata
    assert labels.labels["touched"] == "yes"  # the other writer's change is kept too


async def test_never_touches_what_it_does_not_manage(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    other = f"{kube_namespace}-other"
    await create_namespace(kube_api, other)
    try:
        await create_deployment(kube_api, kube_namespace, "managed", replicas=1)
        await create_deployment(kube_api, kube_namespace, "unmatched", replicas=1)
        await create_deployment(kube_api, other, "elsewhere", replicas=1)
        metrics = DaemonMetrics()
        act = actuator(
            kube_api, kube_namespace, metrics, manages=lambda key: key.endswith("/managed")
        )
        async with Running(act):
            await act.apply(f"{kube_namespace}/unmatched", decision(1, 5), fence=1)
            # Not in a watched namespace: unknown, so never written.
            await act.apply(f"{other}/elsewhere", decision(1, 5), fence=1)
            await act.apply(f"{kube_namespace}/managed", decision(1, 2), fence=1)
            await act.settled()
        assert await replicas_of(kube_api, kube_namespace, "managed") == 2
        assert await replicas_of(kube_api, kube_namespace, "unmatched") == 1
        assert await replicas_of(kube_api, other, "elsewhere") == 1
        assert kube_requests(metrics, "patch", "200") == 1
    finally:
        await k8s.CoreV1Api(kube_api).delete_namespace(other)


async def test_paused_and_pinned_targets(kube_api: k8s.ApiClient, kube_namespace: str) -> None:
    await create_deployment(
        kube_api,
        kube_namespace,
        "paused",
        replicas=2,
        annotations={"autoscaler.dev/paused": "true"},
    )
    await create_deployment(
        kube_api,
        kube_namespace,
        "pinned",
        replicas=1,
        annotations={"autoscaler.dev/paused-replicas": "3"},
    )
    await create_deployment(
        kube_api,
        kube_namespace,
        "tuned",
        replicas=1,
        annotations={"autoscaler.dev/min_replicas": "2", "autoscaler.dev/paused": "maybe"},
    )
    async with Running(actuator(kube_api, kube_namespace)) as act:
        paused = await act.observe(f"{kube_namespace}/paused")
        assert paused is not None and not paused.actionable
        await act.apply(f"{kube_namespace}/paused", decision(2, 6), fence=1)
        # Pinned: the actuator holds it at 3 by itself, and decisions do not move it.
        await wait_for(kube_api, kube_namespace, "pinned", lambda d: d.spec.replicas == 3)
        await act.apply(f"{kube_namespace}/pinned", decision(3, 1), fence=1)
        await act.settled()
        tuned = await act.observe(f"{kube_namespace}/tuned")
        # A bad value is ignored (not paused); the valid override is handed to the engine.
        assert tuned is not None and tuned.actionable
        assert dict(tuned.overrides) == {"min_replicas": 2}
        # Un-pausing by editing the annotation is seen through the watch.
        await k8s.AppsV1Api(kube_api).patch_namespaced_deployment(
            "paused",
            kube_namespace,
            {"metadata": {"annotations": {"autoscaler.dev/paused": "false"}}},
        )
        started = time.monotonic()
        while not (await act.observe(f"{kube_namespace}/paused")).actionable:  # type: ignore[union-attr]
            assert time.monotonic() - started < 10
            await asyncio.sleep(0.05)
    assert await replicas_of(kube_api, kube_namespace, "paused") == 2
    assert await replicas_of(kube_api, kube_namespace, "pinned") == 3


async def test_dry_run_watches_but_never_patches(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    await create_deployment(kube_api, kube_namespace, "llm", replicas=1)
    metrics = DaemonMetrics()
    async with Running(actuator(kube_api, kube_namespace, metrics, dry_run=True)) as act:
        await act.apply(f"{kube_namespace}/llm", decision(1, 5), fence=1)
        await act.settled()
        observed = await act.observe(f"{kube_namespace}/llm")
        assert observed is not None and observed.current == 1
    assert await replicas_of(kube_api, kube_namespace, "llm") == 1
    assert kube_requests(metrics, "patch", "200") == 0


async def test_statefulsets_are_scaled_too(kube_api: k8s.ApiClient, kube_namespace: str) -> None:
    apps = k8s.AppsV1Api(kube_api)
    await apps.create_namespaced_stateful_set(
        kube_namespace,
        {
            "metadata": {"name": "cache"},
            "spec": {
                "replicas": 1,
                "serviceName": "cache",
                "selector": {"matchLabels": {"app": "cache"}},
                "template": {
                    "metadata": {"labels": {"app": "cache"}},
                    "spec": {"containers": [{"name": "c", "image": "cache:1"}]},
                },
            },
        },
    )
    async with Running(actuator(kube_api, kube_namespace)) as act:
        await act.apply(f"{kube_namespace}/cache", decision(1, 2), fence=1)
        await act.settled()
    scale = await apps.read_namespaced_stateful_set_scale("cache", kube_namespace)
    assert scale.spec.replicas == 2


async def test_a_budget_paces_writes_to_many_targets(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    count = 8
    for index in range(count):
        await create_deployment(kube_api, kube_namespace, f"d{index}", replicas=1)
    budget = RequestBudget(qps=4, burst=1)
    async with Running(actuator(kube_api, kube_namespace, budget=budget)) as act:
        granted = budget.granted
        started = time.monotonic()
        for index in range(count):
            await act.apply(f"{kube_namespace}/d{index}", decision(1, 2), fence=1)
        await act.settled()
        elapsed = time.monotonic() - started
        assert budget.granted - granted == count
    # A token bucket of 4/s with no burst cannot send 8 requests in less than 7/4 s.
    assert elapsed >= (count - 1) / 4 * 0.95
    for index in range(count):
        assert await replicas_of(kube_api, kube_namespace, f"d{index}") == 2


def skipped(metrics: DaemonMetrics, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "autoscaler_kube_objects_skipped_total", {"kind": "Deployment", "reason": reason}
    )
    return value or 0.0


def watch_failures(metrics: DaemonMetrics) -> float:
    value = metrics.registry.get_sample_value(
        "autoscaler_kube_watch_restarts_total", {"kind": "Deployment", "reason": "failed"}
    )
    return value or 0.0


# Issue 9, item 8: annotations that made the annotation parser raise. A 5,000-deep flow
# sequence made YAML raise RecursionError, which the watch loop did not catch (the daemon
# exited); "²" passes str.isdigit() but not int(), and the namespace's list retried forever.
BAD_ANNOTATIONS = {
    "deep": {"autoscaler.dev/params": "[" * 5000},
    "superscript": {"autoscaler.dev/paused-replicas": "²"},
    # Unreadable next to a readable pause: still paused (a neighbour must not un-pause it).
    "paused-deep": {"autoscaler.dev/paused": "true", "autoscaler.dev/min_replicas": "[" * 5000},
}


async def test_unreadable_annotations_never_break_a_list_or_a_watch(
    kube_api: k8s.ApiClient, kube_namespace: str
) -> None:
    await create_deployment(kube_api, kube_namespace, "normal", replicas=1)
    for name, notes in BAD_ANNOTATIONS.items():
        await create_deployment(kube_api, kube_namespace, name, replicas=1, annotations=notes)
    metrics = DaemonMetrics()
    act = actuator(kube_api, kube_namespace, metrics)
    running = Running(act)
    # The list that starts the watch reads the bad ones: it must still sync.
    async with running:
        assert set(act.targets()) == {f"{kube_namespace}/{n}" for n in ("normal", *BAD_ANNOTATIONS)}
        for name in ("deep", "superscript"):
            seen = await act.observe(f"{kube_namespace}/{name}")
            # Not paused by mistake, and nothing from the unreadable annotation.
            assert seen is not None and seen.actionable, name
            assert dict(seen.overrides) == {}, name
        paused = await act.observe(f"{kube_namespace}/paused-deep")
        assert paused is not None and not paused.actionable
        await act.apply(f"{kube_namespace}/normal", decision(1, 3), fence=1)
        await act.settled()
        assert await replicas_of(kube_api, kube_namespace, "normal") == 3

        # The same annotations arriving through the watch, not the list.
        for name, notes in BAD_ANNOTATIONS.items():
            await create_deployment(
                kube_api, kube_namespace, f"{name}-late", replicas=1, annotations=notes
            )
        await create_deployment(kube_api, kube_namespace, "normal-late", replicas=1)
        started = time.monotonic()
        while f"{kube_namespace}/normal-late" not in act.targets():
            assert time.monotonic() - started < 20, "the watch stopped delivering"
            await asyncio.sleep(0.05)
        for name in BAD_ANNOTATIONS:
            assert f"{kube_namespace}/{name}-late" in act.targets()
        late = await act.observe(f"{kube_namespace}/superscript-late")
        assert late is not None and late.actionable
        await act.apply(f"{kube_namespace}/normal-late", decision(1, 2), fence=1)
        await act.settled()
        assert await replicas_of(kube_api, kube_namespace, "normal-late") == 2
        assert running.task is not None and not running.task.done()
        # No watch had to re-list for them.
        assert watch_failures(metrics) == 0
    assert await replicas_of(kube_api, kube_namespace, "superscript") == 1
    assert await replicas_of(kube_api, kube_namespace, "paused-deep") == 1


EXPLODE = "autoscaler.dev/test-explode"


async def test_a_parser_that_raises_costs_one_workload_not_the_watch(
    kube_api: k8s.ApiClient, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the annotation parser may raise in the future (RecursionError was one), the
    workload is kept without its controls (a readable ``paused`` excepted), counted, and the
    list and the watch go on. The parser is made to raise for one marked annotation: no
    annotation the real parser knows makes it raise any more."""
    real = parse_controls

    def exploding(target: str, annotations: Mapping[str, str]) -> TargetControls:
        if EXPLODE in annotations:
            raise RecursionError("maximum recursion depth exceeded")
        return real(target, annotations)

    monkeypatch.setattr("autoscaler.adapters.kube_annotations.parse_controls", exploding)
    await create_deployment(kube_api, kube_namespace, "normal", replicas=1)
    await create_deployment(
        kube_api,
        kube_namespace,
        "exploding",
        replicas=1,
        annotations={EXPLODE: "x", "autoscaler.dev/paused-replicas": "5"},
    )
    await create_deployment(
        kube_api,
        kube_namespace,
        "exploding-paused",
        replicas=1,
        annotations={EXPLODE: "x", "autoscaler.dev/paused": "true"},
    )
    metrics = DaemonMetrics()
    act = actuator(kube_api, kube_namespace, metrics)
    running = Running(act)
    async with running:
        # The list went through: every workload is there, the unreadable ones included.
        assert len(act.targets()) == 3
        listed = skipped(metrics, "annotations")
        assert listed >= 2  # each read counts: status updates re-deliver the objects
        exploding_seen = await act.observe(f"{kube_namespace}/exploding")
        assert exploding_seen is not None and exploding_seen.actionable  # not pinned to 5
        paused = await act.observe(f"{kube_namespace}/exploding-paused")
        assert paused is not None and not paused.actionable  # still paused
        # Through the watch too.
        await create_deployment(
            kube_api, kube_namespace, "exploding-late", replicas=1, annotations={EXPLODE: "x"}
        )
        await create_deployment(kube_api, kube_namespace, "normal-late", replicas=1)
        started = time.monotonic()
        while len(act.targets()) < 5:
            assert time.monotonic() - started < 20, "the watch stopped delivering"
            await asyncio.sleep(0.05)
        assert skipped(metrics, "annotations") > listed
        for name in ("normal", "normal-late"):
            await act.apply(f"{kube_namespace}/{name}", decision(1, 2), fence=1)
        await act.settled()
        assert running.task is not None and not running.task.done()
        assert watch_failures(metrics) == 0
    for name in ("normal", "normal-late"):
        assert await replicas_of(kube_api, kube_namespace, name) == 2
    assert await replicas_of(kube_api, kube_namespace, "exploding") == 1
