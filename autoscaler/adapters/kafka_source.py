"""Events from Kafka (aiokafka): a consumer group over the configured topics.

Messages are fetched in batches, decoded, applied, decided, and only then are their offsets
committed (at-least-once; a duplicate after a crash is recognised by the tracker and
harmless). The committed offset of a partition never passes the ``request_started`` of a
request still in flight: a restarted or new owner re-reads from there and so knows every
request still running, not only those that started after the last commit.

Messages are keyed by deployment, so each deployment lives on one partition and
partitions spread deployments over daemon replicas. When a rebalance takes partitions away,
their deployments are committed and forgotten here; the new owner loads their state from the
state store before deciding.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.partitioner import murmur2

from autoscaler.core.events import (
    Event,
    Rejected,
    RequestFinished,
    RequestStarted,
    decode_event,
)
from autoscaler.daemon.engine import Engine

log = structlog.get_logger("autoscaler.source.kafka")

CONSUMER_SETTINGS: dict[str, Any] = {
    # Offsets are committed by hand, after a batch has been applied and decided.
    "enable_auto_commit": False,
    # A new group starts from the oldest retained event rather than skipping the backlog.
    "auto_offset_reset": "earliest",
    # A topic created after the daemon subscribed (the first producer creates it) is noticed
    # at the next metadata refresh: every 5 s rather than aiokafka's default 5 min.
    "metadata_max_age_ms": 5000,
}
"""aiokafka consumer settings besides addresses, group and batch size (``bench`` reuses them
for its raw-consumer baseline)."""


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
        if self.source.on_assigned is not None:
            await self.source.on_assigned()


class KafkaSource:
    def __init__(
        self,
        engine: Engine,
        bootstrap_servers: str,
        topics: list[str],
        group_id: str,
        *,
        max_batch: int = 5000,
        dead_letter_topic: str | None = None,
    ) -> None:
        self.engine = engine
        self.topics = topics
        self.max_batch = max_batch
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            max_poll_records=max_batch,
            **CONSUMER_SETTINGS,
        )
        self._owned: dict[TopicPartition, set[str]] = defaultdict(set)
        self._processed: dict[TopicPartition, int] = {}
        self._next: dict[TopicPartition, int] = {}  # offset after the last applied message
        # Per partition, the offset of each request_started whose request may still be in
        # flight, oldest first (pruned from the front as requests finish or expire).
        self._open: dict[TopicPartition, OrderedDict[tuple[str, str], int]] = defaultdict(
            OrderedDict
        )
        """Next offset per partition whose events are all applied and decided, not yet
        committed."""
        self._commit: asyncio.Task[None] | None = None
        self.dead_letter_topic = dead_letter_topic
        self._dead_letter = (
            AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
            if dead_letter_topic
            else None
        )
        self._dead_lettered: list[asyncio.Future[Any]] = []
        self.started = asyncio.Event()
        self.on_assigned: Callable[[], Awaitable[None]] | None = None
        """Called after each rebalance has assigned this daemon its partitions."""

    def claim(self, deployment: str) -> bool:
        """Whether ``deployment``'s events come to this daemon: the partition its key hashes
        to (Kafka's default partitioner, which producers keying by deployment use) is
        assigned here, on one of the topics. A claimed deployment is handed off with its
        partition, like one an event named. Used for deployments no event has named yet:
        only their partition's owner may decide them, or a daemon that never sees their
        traffic would take them for idle."""
        key = deployment.encode()
        assigned = self.consumer.assignment()
        for topic in self.topics:
            partitions = self.consumer.partitions_for_topic(topic)
            if not partitions:
                continue
            ordered = sorted(partitions)
            tp = TopicPartition(topic, ordered[(murmur2(key) & 0x7FFFFFFF) % len(ordered)])
            if tp in assigned:
                self._owned[tp].add(deployment)
                return True
        return False

    def _safe_offset(self, tp: TopicPartition) -> int:
        """The offset to commit: the next one, or the oldest still-running request's start."""
        opened = self._open.get(tp)
        while opened:
            (deployment, request_id), offset = next(iter(opened.items()))
            if self.engine.in_flight(deployment, request_id):
                return offset
            opened.popitem(last=False)
        return self._next[tp]

    def _safe_offsets(self, partitions: set[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._safe_offset(tp) for tp in partitions if tp in self._next}

    async def hand_off(self, revoked: set[TopicPartition]) -> None:
        try:
            offsets = self._safe_offsets(revoked)
            if offsets:
                await self.consumer.commit(offsets)
        except Exception as exc:  # the group may already have moved on; the next owner re-reads
            log.warning("commit on revoke failed", error=str(exc))
        for tp in revoked:
            self._processed.pop(tp, None)
            self._next.pop(tp, None)
            self._open.pop(tp, None)
            for deployment in self._owned.pop(tp, set()):
                await self.engine.hand_off(deployment)
        log.info(
            "partitions revoked", partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in revoked)
        )

    async def _send_dead_letter(self, tp: TopicPartition, message: Any, item: Rejected) -> None:
        assert self._dead_letter is not None and self.dead_letter_topic is not None
        headers = [
            ("autoscaler-reason", item.reason.encode()),
            ("autoscaler-detail", item.detail[:1000].encode()),
            ("autoscaler-source", f"{tp.topic}/{tp.partition}/{message.offset}".encode()),
        ]
        try:
            # Enqueued here; delivery is awaited before the batch's offsets are committed.
            future = await self._dead_letter.send(
                self.dead_letter_topic, message.value, key=message.key, headers=headers
            )
        except Exception as exc:
            self._dead_letter_failed(exc)
            return
        self._dead_lettered.append(future)

    def _dead_letter_failed(self, exc: BaseException) -> None:
        # The message is still in the log with its offset; a dead-letter topic that is down
        # must not stop the consumer.
        self.engine.metrics.dead_letters.labels("failed").inc()
        log.error("dead-letter copy failed", topic=self.dead_letter_topic, error=str(exc))

    async def _flush_dead_letters(self) -> None:
        pending, self._dead_lettered = self._dead_lettered, []
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException):
                self._dead_letter_failed(result)
            else:
                self.engine.metrics.dead_letters.labels("sent").inc()

    async def run(self, stop: asyncio.Event) -> None:
        if self._dead_letter is not None:
            await self._dead_letter.start()
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=_Handoff(self))
        self.started.set()
        try:
            while not stop.is_set():
                batches = await self.consumer.getmany(timeout_ms=100, max_records=self.max_batch)
                if not batches:
                    if self._processed:  # left over while the previous commit was in flight
                        self._start_commit()
                    continue
                received = self.engine.clock()
                for tp, messages in batches.items():
                    items: list[Event | Rejected] = [
                        decode_event(message.value or b"") for message in messages
                    ]
                    owned = self._owned[tp]
                    opened = self._open[tp]
                    for message, item in zip(messages, items, strict=True):
                        if isinstance(item, Rejected):
                            log.warning(
                                "malformed event",
                                topic=tp.topic,
                                partition=tp.partition,
                                offset=message.offset,
                                reason=item.reason,
                                detail=item.detail,
                            )
                            if self._dead_letter is not None:
                                await self._send_dead_letter(tp, message, item)
                        else:
                            owned.add(item.deployment)
                            if isinstance(item, RequestStarted):
                                opened.setdefault(
                                    (item.deployment, item.request_id), message.offset
                                )
                            elif opened and isinstance(item, RequestFinished):
                                # Dropped at once, not when it reaches the front: behind one
                                # long request, finished ones would pile up for its lifetime.
                                opened.pop((item.deployment, item.request_id), None)
                    await self.engine.ingest(items, received)
                    next_offset = messages[-1].offset + 1
                    self._next[tp] = next_offset
                    highwater = self.consumer.highwater(tp)
                    if highwater is not None:
                        lag = max(0, highwater - next_offset)
                        self.engine.metrics.kafka_lag.labels(tp.topic, str(tp.partition)).set(lag)
                    self._processed[tp] = self._safe_offset(tp)
                await self.engine.decide_pending()
                if self._dead_lettered:
                    await self._flush_dead_letters()
                # Only now, with every event applied and decided, are the offsets committed.
                self._start_commit()
        finally:
            if self._commit is not None:
                try:
                    await self._commit
                except Exception as exc:
                    log.warning("commit failed", error=str(exc))
            try:
                offsets = self._safe_offsets(self.consumer.assignment())
                if offsets:
                    await self.consumer.commit(offsets)
            except Exception as exc:
                log.warning("final commit failed", error=str(exc))
            await self.consumer.stop()
            if self._dead_letter is not None:
                await self._flush_dead_letters()
                await self._dead_letter.stop()

    def _start_commit(self) -> None:
        """Commit the processed offsets without waiting for the broker's answer: its round trip
        (milliseconds; awaited, about a tenth of the time at full ingest speed in ``bench``)
        overlaps the next batch. Exactly the offsets of applied and decided events are
        committed, in order, one commit at a time; while one is in flight newer offsets wait
        for the next call. A commit that failed fails the source here, as an awaited one
        did."""
        if self._commit is not None:
            if not self._commit.done():
                return
            commit, self._commit = self._commit, None
            commit.result()
        # A partition revoked since its batch was processed is the rebalance's to commit.
        assigned = self.consumer.assignment()
        offsets = {tp: offset for tp, offset in self._processed.items() if tp in assigned}
        self._processed = {}
        if offsets:
            self._commit = asyncio.create_task(self.consumer.commit(offsets))
