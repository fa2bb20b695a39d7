"""The whole daemon against real servers: events produced into Kafka, state in Redis, and
real Deployments on a real API server whose pods KWOK makes Ready after a cold start."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
import yaml
from kafka_helpers import finished, produce, started
from kubernetes_asyncio import client as k8s

from autoscaler.adapters.kubernetes import KubernetesActuator
from autoscaler.daemon.config import DaemonConfig, HttpConfig, KafkaConfig, KubernetesConfig
from autoscaler.daemon.run import Daemon
from devtools.processes import free_port
from tests.kube_helpers import create_deployment, kube_requests, replicas_are, replicas_of

pytestmark = pytest.mark.timeout(240)

POLICY = """
defaults:
  scale_down_delay_s: 0
  policy: concurrency
  parallelism: 1
  target_utilization: 1
  min_replicas: 0
  max_replicas: 6
  window_s: 4
  panic_window_s: 2
  scale_to_zero_grace_s: 3
deployments:
  - match: [{ns}/llm, {ns}/idle, {ns}/floor, {ns}/paused, {ns}/busy]
"""


def daemon_config(
    services: dict[str, str], kube: dict[str, str], kube_namespace: str, tmp_path: Path
) -> tuple[DaemonConfig, str]:
    (tmp_path / "p.yaml").write_text(POLICY.format(ns=kube_namespace))
    topic = f"events-{uuid.uuid4().hex[:8]}"
    config = DaemonConfig(
        policies=(tmp_path / "p.yaml",),
        http=HttpConfig(port=0),
        tick_s=0.5,
        dry_run=False,
        kubernetes=KubernetesConfig(kubeconfig=kube["KUBECONFIG"], namespaces=(kube_namespace,)),
        kafka=KafkaConfig(
            bootstrap_servers=services["KAFKA_BOOTSTRAP"],
            topics=(topic,),
            group_id=f"autoscaler-{uuid.uuid4().hex[:8]}",
        ),
        redis_url=services["REDIS_URL"],
        redis_namespace=f"test-{uuid.uuid4().hex}:",
    )
    return config, topic


@contextlib.asynccontextmanager
async def running(config: DaemonConfig) -> AsyncIterator[Daemon]:
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run(), name="daemon")
    try:
        assert isinstance(daemon.actuator, KubernetesActuator)
        await asyncio.wait_for(daemon.actuator.synced.wait(), 30)
        yield daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)  # also raises what the daemon died of, if it did


async def until(
    check: Callable[[], object], what: str, daemon: Daemon, timeout_s: float = 60
) -> float:
    """Poll an async or plain check; the seconds it took."""
    started_at = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - started_at
        assert time.monotonic() - started_at < timeout_s, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_scale_up_on_a_burst_cold_start_down_to_zero_and_back(
    services: dict[str, str],
    kube: dict[str, str],
    kube_api: k8s.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    await create_deployment(kube_api, ns, "llm", replicas=1, ready_after_s=3)
    # No event ever names these two: the watch finds them and ticks decide them.
    await create_deployment(kube_api, ns, "idle", replicas=2)
    await create_deployment(
        kube_api, ns, "floor", replicas=1, annotations={"autoscaler.dev/min_replicas": "2"}
    )
    await create_deployment(
        kube_api, ns, "paused", replicas=3, annotations={"autoscaler.dev/paused": "true"}
    )
    # In the namespace but named by no policy rule: left alone.
    await create_deployment(kube_api, ns, "unmanaged", replicas=3)
    config, topic = daemon_config(services, kube, ns, tmp_path)
    bootstrap = services["KAFKA_BOOTSTRAP"]
    async with running(config) as daemon:
        actuator = daemon.actuator
        assert isinstance(actuator, KubernetesActuator)
        key = f"{ns}/llm"

        # A burst of five requests at once: five replicas, asked for through the scale
        # subresource, as soon as the events are consumed.
        await produce(bootstrap, topic, [started(key, f"r{i}") for i in range(5)])
        await until(lambda: replicas_are(kube_api, ns, "llm", 5), "scale-up to 5", daemon)
        # The new pods are loading (3 s): the daemon sees them as not ready yet ...
        observed = await actuator.observe(key)
        assert observed is not None and observed.current == 5 and observed.ready < 5
        # ... and then ready, through its watch, in the decision snapshot's numbers.
        await until(
            lambda: (
                daemon.engine.metrics.registry.get_sample_value(
                    "autoscaler_replicas", {"deployment": key, "kind": "ready"}
                )
                == 5
            ),
            "the daemon to see 5 ready replicas",
            daemon,
        )

        # The requests finish and no traffic follows: after the window and the grace period
        # the deployment goes to zero.
        await produce(bootstrap, topic, [finished(key, f"r{i}") for i in range(5)])
        await until(lambda: replicas_are(kube_api, ns, "llm", 0), "scale to zero", daemon)

        # The next request brings it back at once (0 -> 1 activation).
        await produce(bootstrap, topic, [started(key, "again")])
        waited = await until(
            lambda: replicas_are(kube_api, ns, "llm", 1), "0 -> 1 activation", daemon, 15
        )
        assert waited < 10

        await until(lambda: replicas_are(kube_api, ns, "idle", 0), "idle to zero", daemon)
        await until(lambda: replicas_are(kube_api, ns, "floor", 2), "annotated floor", daemon)
    assert await replicas_of(kube_api, ns, "paused") == 3
    assert await replicas_of(kube_api, ns, "unmanaged") == 3
    assert kube_requests(daemon.engine.metrics, "patch", "403") == 0


async def test_a_concurrent_writer_causes_conflicts_the_daemon_survives(
    services: dict[str, str],
    kube: dict[str, str],
    kube_api: k8s.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    await create_deployment(kube_api, ns, "busy", replicas=1)
    config, topic = daemon_config(services, kube, ns, tmp_path)
    stop_writer = asyncio.Event()
    writes = 0

    async def other_writer() -> None:
        # Something else (a GitOps controller, kubectl) keeps writing the Deployment: every
        # write moves its resourceVersion, so the daemon's guarded patches meet 409s.
        nonlocal writes
        apps = k8s.AppsV1Api(kube_api)
        while not stop_writer.is_set():
            await apps.patch_namespaced_deployment(
                "busy", ns, {"metadata": {"annotations": {"touch": str(writes)}}}
            )
            writes += 1

    async with running(config) as daemon:
        writer = asyncio.create_task(other_writer())
        try:
            await asyncio.sleep(0.3)
            key = f"{ns}/busy"
            await produce(
                services["KAFKA_BOOTSTRAP"], topic, [started(key, f"b{i}") for i in range(4)]
            )
            await until(lambda: replicas_are(kube_api, ns, "busy", 4), "scale-up to 4", daemon)
        finally:
            stop_writer.set()
            await writer
        assert kube_requests(daemon.engine.metrics, "patch", "409") >= 1
        assert kube_requests(daemon.engine.metrics, "patch", "200") >= 1
        assert writes > 10
    assert await replicas_of(kube_api, ns, "busy") == 4


async def test_an_unreachable_api_server_degrades_health_but_stops_nothing(
    kube: dict[str, str], tmp_path: Path
) -> None:
    # The real cluster's credentials, pointed at a port where nothing listens.
    kubeconfig = yaml.safe_load(Path(kube["KUBECONFIG"]).read_text())
    kubeconfig["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    broken = tmp_path / "broken.kubeconfig"
    broken.write_text(yaml.safe_dump(kubeconfig))
    (tmp_path / "p.yaml").write_text("deployments: [{match: models/*}]\n")
    config = DaemonConfig(
        policies=(tmp_path / "p.yaml",),
        http=HttpConfig(port=0),
        dry_run=False,
        kubernetes=KubernetesConfig(kubeconfig=str(broken), namespaces=("models",)),
    )
    daemon = Daemon(config)
    task = asyncio.create_task(daemon.run())
    try:
        await until(lambda: daemon.port is not None, "the HTTP port", daemon, 20)
        url = f"http://127.0.0.1:{daemon.port}"
        async with aiohttp.ClientSession() as http:

            async def degraded() -> bool:
                async with http.get(f"{url}/healthz") as response:
                    text = await response.text()
                    return response.status == 200 and "listing Deployments in models" in text

            await until(degraded, "/healthz to say the watch fails", daemon, 20)
            # Events are still taken; nothing is decided for a cluster it cannot see.
            event = {
                "type": "request_started",
                "deployment": "models/llm",
                "ts": time.time(),
                "request_id": "r1",
            }
            async with http.post(f"{url}/events", json=event) as response:
                answer = await response.json()
            assert answer["accepted"] == 1 and answer["decisions"] == []
        assert not task.done()
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 30)
    restarts = daemon.engine.metrics.registry.get_sample_value(
        "autoscaler_kube_watch_restarts_total", {"kind": "Deployment", "reason": "failed"}
    )
    assert restarts is not None and restarts >= 1
