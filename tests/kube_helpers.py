"""Helpers for tests against the real control plane of the ``kube`` fixture (tests/conftest.py):
an admin client, namespaces, Deployments whose pods KWOK makes Ready after a chosen delay (a
model server's cold start), and waiting for a Deployment's status.

    async with admin_client(kube) as api:
        ns = await create_namespace(api)
        await create_deployment(api, ns, "llm", replicas=2, ready_after_s=3)
        await wait_for_deployment(api, ns, "llm", ready_replicas(2), timeout_s=20)
        await scale_deployment(api, ns, "llm", 0)

Arguments go namespace first, then name, as in "namespace/name".
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime

from kubernetes_asyncio import client, config
from kubernetes_asyncio.client import ApiClient, ApiException

from autoscaler.daemon.metrics import DaemonMetrics
from devtools.kube_cluster import READY_AFTER_ANNOTATION

# Pod annotation: KWOK makes the pod Ready this many seconds (decimals allowed) after it
# started it; until then it is Running but not Ready. Without it: Ready at once.
READY_AFTER = READY_AFTER_ANNOTATION
POLL_S = 0.2
# Nothing pulls it: KWOK runs no containers.
IMAGE = "model-server:1"


@asynccontextmanager
async def admin_client(env: Mapping[str, str]) -> AsyncIterator[ApiClient]:
    """An ApiClient with the fixture's admin credential (system:masters)."""
    api = await config.new_client_from_config(config_file=env["KUBECONFIG"], persist_config=False)
    try:
        yield api
    finally:
        await api.close()


@asynccontextmanager
async def token_client(env: Mapping[str, str], token: str) -> AsyncIterator[ApiClient]:
    """An ApiClient that presents only ``token`` (a service account's from the TokenRequest
    API, say) and trusts the fixture's cluster CA."""
    loaded = client.Configuration()
    await config.load_kube_config(
        config_file=env["KUBECONFIG"], client_configuration=loaded, persist_config=False
    )
    configuration = client.Configuration(host=loaded.host)
    configuration.ssl_ca_cert = loaded.ssl_ca_cert
    configuration.api_key = {"BearerToken": token}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    api = ApiClient(configuration=configuration)
    try:
        yield api
    finally:
        await api.close()


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def create_namespace(
    api: ApiClient, name: str | None = None, labels: Mapping[str, str] | None = None
) -> str:
    """Create a namespace (a unique ``test-...`` name by default); return its name once its
    ``default`` ServiceAccount exists: until then the ServiceAccount admission plugin rejects
    the pods a ReplicaSet creates there, and the ReplicaSet backs off for seconds."""
    name = name or unique_name("test")
    core = client.CoreV1Api(api)
    await core.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(labels or {})))
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            await core.read_namespaced_service_account("default", name)
            return name
        except ApiException as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


async def delete_namespace(api: ApiClient, name: str) -> None:
    """Delete a namespace and everything in it (the namespace controller finishes it)."""
    try:
        await client.CoreV1Api(api).delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


async def create_deployment(
    api: ApiClient,
    namespace: str,
    name: str,
    replicas: int = 1,
    ready_after_s: float | None = None,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    *,
    pod_annotations: Mapping[str, str] | None = None,
    image: str = IMAGE,
) -> client.V1Deployment:
    """A Deployment of ``replicas`` pods selected by ``app=<name>``. ``labels`` go on the
    Deployment and its pods, ``annotations`` on the Deployment (where the autoscaler reads
    its per-deployment settings), ``pod_annotations`` on the pod template; ``ready_after_s``
    is the pods' cold start (READY_AFTER)."""
    pod_labels = {"app": name, **(labels or {})}
    template_annotations = dict(pod_annotations or {})
    if ready_after_s is not None:
        template_annotations[READY_AFTER] = f"{ready_after_s:g}"
    body = client.V1Deployment(
        metadata=client.V1ObjectMeta(
            name=name, labels=pod_labels, annotations=dict(annotations or {})
        ),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels={"app": name}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=pod_labels, annotations=template_annotations),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="server", image=image)],
                    # KWOK deletes a pod at once anyway; this keeps the intent visible.
                    termination_grace_period_seconds=0,
                ),
            ),
        ),
    )
    created: client.V1Deployment = await client.AppsV1Api(api).create_namespaced_deployment(
        namespace, body
    )
    return created


