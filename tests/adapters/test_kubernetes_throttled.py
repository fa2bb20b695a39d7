"""The actuator against an API server that throttles: a control plane of its own whose
kube-apiserver admits one mutating request at a time (``--max-mutating-requests-inflight=1``)
and answers the rest 429 Too Many Requests with Retry-After, as an overloaded server does.
The limit spares system:masters, so the actuator acts as a service account, as in a
cluster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest
from kubernetes_asyncio import client as k8s

from autoscaler.adapters.kubernetes import KubernetesActuator, api_client
from autoscaler.adapters.rate_budget import RequestBudget
from autoscaler.daemon.metrics import DaemonMetrics
from devtools.kube_cluster import start_cluster
from devtools.processes import ServiceError
from tests.adapters.test_kubernetes_actuator import Running, decision
from tests.kube_helpers import (
    create_deployment,
    create_namespace,
    kube_requests,
    replicas_of,
    service_account_token,
    token_client,
)

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("throttled-kube")
    try:
        cluster = start_cluster(
            base, timeout_s=120, apiserver_args=["--max-mutating-requests-inflight=1"]
        )
    except ServiceError as exc:
        pytest.fail(f"the throttled control plane did not start: {exc}", pytrace=False)
    try:
        yield cluster.kubeconfig
    finally:
        cluster.stop()


@pytest.fixture
async def throttled_api(throttled: Path) -> AsyncIterator[k8s.ApiClient]:
    api = await api_client(str(throttled))
    try:
        yield api
    finally:
        await api.close()


async def scaler_client(
    admin: k8s.ApiClient, kubeconfig: Path, namespace: str
) -> AbstractAsyncContextManager[k8s.ApiClient]:
    """A client for a service account that may watch Deployments and patch them and their
    scale in ``namespace``, and nothing else."""
    core, rbac = k8s.CoreV1Api(admin), k8s.RbacAuthorizationV1Api(admin)
    await core.create_namespaced_service_account(namespace, {"metadata": {"name": "scaler"}})
    await rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "scaler"},
            "rules": [
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments"],
                    "verbs": ["get", "list", "watch", "patch"],
                },
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments/scale"],
                    "verbs": ["get", "patch"],
                },
            ],
        },
    )
    await rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "scaler"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "scaler"},
            "subjects": [{"kind": "ServiceAccount", "name": "scaler", "namespace": namespace}],
        },
    )
    token = await service_account_token(admin, namespace, "scaler")
    return token_client({"KUBECONFIG": str(kubeconfig)}, token)


async def test_429s_are_retried_after_their_retry_after_and_every_write_lands(
    throttled: Path, throttled_api: k8s.ApiClient
) -> None:
    admin = throttled_api
    namespace = await create_namespace(admin)
    count = 12
    for index in range(count):
        await create_deployment(admin, namespace, f"d{index}", replicas=1)
    async with await scaler_client(admin, throttled, namespace) as api:
        await exercise(api, namespace, count)
    for index in range(count):
        assert await replicas_of(admin, namespace, f"d{index}") == 3


async def exercise(api: k8s.ApiClient, namespace: str, count: int) -> None:
    metrics = DaemonMetrics()
    act = KubernetesActuator(
        api,
        metrics,
        namespaces=[namespace],
        kinds=["Deployment"],  # all this service account may watch
        # A generous client budget and many writers: the server's limit is the one hit.
        budget=RequestBudget(qps=1000, burst=1000),
        writers=count,
    )
    stop_noise = asyncio.Event()

    async def noise() -> None:
        # Other clients' writes keep the one mutating slot busy.
        apps = k8s.AppsV1Api(api)
        turn = 0
        while not stop_noise.is_set():
            turn += 1
            calls = [
                apps.patch_namespaced_deployment(
                    f"d{index}", namespace, {"metadata": {"annotations": {"noise": str(turn)}}}
                )
                for index in range(count)
            ]
            await asyncio.gather(*calls, return_exceptions=True)

    async with Running(act):
        noisy = asyncio.create_task(noise())
        try:
            for index in range(count):
                await act.apply(f"{namespace}/d{index}", decision(1, 3), fence=1)
            await asyncio.wait_for(act.settled(), 120)
        finally:
            stop_noise.set()
            await noisy
    assert kube_requests(metrics, "patch", "429") >= 1
    assert kube_requests(metrics, "patch", "200") >= count
