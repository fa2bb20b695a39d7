"""Two daemons in one consumer group over one namespace of real Deployments: a workload that
no event has named yet is decided by exactly one of them, the one whose Kafka partition its
events would arrive on (otherwise a daemon that never sees its traffic would take it for
idle and scale it down)."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from kafka_helpers import produce, started
from kubernetes_asyncio import client as k8s

from autoscaler.daemon.config import DaemonConfig, HttpConfig, KafkaConfig, KubernetesConfig
from autoscaler.daemon.run import Daemon
from tests.kube_helpers import create_deployment, replicas_of

pytestmark = pytest.mark.timeout(240)

NAMES = [f"model-{i}" for i in range(8)]


async def test_each_watched_workload_is_claimed_by_its_partition_owner(
    services: dict[str, str],
    kube: dict[str, str],
    kube_api: k8s.ApiClient,
    kube_namespace: str,
    tmp_path: Path,
) -> None:
    ns = kube_namespace
    for name in NAMES:
        await create_deployment(kube_api, ns, name, replicas=2)
    (tmp_path / "p.yaml").write_text(
        "defaults: {scale_down_delay_s: 0, policy: concurrency, "
        "min_replicas: 0, parallelism: 1, target_utilization: 1, window_s: 2,"
        " panic_window_s: 1, scale_to_zero_grace_s: 1}\n"
        f"deployments: [{{match: '{ns}/*'}}]\n"
    )
    bootstrap = services["KAFKA_BOOTSTRAP"]
    topic, group = f"kgroup-{uuid.uuid4().hex[:8]}", f"autoscaler-{uuid.uuid4().hex[:8]}"
    # The topic exists (4 partitions, the broker's default) before the daemons subscribe.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, b"{}", key=b"x")
    await producer.stop()
    redis_namespace = f"test-{uuid.uuid4().hex}:"

    def config() -> DaemonConfig:
        return DaemonConfig(
            policies=(tmp_path / "p.yaml",),
            http=HttpConfig(port=0),
            tick_s=0.2,
            dry_run=False,
            kubernetes=KubernetesConfig(kubeconfig=kube["KUBECONFIG"], namespaces=(ns,)),
            kafka=KafkaConfig(bootstrap_servers=bootstrap, topics=(topic,), group_id=group),
            redis_url=services["REDIS_URL"],
            redis_namespace=redis_namespace,
        )

    a, b = Daemon(config()), Daemon(config())

    def decided(key: str) -> tuple[float, float]:
        counts = [
            d.engine.metrics.registry.get_sample_value(
                "autoscaler_decisions_total", {"deployment": key}
            )
            for d in (a, b)
        ]
        return (counts[0] or 0.0, counts[1] or 0.0)

    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    keys = {f"{ns}/{name}" for name in NAMES}
    try:
        deadline = time.monotonic() + 60
        while True:
            for task in tasks:
                assert not task.done(), task.exception()
            mine, theirs = set(a.engine.deployments), set(b.engine.deployments)
            if mine | theirs == keys and not mine & theirs and mine and theirs:
                break
            assert time.monotonic() < deadline, f"split never settled: {mine} / {theirs}"
            await asyncio.sleep(0.2)
        # (Before the second daemon joined, the first owned every partition and decided
        # everything: ownership moves with partitions. From here on it stays put.) A daemon
        # drops the metric series of what it handed off at its next tick: wait for that, or a
        # count read before it would later read as having gone down.
        deadline = time.monotonic() + 10
        while any(decided(key)[1 if key in mine else 0] for key in keys):
            assert time.monotonic() < deadline, "handed-off series never dropped"
            await asyncio.sleep(0.1)
        settled = {key: decided(key) for key in keys}
        # The producer's partitioner agrees: each deployment's events reach its claimer.
        await produce(bootstrap, topic, [started(key, "r1") for key in sorted(keys)])
        deadline = time.monotonic() + 30
        while True:
            got = [d.engine.metrics.events.labels("applied")._value.get() for d in (a, b)]
            if got == [len(mine), len(theirs)]:
                break
            assert time.monotonic() < deadline, f"applied {got}, expected {len(mine)}/{len(theirs)}"
            await asyncio.sleep(0.1)
        for key in keys:
            owner = a if key in mine else b
            assert owner.engine.deployments[key].tracker.current_load == 1
        # Each daemon acts on its own share: every deployment settles at the one replica its
        # one running request asks for (after warm-up), whoever decides it.
        deadline = time.monotonic() + 60
        while [await replicas_of(kube_api, ns, n) for n in NAMES] != [1] * len(NAMES):
            assert time.monotonic() < deadline, "deployments did not settle at 1 replica"
            await asyncio.sleep(0.2)
        for key in keys:
            now = decided(key)
            # Decided since the split by its claimer only, never by the other daemon.
            owner, other = (0, 1) if key in mine else (1, 0)
            assert now[owner] > settled[key][owner], (key, settled[key], now)
            assert now[other] == settled[key][other], (key, settled[key], now)
    finally:
        for daemon in (a, b):
            daemon.request_stop()
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 30)