async def scale_deployment(api: ApiClient, namespace: str, name: str, replicas: int) -> None:
    """Set spec.replicas through the scale subresource, as an autoscaler does."""
    await client.AppsV1Api(api).patch_namespaced_deployment_scale(
        name, namespace, {"spec": {"replicas": replicas}}
    )


async def replicas_of(api: ApiClient, namespace: str, name: str) -> int:
    """``spec.replicas`` as the API server has it now: what was asked for, not what runs."""
    scale = await client.AppsV1Api(api).read_namespaced_deployment_scale(name, namespace)
    return int(scale.spec.replicas or 0)


async def replicas_are(api: ApiClient, namespace: str, name: str, replicas: int) -> bool:
    return await replicas_of(api, namespace, name) == replicas


def ready_replicas(count: int) -> Callable[[client.V1Deployment], bool]:
    """Predicate: the Deployment controller has seen the current spec, and ``count`` pods
    exist and are Ready."""

    def holds(deployment: client.V1Deployment) -> bool:
        status = deployment.status
        return (
            status is not None
            and (status.observed_generation or 0) >= (deployment.metadata.generation or 0)
            and (status.ready_replicas or 0) == count
            and (status.replicas or 0) == count
        )

    holds.__name__ = f"ready_replicas({count})"
    return holds


async def wait_for_deployment(
    api: ApiClient,
    namespace: str,
    name: str,
    predicate: Callable[[client.V1Deployment], bool],
    *,
    timeout_s: float = 30,
) -> client.V1Deployment:
    """Poll the Deployment every POLL_S until ``predicate(deployment)`` holds; return it. On
    timeout an AssertionError carries the last generation, spec.replicas and status seen."""
    apps = client.AppsV1Api(api)
    deadline = time.monotonic() + timeout_s
    while True:
        last = await apps.read_namespaced_deployment(name, namespace)
        if predicate(last):
            return last
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(POLL_S)
    what = getattr(predicate, "__name__", repr(predicate))
    status = last.status.to_dict() if last.status is not None else None
    raise AssertionError(
        f"deployment {namespace}/{name}: {what} did not hold within {timeout_s:g}s; last seen "
        f"generation={last.metadata.generation} spec.replicas={last.spec.replicas} "
        f"status={status}"
    )


# The name tests/daemon uses.
wait_for = wait_for_deployment


async def list_pods(api: ApiClient, namespace: str, selector: str = "") -> list[client.V1Pod]:
    pods = await client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=selector)
    items: list[client.V1Pod] = pods.items
    return items


def condition_time(pod: client.V1Pod, kind: str) -> datetime | None:
    """When the pod's condition ``kind`` turned True; None while it is not True."""
    for condition in (pod.status and pod.status.conditions) or []:
        if condition.type == kind and condition.status == "True":
            changed: datetime = condition.last_transition_time
            return changed
    return None


def is_ready(pod: client.V1Pod) -> bool:
    return condition_time(pod, "Ready") is not None


def kubectl(
    env: Mapping[str, str], *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run the built kubectl against the fixture's cluster; ``check`` fails with its output."""
    done = subprocess.run(
        [env["KUBECTL"], "--kubeconfig", env["KUBECONFIG"], *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check and done.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


def kube_requests(metrics: DaemonMetrics, verb: str, code: str) -> float:
    """How many Kubernetes API requests of ``verb`` answered ``code`` a daemon counted."""
    value = metrics.registry.get_sample_value(
        "autoscaler_kube_requests_total", {"verb": verb, "code": code}
    )
    return value or 0.0


async def service_account_token(api: ApiClient, namespace: str, name: str) -> str:
    """A token for a service account from the TokenRequest API, as the kubelet would project
    into its pods."""
    request = client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)
    )
    response = await client.CoreV1Api(api).create_namespaced_service_account_token(
        name, namespace, request
    )
    token: str = response.status.token
    return token
