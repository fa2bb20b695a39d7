"""deploy/ as a cluster operator applies it, against the real API server of the ``kube``
fixture: server-side validation (schemas, admission, Pod Security "restricted"), then the
base applied for real and its RBAC tried with the daemon's own service-account token. The
files agree with each other: the ports of daemon.yaml, the containers, the Service, the
Prometheus annotation and the NetworkPolicy; the token Secret and where daemon.yaml reads it.
(KWOK's pods run no CNI: the NetworkPolicy is validated and stored, not enforced, here.)"""

from __future__ import annotations

import asyncio
import base64
import os
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
    "secret/autoscaler-events-token",
    "service/autoscaler",
    "networkpolicy.networking.k8s.io/autoscaler",
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


def config_volume(deployment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The sources of the projected volume at /etc/autoscaler, by kind."""
    volume = next(
        v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
    )
    sources = volume["projected"]["sources"]
    by_kind = {kind: source[kind] for source in sources for kind in source}
    assert len(by_kind) == len(sources) == 2, sources
    return by_kind


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


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
    sources = config_volume(deployment)
    items = {item["key"]: item["path"] for item in sources["configMap"]["items"]}
    # A file in the ConfigMap but not in `items` would never reach the daemon.
    assert set(items) == set(config_map["data"])
    assert items["daemon.yaml"] == "daemon.yaml"
    policy_files = {p.name for p in (BASE / "policies").glob("*.yaml")}
    assert {key: path for key, path in items.items() if key != "daemon.yaml"} == {
        name: f"policies/{name}" for name in policy_files
    }


def test_the_ports_agree_across_daemon_yaml_containers_service_and_prometheus() -> None:
    http = yaml.safe_load((BASE / "daemon.yaml").read_text())["http"]
    objects = rendered(BASE)
    ports = {p["name"]: p["containerPort"] for p in container(objects)["ports"]}
    # Issue 9: /metrics on a port of its own, so that /events can be closed to scrapers.
    assert ports == {"http": http["port"], "metrics": http["metrics_port"]}
    assert http["port"] != http["metrics_port"]
    # The probes need no token and stay on the events port.
    for probe in ("livenessProbe", "readinessProbe"):
        assert container(objects)[probe]["httpGet"]["port"] == "http"
    service = one(objects, "Service")
    assert {p["name"]: (p["port"], p["targetPort"]) for p in service["spec"]["ports"]} == {
        "http": (http["port"], "http"),
        "metrics": (http["metrics_port"], "metrics"),
    }
    assert service["metadata"]["annotations"]["prometheus.io/port"] == str(http["metrics_port"])


def test_the_network_policy_admits_only_producers_and_prometheus() -> None:
    objects = rendered(BASE)
    policy = one(objects, "NetworkPolicy")["spec"]
    pod_labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selected = policy["podSelector"]["matchLabels"]
    assert selected.items() <= pod_labels.items()
    assert "Ingress" in policy["policyTypes"]
    rules = {
        tuple(port["port"] for port in rule["ports"]): rule["from"] for rule in policy["ingress"]
    }
    # Each port for its own clients: no rule without a source (all pods) or without ports.
    assert set(rules) == {("http",), ("metrics",)}
    assert rules[("http",)] == [
        {
            "namespaceSelector": {},
            "podSelector": {"matchLabels": {"autoscaler.dev/event-producer": "true"}},
        }
    ]
    assert rules[("metrics",)] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
        }
    ]


def test_the_events_token_secret_is_mounted_where_daemon_yaml_reads_it() -> None:
    http = yaml.safe_load((BASE / "daemon.yaml").read_text())["http"]
    objects = rendered(BASE)
    secret = one(objects, "Secret")
    assert secret["metadata"]["namespace"] == "autoscaler"
    assert set(secret["data"]) == {"token"}
    source = config_volume(one(objects, "Deployment"))["secret"]
    assert source["name"] == secret["metadata"]["name"]
    # Beside daemon.yaml in /etc/autoscaler, as in deploy/base: the relative path holds.
    assert source["items"] == [{"key": "token", "path": http["auth_token_file"], "mode": 0o440}]
    assert (BASE / http["auth_token_file"]).is_file()
    mount = next(m for m in container(objects)["volumeMounts"] if m["name"] == "config")
    assert mount == {"name": "config", "mountPath": "/etc/autoscaler", "readOnly": True}


def test_an_overlay_replaces_the_placeholder_token_as_the_readme_shows(tmp_path: Path) -> None:
    token = "0" * 64
    (tmp_path / "events-token").write_text(token, encoding="utf-8")
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(BASE, tmp_path)],
                "secretGenerator": [
                    {
                        "name": "autoscaler-events-token",
                        "namespace": "autoscaler",
                        "behavior": "replace",
                        "files": ["token=events-token"],
                        "options": {"disableNameSuffixHash": True},
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    objects = rendered(tmp_path)
    secret = one(objects, "Secret")
    assert base64.b64decode(secret["data"]["token"]).decode() == token
    # Still the name the Deployment mounts.
    assert config_volume(one(objects, "Deployment"))["secret"]["name"] == "autoscaler-events-token"


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


def test_the_base_stores_the_token_secret_and_the_network_policy(
    installed: dict[str, str],
) -> None:
    def stored(kind: str, name: str) -> dict[str, Any]:
        out = kubectl(installed, "get", kind, name, "-n", "autoscaler", "-o", "yaml").stdout
        return dict(yaml.safe_load(out))

    secret = stored("secret", "autoscaler-events-token")
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert token == (BASE / "secrets" / "events-token").read_text(encoding="utf-8")
    policy = stored("networkpolicy", "autoscaler")["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "autoscaler"}}
    assert sorted(port["port"] for rule in policy["ingress"] for port in rule["ports"]) == [
        "http",
        "metrics",
    ]

    # The pods mount it, read-only, with the ConfigMap (the server kept the projected volume).
    async def pod_volumes() -> list[client.V1Volume]:
        async with admin_client(installed) as api:
            pods = await list_pods(api, "autoscaler", "app.kubernetes.io/name=autoscaler")
            return list(pods[0].spec.volumes)

    config = next(v for v in asyncio.run(pod_volumes()) if v.name == "config")
    names = {
        source.secret.name if source.secret else source.config_map.name
        for source in config.projected.sources
    }
    assert names == {"autoscaler-events-token", "autoscaler-config"}


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
