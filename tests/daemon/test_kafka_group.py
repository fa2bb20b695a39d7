"""Two daemons in one consumer group: each deployment is decided by exactly one of them, and
when one stops the other takes its partitions over."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from autoscaler.daemon.config import DaemonConfig, HttpConfig, KafkaConfig
from autoscaler.daemon.run import Daemon

POLICY = (
    "defaults: {scale_down_delay_s: 0, policy: concurrency, "
    "parallelism: 1, target_utilization: 1, max_replicas: 20}\n"
    "deployments: [{match: prod/*}]\n"
)
DEPLOYMENTS = [f"prod/model-{i}" for i in range(8)]


async def send_burst(bootstrap: str, topic: str, size: int, tag: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for name in DEPLOYMENTS:
            for i in range(size):
                event = {
                    "type": "request_started",
                    "deployment": name,
                    "ts": time.time(),
                    "request_id": f"{tag}-{i}",
                }
                await producer.send(topic, json.dumps(event).encode(), key=name.encode())
        await producer.flush()
    finally:
        await producer.stop()


async def until(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_each_deployment_has_one_owner_before_and_after_a_daemon_stops(
    services: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = services["KAFKA_BOOTSTRAP"]
    topic, group = f"group-{uuid.uuid4().hex[:8]}", f"autoscaler-{uuid.uuid4().hex[:8]}"
    (tmp_path / "p.yaml").write_text(POLICY)

    def config() -> DaemonConfig:
        return DaemonConfig(
            policies=(tmp_path / "p.yaml",),
            http=HttpConfig(port=0),
            tick_s=0.1,
            kafka=KafkaConfig(bootstrap_servers=bootstrap, topics=(topic,), group_id=group),
            redis_url=services["REDIS_URL"],
            redis_namespace=f"test-{uuid.uuid4().hex}:",
        )

    async def scenario() -> None:
        # One message creates the topic (4 partitions, the broker's default) before the
        # daemons subscribe; it is not a valid event and is counted as such.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        await producer.send_and_wait(topic, b'{"type":"queue_length"}', key=b"x")
        await producer.stop()
        a, b = Daemon(config()), Daemon(config())
        tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
        try:

            def split() -> bool:
                assert a.kafka and b.kafka
                return bool(a.kafka.consumer.assignment()) and bool(b.kafka.consumer.assignment())

            await until(split, 60, "both daemons to own partitions")
            await send_burst(bootstrap, topic, 3, "first")
            await until(
                lambda: set(a.actuator.replicas) | set(b.actuator.replicas) == set(DEPLOYMENTS),
                60,
                "every deployment decided",
            )
            assert not set(a.actuator.replicas) & set(b.actuator.replicas)
            assert a.actuator.replicas and b.actuator.replicas  # the work is really shared
            assert all(
                n == 3 for n in [*a.actuator.replicas.values(), *b.actuator.replicas.values()]
            )

            a.request_stop()
            await asyncio.wait_for(tasks[0], timeout=30)
            assert b.kafka is not None
            await until(
                lambda: len(b.kafka.consumer.assignment()) == 4,  # type: ignore[union-attr]
                60,
                "the survivor to own every partition",
            )
            await send_burst(bootstrap, topic, 5, "second")
            await until(
                lambda: (
                    set(b.actuator.replicas) == set(DEPLOYMENTS)
                    and all(n >= 5 for n in b.actuator.replicas.values())
                ),
                60,
                "the survivor to decide every deployment",
            )
        finally:
            a.request_stop()
            b.request_stop()
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)

    asyncio.run(scenario())
