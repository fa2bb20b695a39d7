"""The loopback Kubernetes control plane: real API server, controllers and scheduler, and
KWOK's fake nodes taking pods to Running and, after the pod's readiness delay, Ready."""

from __future__ import annotations

import asyncio
import time

from kubernetes_asyncio import client

from devtools.kube_cluster import KWOK_NODE_ANNOTATION, NODE_CAPACITY, NODE_COUNT
from tests.kube_helpers import (
    admin_client,
    condition_time,
    create_deployment,
    create_namespace,
    delete_namespace,
    is_ready,
    kubectl,
    list_pods,
    ready_replicas,
    scale_deployment,
    wait_for_deployment,
)


def test_kwok_nodes_are_ready_with_their_capacity(kube: dict[str, str]) -> None:
    async def nodes() -> list[client.V1Node]:
        async with admin_client(kube) as api:
            listed = await client.CoreV1Api(api).list_node()
            items: list[client.V1Node] = listed.items
            return items

    found = asyncio.run(nodes())
    key, value = KWOK_NODE_ANNOTATION
    assert len(found) == NODE_COUNT
    for node in found:
        assert node.metadata.annotations[key] == value
        ready = [c for c in node.status.conditions if c.type == "Ready"]
        assert [c.status for c in ready] == ["True"], node.status.conditions
        assert not node.spec.taints, node.spec.taints
        assert node.status.allocatable["nvidia.com/gpu"] == NODE_CAPACITY["nvidia.com/gpu"]
        assert node.status.allocatable["memory"] == NODE_CAPACITY["memory"]
    # The person's way in: the built kubectl with the admin kubeconfig.
    shown = kubectl(kube, "get", "nodes", "--no-headers").stdout.splitlines()
    assert len(shown) == NODE_COUNT
    assert all(line.split()[1] == "Ready" for line in shown), shown


def test_a_deployment_gets_its_pods_scheduled_running_and_ready(kube: dict[str, str]) -> None:
    async def scenario() -> list[client.V1Pod]:
        async with admin_client(kube) as api:
            ns = await create_namespace(api)
            try:
                await create_deployment(api, ns, "web", replicas=3)
                await wait_for_deployment(api, ns, "web", ready_replicas(3), timeout_s=30)
                return await list_pods(api, ns, "app=web")
            finally:
                await delete_namespace(api, ns)

    pods = asyncio.run(scenario())
    assert len(pods) == 3
    for pod in pods:
        assert pod.spec.node_name.startswith("kwok-node-")
        assert pod.status.phase == "Running"
        assert pod.status.pod_ip
        assert is_ready(pod)
        # No readiness annotation: Ready as soon as started (timestamps have 1 s resolution).
        ready_at = condition_time(pod, "Ready")
        assert ready_at is not None
        assert (ready_at - pod.status.start_time).total_seconds() <= 1


def test_readiness_waits_for_the_annotated_delay_and_scale_to_zero_removes_pods(
    kube: dict[str, str],
) -> None:
    delay_s = 3.0

    async def scenario() -> None:
        async with admin_client(kube) as api:
            ns = await create_namespace(api)
            try:
                created_at = time.monotonic()
                await create_deployment(api, ns, "llm", replicas=2, ready_after_s=delay_s)

                # Running (started, with a pod IP) but not Ready: the model is loading. KWOK
                # starts the readiness delay as it makes a pod Running, so whenever the poll
                # first sees them Running, Ready is still about delay_s away.
                while True:
                    pods = await list_pods(api, ns, "app=llm")
                    running = [p for p in pods if p.status.phase == "Running"]
                    if len(running) == 2:
                        break
                    assert time.monotonic() - created_at < 20, [
                        (p.metadata.name, p.status.phase) for p in pods
                    ]
                    await asyncio.sleep(0.1)
                seen_running_after = time.monotonic() - created_at
                assert not any(is_ready(p) for p in running), [
                    (p.status.conditions, seen_running_after) for p in running
                ]

                deployment = await wait_for_deployment(
                    api, ns, "llm", ready_replicas(2), timeout_s=delay_s + 20
                )
                ready_after = time.monotonic() - created_at
                assert deployment.status.ready_replicas == 2
                # KWOK starts the delay only once the pod exists, after created_at.
                assert ready_after >= delay_s - 0.2, (seen_running_after, ready_after)
                for pod in await list_pods(api, ns, "app=llm"):
                    ready_at = condition_time(pod, "Ready")
                    assert ready_at is not None
                    # Server-side timestamps, truncated to the second.
                    waited = (ready_at - pod.status.start_time).total_seconds()
                    assert delay_s - 1 <= waited <= delay_s + 10, waited

                await scale_deployment(api, ns, "llm", 0)
                await wait_for_deployment(api, ns, "llm", ready_replicas(0), timeout_s=30)
                deadline = time.monotonic() + 30
                while pods := await list_pods(api, ns, "app=llm"):
                    assert time.monotonic() < deadline, [
                        (p.metadata.name, p.metadata.deletion_timestamp) for p in pods
                    ]
                    await asyncio.sleep(0.2)
            finally:
                await delete_namespace(api, ns)

    asyncio.run(scenario())
