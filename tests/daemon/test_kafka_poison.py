"""Poison messages through the real broker (issue 9, item 1): a message whose decoding or
applying raises is dead-lettered, counted and committed past, between valid events that are
all applied, and a restarted consumer never meets it again."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer
from kafka_helpers import committed_offsets, create_topic, engine, finished, produce, started

from autoscaler.adapters.kafka_source import KafkaSource
from autoscaler.core.events import Event, Rejected
from autoscaler.daemon.engine import Engine
from autoscaler.daemon.metrics import DaemonMetrics
from autoscaler.daemon.ports import IngestResult

POLICY = (
    "defaults: {scale_down_delay_s: 0, policy: concurrency, "
    "parallelism: 1, target_utilization: 1, max_replicas: 20}\n"
    "deployments: [{match: prod/*}]\n"
)
BIG = 4 * 2**20  # the topics take messages up to this size (the broker's default is 1 MB)
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000  # ~6 KB: RecursionError in msgspec
DEEP_FIELD = (  # an event whose unknown field nests 1,000 arrays deep (2 KB)
    b'{"type":"signal","deployment":"prod/a","ts":1,"name":"x","value":1,"junk":'
    + b"[" * 1000
    + b"]" * 1000
    + b"}"
)
JUNK = b"[" + b"{}," * 933_000 + b"{}]"  # 2.8 MB of `[{}, {}, ...]`
MARKED = "prod/poison"


class BrittleEngine(Engine):
    """An engine (the only test double here; Kafka is real) that breaks half-way through
    any batch holding an event for ``MARKED``: what comes before it is applied, then it
    raises, as a bug in applying one odd event would."""

    async def ingest(self, items: Sequence[Event | Rejected], received: float) -> IngestResult:
        for index, item in enumerate(items):
            if not isinstance(item, Rejected) and item.deployment == MARKED:
                await super().ingest(items[:index], received)
                raise RuntimeError(f"cannot apply {item!r}")
        return await super().ingest(items, received)


def rejected(metrics: DaemonMetrics) -> dict[str, float]:
    return {
        sample.labels["reason"]: sample.value
        for family in metrics.rejected.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


def applied(metrics: DaemonMetrics) -> float:
    return float(metrics.events.labels("applied")._value.get())


async def until(condition: object, timeout_s: float, what: str, task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert not task.done(), f"the source stopped: {task.exception()!r}"
        if condition():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_poison_messages_are_dead_lettered_counted_and_committed_past(
    services: dict[str, str], tmp_path: Path
) -> None:
    bootstrap = services["KAFKA_BOOTSTRAP"]
    topic, group = f"poison-{uuid.uuid4().hex[:8]}", f"autoscaler-{uuid.uuid4().hex[:8]}"
    dead = f"{topic}-dead"
    policy = tmp_path / "p.yaml"
    policy.write_text(POLICY)
    poison_event = started(MARKED, "p0")
    messages = [
        started("prod/a", "a0"),
        (b"prod/a", DEEP_OBJECT),
        started("prod/a", "a1"),
        (b"prod/a", JUNK),
        poison_event,
        started("prod/a", "a2"),
        (b"prod/a", DEEP_FIELD),
        finished("prod/a", "a0"),
        finished("prod/a", "a1"),
        finished("prod/a", "a2"),
    ]

    async def scenario() -> list[tuple[bytes | None, dict[str, bytes]]]:
        big = {"max.message.bytes": str(BIG)}
        await create_topic(bootstrap, topic, configs=big)
        await create_topic(bootstrap, dead, configs=big)
        await produce(bootstrap, topic, messages, max_request_size=BIG)
        brittle = engine(policy, BrittleEngine)
        source = KafkaSource(brittle, bootstrap, [topic], group, dead_letter_topic=dead)
        stop = asyncio.Event()
        task = asyncio.create_task(source.run(stop))
        metrics = brittle.metrics
        try:
            await until(lambda: applied(metrics) == 6, 60, "the valid events", task)
            await until(lambda: sum(rejected(metrics).values()) == 4, 10, "the rejections", task)
            # Every valid event was applied (6 above, none twice: those applied again after
            # the engine broke are recognised as duplicates), the marked one never was.
            assert "prod/a" in brittle.actuator.replicas  # type: ignore[attr-defined]
            assert MARKED not in brittle.actuator.replicas  # type: ignore[attr-defined]
            counts = rejected(metrics)
            # The engine's failure is ours to catch whatever decodes the deep ones (a depth
            # limit in decoding, or a RecursionError caught here as poison).
            assert counts.get("poison", 0) >= 1, counts
            await until(
                lambda: metrics.dead_letters.labels("sent")._value.get() == 4,
                30,
                "the dead-letter copies",
                task,
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)
        assert await committed_offsets(bootstrap, topic, group) == {0: len(messages)}

        # A restart in the same group starts after them: nothing is read again.
        fresh = engine(policy, BrittleEngine)
        again = KafkaSource(fresh, bootstrap, [topic], group)
        stop = asyncio.Event()
        task = asyncio.create_task(again.run(stop))
        try:
            await until(lambda: bool(again.consumer.assignment()), 30, "an assignment", task)
            await asyncio.sleep(2)
            assert rejected(fresh.metrics) == {} and applied(fresh.metrics) == 0
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)

        reader = AIOKafkaConsumer(
            dead,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            fetch_max_bytes=2 * BIG,
            max_partition_fetch_bytes=2 * BIG,
        )
        await reader.start()
        try:
            got: list[tuple[bytes | None, dict[str, bytes]]] = []
            deadline = time.monotonic() + 30
            while len(got) < 4 and time.monotonic() < deadline:
                for batch in (await reader.getmany(timeout_ms=500)).values():
                    got += [(m.value, dict(m.headers)) for m in batch]
            return got
        finally:
            await reader.stop()

    copies = asyncio.run(scenario())
    by_source = {
        headers["autoscaler-source"].decode().rsplit("/", 1)[1]: (value, headers)
        for value, headers in copies
    }
    assert sorted(by_source, key=int) == ["1", "3", "4", "6"]
    value, headers = by_source["4"]
    assert value == poison_event[1]
    assert headers["autoscaler-reason"] == b"poison"
    assert headers["autoscaler-detail"].startswith(b"RuntimeError: cannot apply")
    assert by_source["3"][0] == JUNK  # the 2.8 MB message is copied whole
    assert json.loads(poison_event[1])["deployment"] == MARKED
