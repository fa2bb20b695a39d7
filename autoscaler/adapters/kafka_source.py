"""Events from Kafka (aiokafka): a consumer group over the configured topics.

Messages are fetched in batches, decoded, applied, decided, and only then are their offsets
committed (at-least-once; a duplicate after a crash is recognised by the tracker and
harmless). Messages are keyed by deployment, so each deployment lives on one partition and
partitions spread deployments over daemon replicas. When a rebalance takes partitions away,
their deployments are committed and forgotten here; the new owner loads their state from the
state store before deciding.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from autoscaler.core.events import Event, Rejected, decode_event
from autoscaler.daemon.engine import Engine

log = structlog.get_logger("autoscaler.source.kafka")


class _Handoff(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, source: KafkaSource) -> None:
        self.source = source

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.source.hand_off(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions assigned",
            partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in assigned),
        )


class KafkaSource:
    def __init__(
        self,
        engine: Engine,
        bootstrap_servers: str,
        topics: list[str],
        group_id: str,
        *,
        max_batch: int = 5000,
    ) -> None:
        self.engine = engine
        self.topics = topics
        self.max_batch = max_batch
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_batch,
        )
        self._owned: dict[TopicPartition, set[str]] = defaultdict(set)
        self.started = asyncio.Event()

    async def hand_off(self, revoked: set[TopicPartition]) -> None:
        try:
            await self.consumer.commit()
        except Exception as exc:  # the group may already have moved on; the next owner re-reads
            log.warning("commit on revoke failed", error=str(exc))
        for tp in revoked:
            for deployment in self._owned.pop(tp, set()):
                self.engine.forget(deployment)
        log.info(
            "partitions revoked", partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in revoked)
        )

    async def run(self, stop: asyncio.Event) -> None:
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=_Handoff(self))
        self.started.set()
        try:
            while not stop.is_set():
                batches = await self.consumer.getmany(timeout_ms=100, max_records=self.max_batch)
                if not batches:
                    continue
                received = self.engine.clock()
                for tp, messages in batches.items():
                    items: list[Event | Rejected] = []
                    for message in messages:
                        item = decode_event(message.value or b"")
                        if isinstance(item, Rejected):
                            log.warning(
                                "malformed event",
                                topic=tp.topic,
                                partition=tp.partition,
                                offset=message.offset,
                                reason=item.reason,
                                detail=item.detail,
                            )
                        else:
                            self._owned[tp].add(item.deployment)
                        items.append(item)
                    await self.engine.ingest(items, received)
                    highwater = self.consumer.highwater(tp)
                    if highwater is not None:
                        lag = max(0, highwater - (messages[-1].offset + 1))
                        self.engine.metrics.kafka_lag.labels(tp.topic, str(tp.partition)).set(lag)
                await self.engine.decide_pending()
                # Only now, with every event applied and decided, are the offsets committed.
                await self.consumer.commit()
        finally:
            try:
                await self.consumer.commit()
            except Exception as exc:
                log.warning("final commit failed", error=str(exc))
            await self.consumer.stop()
