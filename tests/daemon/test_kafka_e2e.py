"""End to end through the real Kafka broker and Redis: events produced into a topic by someone
else, decisions following them, malformed messages counted, offsets committed after applying."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka_helpers import finished, produce, started

from autoscaler.daemon.config import DaemonConfig, HttpConfig, KafkaConfig
from autoscaler.daemon.run import Daemon

POLICY = (
    "defaults: {scale_down_delay_s: 0, policy: concurrency, "
    "parallelism: 1, target_utilization: 1, max_replicas: 20}\n"
    "deployments: [{match: prod/*}]\n"
)


async def committed_total(bootstrap: str, topic: str, group: str) -> int:
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await probe.start()
    try:
        partitions = probe.partitions_for_topic(topic) or set()
        if not partitions:
            await probe._client.force_metadata_update()
            partitions = probe.partitions_for_topic(topic) or set()
        total = 0
        for partition in partitions:
            offset = await probe.committed(TopicPartition(topic, partition))
            total += offset or 0
        return total
    finally:
        await probe.stop()


def test_events_from_kafka_drive_decisions_and_offsets_are_committed(
    services: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = services["KAFKA_BOOTSTRAP"]
    topic, group = f"events-{uuid.uuid4().hex[:8]}", f"autoscaler-{uuid.uuid4().hex[:8]}"
    (tmp_path / "p.yaml").write_text(POLICY)
    messages = [started("prod/a", f"a{i}") for i in range(6)]
    messages += [started("prod/b", f"b{i}") for i in range(3)]
    messages += [(b"prod/a", b"{not json")]
    finishes = [finished("prod/a", f"a{i}") for i in range(6)]
    finishes += [finished("prod/b", f"b{i}") for i in range(3)]
    config = DaemonConfig(
        policies=(tmp_path / "p.yaml",),
        http=HttpConfig(port=0),
        tick_s=0.1,
        kafka=KafkaConfig(bootstrap_servers=bootstrap, topics=(topic,), group_id=group),
        redis_url=services["REDIS_URL"],
        redis_namespace=f"test-{uuid.uuid4().hex}:",
    )

    async def scenario() -> None:
        await produce(bootstrap, topic, messages)
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and daemon.actuator.replicas != {
                "prod/a": 6,
                "prod/b": 3,
            }:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.1)
            assert daemon.actuator.replicas == {"prod/a": 6, "prod/b": 3}
            metrics = daemon.engine.metrics
            assert metrics.rejected.labels("invalid_json")._value.get() == 1
            assert metrics.events.labels("applied")._value.get() == 9
            # While a request runs, its partition's commit stays at its start (a successor
            # must re-read it); once every request has finished, everything is committed.
            await produce(bootstrap, topic, finishes)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and (
                metrics.events.labels("applied")._value.get() < 18
            ):
                await asyncio.sleep(0.1)
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, timeout=30)
        assert await committed_total(bootstrap, topic, group) == len(messages) + len(finishes)

    asyncio.run(scenario())


def test_malformed_messages_go_to_the_dead_letter_topic_with_their_origin(
    services: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = services["KAFKA_BOOTSTRAP"]
    topic, group = f"events-{uuid.uuid4().hex[:8]}", f"autoscaler-{uuid.uuid4().hex[:8]}"
    dead = f"{topic}-dead"
    (tmp_path / "p.yaml").write_text(POLICY)
    bad_json = (b"prod/a", b"{not json")
    bad_event = (b"prod/a", b'{"type":"request_started","deployment":"Bad Name","ts":1}')
    messages = [started("prod/a", "a0"), bad_json, started("prod/a", "a1"), bad_event]
    config = DaemonConfig(
        policies=(tmp_path / "p.yaml",),
        http=HttpConfig(port=0),
        tick_s=0.1,
        kafka=KafkaConfig(
            bootstrap_servers=bootstrap, topics=(topic,), group_id=group, dead_letter_topic=dead
        ),
    )

    async def scenario() -> list[tuple[bytes | None, bytes | None, dict[str, bytes]]]:
        await produce(bootstrap, topic, messages)
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and daemon.actuator.replicas.get("prod/a") != 2:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.1)
            # The good events around the bad ones were applied: the consumer never stopped.
            assert daemon.actuator.replicas == {"prod/a": 2}
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, timeout=30)
        assert daemon.engine.metrics.dead_letters.labels("sent")._value.get() == 2
        # a0 (offset 0) is still running: the partition's commit stays at its start.
        assert await committed_total(bootstrap, topic, group) == 0
        reader = AIOKafkaConsumer(
            dead, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
        )
        await reader.start()
        try:
            got = []
            deadline = time.monotonic() + 30
            while len(got) < 2 and time.monotonic() < deadline:
                for batch in (await reader.getmany(timeout_ms=500)).values():
                    got += [(m.key, m.value, dict(m.headers)) for m in batch]
            return got
        finally:
            await reader.stop()

    copies = asyncio.run(scenario())
    assert [(key, value) for key, value, _ in copies] == [bad_json, bad_event]
    reasons = [headers["autoscaler-reason"] for _, _, headers in copies]
    assert reasons == [b"invalid_json", b"invalid_event"]
    sources = [headers["autoscaler-source"].decode() for _, _, headers in copies]
    # topic/partition/offset: all four messages share one key, hence one partition.
    partition = sources[0].split("/")[1]
    assert sources == [f"{topic}/{partition}/1", f"{topic}/{partition}/3"]
    assert b"deployment" in copies[1][2]["autoscaler-detail"]


def test_a_topic_created_after_the_daemon_subscribed_is_consumed(
    services: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = services["KAFKA_BOOTSTRAP"]
    topic, group = f"late-{uuid.uuid4().hex[:8]}", f"autoscaler-{uuid.uuid4().hex[:8]}"
    (tmp_path / "p.yaml").write_text(POLICY)
    config = DaemonConfig(
        policies=(tmp_path / "p.yaml",),
        http=HttpConfig(port=0),
        tick_s=0.1,
        kafka=KafkaConfig(bootstrap_servers=bootstrap, topics=(topic,), group_id=group),
    )

    async def scenario() -> None:
        daemon = Daemon(config)
        task = asyncio.create_task(daemon.run())
        try:
            assert daemon.kafka is not None
            await asyncio.wait_for(daemon.kafka.started.wait(), timeout=30)
            await asyncio.sleep(1)  # subscribed to a topic that does not exist yet
            # The first producer creates it, as a service that starts after the daemon does.
            await produce(bootstrap, topic, [started("prod/late", f"l{i}") for i in range(4)])
            deadline = time.monotonic() + 30  # metadata is refreshed every 5 s
            while time.monotonic() < deadline and daemon.actuator.replicas.get("prod/late") != 4:
                assert not task.done(), task.exception()
                await asyncio.sleep(0.1)
            assert daemon.actuator.replicas == {"prod/late": 4}
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, timeout=30)

    asyncio.run(scenario())
