"""deploy/ as a cluster operator applies it, against the real API server of the ``kube``
fixture: server-side validation (schemas, admission, Pod Security "restricted"), then the
base applied for real and its RBAC tried with the daemon's own service-account token."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client import ApiException

from devtools.kube_build import bin_dir
from tests.kube_helpers import (
    admin_client,
    create_deployment,
    create_namespace,
    delete_namespace,
    kubectl,
    list_pods,
    ready_replicas,
    service_account_token,
    token_client,
    wait_for_deployment,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "base"
DRY_RUN = ROOT / "deploy" / "overlays" / "dry-run"
OBJECTS = {
    "namespace/autoscaler",
    "namespace/models",
    "serviceaccount/autoscaler",
    "clusterrole.rbac.authorization.k8s.io/autoscaler-scaler",
    "rolebinding.rbac.authorization.k8s.io/autoscaler-scaler",
    "configmap/autoscaler-config",
    "service/autoscaler",
    "deployment.apps/autoscaler",
    "poddisruptionbudget.policy/autoscaler",
}
SERVICE_ACCOUNT = "system:serviceaccount:autoscaler:autoscaler"


def rendered(path: Path) -> list[dict[str, Any]]:
    """The kustomization's objects as kubectl's built-in kustomize renders them."""
    out = subprocess.run(
        [str(bin_dir() / "kubectl"), "kustomize", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def one(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, [o["metadata"]["name"] for o in found]
    return found[0]


# -- the files themselves --------------------------------------------------------------------


def test_the_overlay_differs_from_the_base_in_dry_run_only() -> None:
    base = yaml.safe_load((BASE / "daemon.yaml").read_text())
    overlay = yaml.safe_load((DRY_RUN / "daemon.yaml").read_text())
    assert base.pop("dry_run") is False
    assert overlay.pop("dry_run") is True
    assert overlay == base


def test_the_policy_files_validate_and_are_all_mounted() -> None:
    autoscaler = Path(sys.executable).with_name("autoscaler")
    done = subprocess.run(
        [str(autoscaler), "validate", str(BASE / "policies")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    objects = rendered(BASE)
    config_map = one(objects, "ConfigMap")
    deployment = one(objects, "Deployment")
    volume = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
    )
    items = {item["key"]: item["path"] for item in volume["configMap"]["items"]}
    # A file in the ConfigMap but not in `items` would never reach the daemon.
    assert set(items) == set(config_map["data"])
    assert items["daemon.yaml"] == "daemon.yaml"
    policy_files = {p.name for p in (BASE / "policies").glob("*.yaml")}
    assert {key: path for key, path in items.items() if key != "daemon.yaml"} == {
        name: f"policies/{name}" for name in policy_files
    }


# -- against the API server ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cleanup(kube: dict[str, str]) -> Iterator[None]:
    """Whatever this module applied goes at its end (namespaces finish in the background)."""
    yield
    kubectl(kube, "delete", "-k", str(BASE), "--ignore-not-found", "--wait=false")


def applied(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """``{object: what kubectl says happened}`` from `kubectl apply` output."""
    reported = {}
    for line in result.stdout.splitlines():
        name, _, outcome = line.partition(" ")
        reported[name] = outcome
    return reported


def test_base_and_dry_run_overlay_pass_server_side_dry_run(
    kube: dict[str, str], cleanup: None
) -> None:
    # A server-side dry run persists nothing, so objects inside a namespace that does not
    # exist yet fail with NotFound: the namespaces come first, for real (README says so too).
    kubectl(kube, "apply", "-f", str(BASE / "namespace.yaml"))
    for path in (BASE, DRY_RUN):
        result = kubectl(kube, "apply", "--dry-run=server", "-k", str(path))
        reported = applied(result)
        assert set(reported) == OBJECTS, result.stdout
        assert all(o.endswith("(server dry run)") for o in reported.values()), result.stdout
        # Pod Security admission ("restricted" in the autoscaler namespace) warns about a
        # Deployment whose pods it would reject; kubectl prints that on stderr.
        assert "Warning" not in result.stderr, result.stderr

    # What the server would store for the overlay: its daemon.yaml and the rolling annotation.
    stored = yaml.safe_load(
        kubectl(kube, "apply", "--dry-run=server", "-k", str(DRY_RUN), "-o", "yaml").stdout
    )["items"]
    config_map = one(stored, "ConfigMap")
    assert yaml.safe_load(config_map["data"]["daemon.yaml"])["dry_run"] is True
    deployment = one(stored, "Deployment")
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"autoscaler.dev/daemon-mode": "dry-run"}
    # The server filled in its defaults: it parsed the whole object.
    assert deployment["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"

    # Nothing but the namespaces was created.
    missing = kubectl(kube, "get", "deployment", "autoscaler", "-n", "autoscaler", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr, missing.stderr


@pytest.fixture(scope="module")
def installed(kube: dict[str, str], cleanup: None) -> dict[str, str]:
    result = kubectl(kube, "apply", "-k", str(BASE))
    assert set(applied(result)) == OBJECTS, result.stdout
    assert "Warning" not in result.stderr, result.stderr
    return kube


def test_the_base_runs_two_replicas_on_different_nodes_under_restricted_pod_security(
    installed: dict[str, str],
) -> None:
    async def scenario() -> list[client.V1Pod]:
        async with admin_client(installed) as api:
            await wait_for_deployment(
                api, "autoscaler", "autoscaler", ready_replicas(2), timeout_s=30
            )
            return await list_pods(api, "autoscaler", "app.kubernetes.io/name=autoscaler")

    pods = asyncio.run(scenario())
    # PodSecurity admission enforces "restricted" in this namespace: the pods exist, so it
    # admitted them.
    assert len(pods) == 2
    # Preferred anti-affinity spreads them over KWOK's two nodes.
    assert len({pod.spec.node_name for pod in pods}) == 2
    pod = pods[0]
    assert pod.spec.service_account_name == "autoscaler"
    assert pod.spec.termination_grace_period_seconds == 30
    container = pod.spec.containers[0]
    assert container.command == ["autoscaler", "run", "--config", "/etc/autoscaler/daemon.yaml"]
    assert container.security_context.read_only_root_filesystem is True
    assert {m.mount_path for m in container.volume_mounts} >= {"/etc/autoscaler", "/tmp"}


async def forbidden(request: Awaitable[object]) -> ApiException:
    with pytest.raises(ApiException) as raised:
        await request
    assert raised.value.status == 403, raised.value
    return raised.value


def statefulset(name: str) -> client.V1StatefulSet:
    labels = {"app": name}
    return client.V1StatefulSet(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1StatefulSetSpec(
            replicas=1,
            service_name=name,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    containers=[client.V1Container(name="store", image="model-store:1")]
                ),
            ),
        ),
    )


def test_the_service_account_can_watch_and_scale_workloads_in_models(
    installed: dict[str, str],
) -> None:
    async def scenario() -> None:
        async with admin_client(installed) as admin:
            admin_apps = client.AppsV1Api(admin)
            await create_deployment(admin, "models", "llm", replicas=1)
            await admin_apps.create_namespaced_stateful_set("models", statefulset("store"))
            token = await service_account_token(admin, "autoscaler", "autoscaler")
            async with token_client(installed, token) as api:
                review = await client.AuthenticationV1Api(api).create_self_subject_review(
                    client.V1SelfSubjectReview()
                )
                assert review.status.user_info.username == SERVICE_ACCOUNT
                apps = client.AppsV1Api(api)

                got = await apps.read_namespaced_deployment("llm", "models")
                assert got.spec.replicas == 1
                listed = await apps.list_namespaced_deployment("models")
                assert "llm" in {d.metadata.name for d in listed.items}
                events = watch.Watch()
                async with events.stream(
                    apps.list_namespaced_deployment, "models", timeout_seconds=5
                ) as stream:
                    async for event in stream:
                        assert event["type"] == "ADDED"
                        assert event["object"].metadata.namespace == "models"
                        break
                sets = await apps.list_namespaced_stateful_set("models")
                assert "store" in {s.metadata.name for s in sets.items}

                scale = await apps.read_namespaced_deployment_scale("llm", "models")
                assert scale.spec.replicas == 1
                await apps.patch_namespaced_deployment_scale(
                    "llm", "models", {"spec": {"replicas": 3}}
                )
                await apps.read_namespaced_stateful_set_scale("store", "models")
                await apps.patch_namespaced_stateful_set_scale(
                    "store", "models", {"spec": {"replicas": 2}}
                )
            # The admin sees the changes, and the Deployment controller acts on them.
            await wait_for_deployment(admin, "models", "llm", ready_replicas(3), timeout_s=30)
            store = await admin_apps.read_namespaced_stateful_set("store", "models")
            assert store.spec.replicas == 2

    asyncio.run(scenario())


def test_the_service_account_may_do_nothing_else(installed: dict[str, str]) -> None:
    async def scenario() -> None:
        async with admin_client(installed) as admin:
            await create_deployment(admin, "models", "guarded", replicas=1)
            await client.CoreV1Api(admin).create_namespaced_secret(
                "models",
                client.V1Secret(
                    metadata=client.V1ObjectMeta(name="hf-token"), string_data={"t": "x"}
                ),
            )
            other = await create_namespace(admin)
            await create_deployment(admin, other, "elsewhere", replicas=1)
            token = await service_account_token(admin, "autoscaler", "autoscaler")
            try:
                async with token_client(installed, token) as api:
                    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
                    await forbidden(apps.delete_namespaced_deployment("guarded", "models"))
                    await forbidden(core.list_namespaced_secret("models"))
                    await forbidden(core.read_namespaced_secret("hf-token", "models"))
                    await forbidden(core.list_namespaced_pod("models"))
                    # Only through the scale subresource: the spec itself is not the daemon's.
                    await forbidden(
                        apps.patch_namespaced_deployment(
                            "guarded", "models", {"spec": {"replicas": 4}}
                        )
                    )
                    # Not in a namespace without the RoleBinding, nor cluster-wide.
                    await forbidden(
                        apps.patch_namespaced_deployment_scale(
                            "elsewhere", other, {"spec": {"replicas": 4}}
                        )
                    )
                    await forbidden(apps.list_namespaced_deployment(other))
                    await forbidden(apps.list_deployment_for_all_namespaces())
                # Nothing changed.
                admin_apps = client.AppsV1Api(admin)
                guarded = await admin_apps.read_namespaced_deployment("guarded", "models")
                assert guarded.spec.replicas == 1
                elsewhere = await admin_apps.read_namespaced_deployment("elsewhere", other)
                assert elsewhere.spec.replicas == 1
            finally:
                await delete_namespace(admin, other)

    asyncio.run(scenario())
