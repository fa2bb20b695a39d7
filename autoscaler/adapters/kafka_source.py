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

No single message can stop the source: one whose decoding or applying raises (a "poison"
message) is counted (``autoscaler_events_rejected_total{reason="poison"}``), copied to the
dead-letter topic if there is one, logged with its offset, and committed past like any other,
so a restart does not meet it again. Nor can the cluster: a broker out of reach, failing
fetches or commits are retried, counted (``autoscaler_kafka_errors_total{kind}``) and shown
in ``/healthz`` and ``autoscaler_kafka_up``, while the rest of the daemon keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import murmur2

from autoscaler.core.events import (
    Event,
    Rejected,
    RequestFinished,
    RequestStarted,
    decode_event,
)
from autoscaler.daemon.config import KafkaConfig
from autoscaler.daemon.ports import EventSink
from autoscaler.logs import Throttle

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

DEAD_LETTER_MAX_BYTES = 16 * 2**20
"""The dead-letter producer's own size limit: above aiokafka's 1 MiB default, so that a
message the source topic accepted is refused, if at all, by the dead-letter topic's
``max.message.bytes`` (and counted as a failed copy), not by the client."""

DETAIL_CHARS = 1000
"""Longest reason detail kept in a log line or dead-letter header."""

_ERROR_KINDS = {
    "aiokafka.conn": "connection",
    "aiokafka.consumer.fetcher": "fetch",
    "aiokafka.consumer.group_coordinator": "coordinator",
    "aiokafka.producer": "producer",
}


def error_kind(logger: str) -> str:
    """The kind an aiokafka logger's warnings count as: its own or its closest parent's."""
    if logger == "aiokafka":  # the client's own logger (connections, metadata)
        return "connection"
    name = logger
    while "." in name:
        if name in _ERROR_KINDS:
            return _ERROR_KINDS[name]
        name = name.rpartition(".")[0]
    return "other"


def security_settings(config: KafkaConfig) -> dict[str, Any]:
    """aiokafka's keyword arguments for the config's TLS and SASL settings, for the consumer
    and the dead-letter producer alike. The SASL password is read from its file here, at
    start (a rotated Secret takes a restart, as with most Kafka clients)."""
    settings: dict[str, Any] = {"security_protocol": config.security_protocol}
    if config.security_protocol in ("SSL", "SASL_SSL"):
        settings["ssl_context"] = create_ssl_context(
            cafile=config.ssl_cafile, certfile=config.ssl_certfile, keyfile=config.ssl_keyfile
        )
    if config.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        assert config.sasl_password_file is not None  # the config validated that
        # A Secret written from a file usually ends in a newline that is no part of it.
        password = config.sasl_password_file.read_text(encoding="utf-8").rstrip("\r\n")
        if not password:
            raise ValueError(f"kafka.sasl_password_file {config.sasl_password_file} is empty")
        settings |= {
            "sasl_mechanism": config.sasl_mechanism,
            "sasl_plain_username": config.sasl_username,
            "sasl_plain_password": password,
        }
    return settings


def _describe(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc)
    # aiokafka's errors name themselves already ("KafkaConnectionError: Unable to ...").
    described = text if text.startswith(name) else f"{name}: {text}" if text else name
    return described[:DETAIL_CHARS]


def _held(count: int | None) -> dict[str, int]:
    """The ``suppressed`` field of a throttled line, only when some were held back."""
    return {"suppressed": count} if count else {}


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


class _ClientErrors(logging.Handler):
    """Counts the errors aiokafka reports only in its log (it retries them by itself:
    reconnects, failed fetches, heartbeats) into ``autoscaler_kafka_errors_total``."""

    def __init__(self, count: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self.count = count

    def emit(self, record: logging.LogRecord) -> None:
        self.count(error_kind(record.name))


class KafkaSource:
    def __init__(
        self,
        sink: EventSink,
        bootstrap_servers: str,
        topics: list[str],
        group_id: str,
        *,
        max_batch: int = 5000,
        dead_letter_topic: str | None = None,
        security: Mapping[str, Any] | None = None,
        health_interval_s: float = 5.0,
    ) -> None:
        self.sink = sink
        self.topics = topics
        self.max_batch = max_batch
        self.bootstrap_servers = bootstrap_servers
        self.health_interval_s = health_interval_s
        security = dict(security or {})
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=group_id,
            max_poll_records=max_batch,
            **CONSUMER_SETTINGS,
            **security,
        )
        self._owned: dict[TopicPartition, set[str]] = defaultdict(set)
        self._processed: dict[TopicPartition, int] = {}
        """Next offset per partition whose events are all applied and decided, not yet
        committed."""
        self._next: dict[TopicPartition, int] = {}  # offset after the last applied message
        # Per partition, the offset of each request_started whose request may still be in
        # flight, oldest first (pruned from the front as requests finish or expire).
        self._open: dict[TopicPartition, OrderedDict[tuple[str, str], int]] = defaultdict(
            OrderedDict
        )
        self._commit: asyncio.Task[None] | None = None
        self._committing: dict[TopicPartition, int] = {}  # what the commit in flight commits
        self._commit_not_before = 0.0  # after a failed commit: the next waits a little
        self.dead_letter_topic = dead_letter_topic
        self._dead_letter = (
            AIOKafkaProducer(
                bootstrap_servers=bootstrap_servers,
                acks="all",
                max_request_size=DEAD_LETTER_MAX_BYTES,
                **security,
            )
            if dead_letter_topic
            else None
        )
        self._dead_lettered: list[asyncio.Future[Any]] = []
        self.started = asyncio.Event()
        self.on_assigned: Callable[[], Awaitable[None]] | None = None
        """Called after each rebalance has assigned this daemon its partitions."""
        self._failing: dict[str, tuple[str, float]] = {}
        """What is wrong now, by kind: (cause, when it was last seen, monotonic)."""
        self._throttle = Throttle()
        self.up = False
        """Whether the cluster answered the last connection attempt or health probe."""
        metrics = sink.metrics
        with contextlib.suppress(ValueError):  # another source in this process registered it
            metrics.registry.register(metrics.kafka_up)
        metrics.kafka_up.set(0)

    @classmethod
    def from_config(cls, sink: EventSink, config: KafkaConfig) -> KafkaSource:
        return cls(
            sink,
            config.bootstrap_servers,
            list(config.topics),
            config.group_id,
            max_batch=config.max_batch,
            dead_letter_topic=config.dead_letter_topic,
            security=security_settings(config),
            health_interval_s=config.health_interval_s,
        )

    # -- health ----------------------------------------------------------------------------

    FAILURE_TTL_S = 60.0
    """A failed fetch or commit stays in /healthz this long unless one succeeds since."""

    def problems(self) -> list[str]:
        """What is wrong with the Kafka side, for /healthz."""
        now = time.monotonic()
        for kind, (_, seen) in list(self._failing.items()):
            if kind != "connection" and now - seen > self.FAILURE_TTL_S:
                del self._failing[kind]
        return [f"Kafka: {cause}" for cause, _ in self._failing.values()]

    def _count_error(self, kind: str) -> None:
        self.sink.metrics.kafka_errors.labels(kind).inc()

    def _fail(self, kind: str, cause: str) -> None:
        self._count_error(kind)
        self._failing[kind] = (cause, time.monotonic())
        if (held := self._throttle.allow(("failure", kind))) is not None:
            log.warning("kafka degraded", kind=kind, cause=cause, **_held(held))

    def _recover(self, kind: str) -> None:
        if self._failing.pop(kind, None) is not None:
            log.info("kafka recovered", kind=kind)

    def _set_up(self, up: bool) -> None:
        self.up = up
        self.sink.metrics.kafka_up.set(1 if up else 0)
        if not up:
            # No lag read now is true (the high-water marks are old, and "0" would look
            # healthy): no series until the cluster answers again.
            self.sink.metrics.kafka_lag.clear()

    async def _probe(self) -> None:
        """One metadata round trip: the consumer retries a lost broker silently forever,
        so ask the cluster directly whether anyone answers."""
        try:
            async with asyncio.timeout(max(1.0, min(self.health_interval_s, 10.0))):
                await self.consumer.topics()
        except (KafkaError, OSError, TimeoutError) as exc:
            self._set_up(False)
            self._fail(
                "connection", f"brokers {self.bootstrap_servers} unreachable: {_describe(exc)}"
            )
            return
        self._recover("connection")
        self._set_up(True)
        for tp in self.consumer.assignment():
            self._record_lag(tp)
        for owned in self._owned.values():
            # Deployments the sink evicted as idle are no longer this source's to hand off.
            owned.difference_update([d for d in owned if not self.sink.tracks(d)])

    async def _watch_health(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.health_interval_s)
            if not stop.is_set():
                await self._probe()

    def _record_lag(self, tp: TopicPartition) -> None:
        highwater = self.consumer.highwater(tp)
        position = self._next.get(tp)
        if highwater is not None and position is not None and self.up:
            lag = max(0, highwater - position)
            self.sink.metrics.kafka_lag.labels(tp.topic, str(tp.partition)).set(lag)

    # -- partitions ------------------------------------------------------------------------

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
            if self.sink.in_flight(deployment, request_id):
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
            self._count_error("commit")
            log.warning("commit on revoke failed", error=str(exc))
        for tp in revoked:
            with contextlib.suppress(KeyError):  # its lag is the new owner's to report
                self.sink.metrics.kafka_lag.remove(tp.topic, str(tp.partition))
            self._processed.pop(tp, None)
            self._next.pop(tp, None)
            self._open.pop(tp, None)
            for deployment in self._owned.pop(tp, set()):
                await self.sink.hand_off(deployment)
        log.info(
            "partitions revoked", partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in revoked)
        )

    # -- dead letters ----------------------------------------------------------------------

    async def _send_dead_letter(
        self, tp: TopicPartition, message: Any, reason: str, detail: str
    ) -> None:
        assert self._dead_letter is not None and self.dead_letter_topic is not None
        headers = [
            ("autoscaler-reason", reason.encode()),
            ("autoscaler-detail", detail[:DETAIL_CHARS].encode(errors="replace")),
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
        self.sink.metrics.dead_letters.labels("failed").inc()
        if (held := self._throttle.allow("dead-letter failed")) is not None:
            log.error(
                "dead-letter copy failed",
                topic=self.dead_letter_topic,
                error=_describe(exc),
                **_held(held),
            )

    async def _flush_dead_letters(self) -> None:
        pending, self._dead_lettered = self._dead_lettered, []
        for result in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(result, BaseException):
                self._dead_letter_failed(result)
            else:
                self.sink.metrics.dead_letters.labels("sent").inc()

    # -- messages --------------------------------------------------------------------------

    async def _malformed(self, tp: TopicPartition, message: Any, item: Rejected) -> None:
        if (held := self._throttle.allow("malformed")) is not None:
            log.warning(
                "malformed event",
                topic=tp.topic,
                partition=tp.partition,
                offset=message.offset,
                reason=item.reason,
                detail=item.detail[:DETAIL_CHARS],
                **_held(held),
            )
        if self._dead_letter is not None:
            await self._send_dead_letter(tp, message, item.reason, item.detail)

    async def _poison(self, tp: TopicPartition, message: Any, exc: Exception) -> None:
        """A message that made decoding or applying raise: skipped for good (its offset is
        committed past with the rest), so that it cannot stop the source, or every restart
        of it."""
        detail = _describe(exc)
        self.sink.metrics.rejected.labels("poison").inc()
        if (held := self._throttle.allow("poison")) is not None:
            log.error(
                "poison message skipped",
                topic=tp.topic,
                partition=tp.partition,
                offset=message.offset,
                value_bytes=len(message.value or b""),
                error=detail,
                **_held(held),
            )
        if self._dead_letter is not None:
            await self._send_dead_letter(tp, message, "poison", detail)

    def _note(self, tp: TopicPartition, applied: Sequence[tuple[Any, Event]]) -> None:
        """Bookkeeping for applied events: whose partition it is, requests in flight. Only
        for deployments the sink tracks: made-up names it refused (unmanaged, over its
        limit, skewed) must not pile up here instead."""
        owned = self._owned[tp]
        opened = self._open[tp]
        tracked: dict[str, bool] = {}  # per deployment of this poll, asked once
        in_flight = self.sink.in_flight
        for message, item in applied:
            name = item.deployment
            known = tracked.get(name)
            if known is None:
                known = tracked[name] = self.sink.tracks(name)
                if known:
                    owned.add(name)
            if not known:
                continue
            if type(item) is RequestStarted:
                if in_flight(name, item.request_id):
                    opened.setdefault((name, item.request_id), message.offset)
            elif opened and type(item) is RequestFinished:
                # Dropped at once, not when it reaches the front: behind one long request,
                # finished ones would pile up for its lifetime.
                opened.pop((name, item.request_id), None)

    async def _apply(self, tp: TopicPartition, messages: Sequence[Any], received: float) -> None:
        rejected: list[Rejected] = []
        events: list[tuple[Any, Event]] = []
        max_depth = self.sink.limits.max_json_depth
        for message in messages:
            try:
                item = decode_event(message.value or b"", max_depth=max_depth)
            except Exception as exc:  # RecursionError, MemoryError: the message, not us
                await self._poison(tp, message, exc)
                continue
            if isinstance(item, Rejected):
                rejected.append(item)
                await self._malformed(tp, message, item)
            else:
                events.append((message, item))
        if rejected:
            # Counted on their own: order does not matter for them, and the events' fallback
            # below must not count them twice.
            await self.sink.ingest(rejected, received)
        try:
            await self.sink.ingest([item for _, item in events], received)
        except Exception:
            # One of them broke the sink: apply them one by one so that only that one is
            # lost. Those applied before it are applied again: request events are recognised
            # as duplicates, a repeated reading just says the same again.
            for message, item in events:
                try:
                    await self.sink.ingest([item], received)
                except Exception as exc:
                    await self._poison(tp, message, exc)
                else:
                    self._note(tp, ((message, item),))
        else:
            self._note(tp, events)
        self._next[tp] = messages[-1].offset + 1
        self._record_lag(tp)
        self._processed[tp] = self._safe_offset(tp)

    async def _decide(self) -> None:
        try:
            await self.sink.decide_pending()
        except Exception as exc:
            # The events are applied and their offsets may be committed: the failed decision
            # is made again on the next tick, re-reading them would not change it.
            self._count_error("decide")
            if (held := self._throttle.allow("decide")) is not None:
                log.error("decision after a batch failed", error=_describe(exc), **_held(held))

    # -- the loop --------------------------------------------------------------------------

    async def _start(self, stop: asyncio.Event) -> bool:
        """Connect, retrying while the cluster is out of reach (the daemon stays up and says
        so); False if stopped first."""
        delay_s = 0.5
        producer_started = self._dead_letter is None
        while not stop.is_set():
            try:
                if not producer_started:
                    assert self._dead_letter is not None
                    await self._dead_letter.start()
                    producer_started = True
                await self.consumer.start()
            except (KafkaError, OSError) as exc:
                self._set_up(False)
                self._fail(
                    "connection",
                    f"cannot connect to {self.bootstrap_servers}: {_describe(exc)}",
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay_s)
                delay_s = min(delay_s * 2, 10.0)
                continue
            self._recover("connection")
            self._set_up(True)
            return True
        # Stopped before the cluster answered: close what was opened (connections of
        # failed attempts included).
        with contextlib.suppress(Exception):
            await self.consumer.stop()
        if self._dead_letter is not None:
            with contextlib.suppress(Exception):
                await self._dead_letter.stop()
        return False

    async def run(self, stop: asyncio.Event) -> None:
        errors = _ClientErrors(self._count_error)
        client_log = logging.getLogger("aiokafka")
        client_log.addHandler(errors)
        try:
            if not await self._start(stop):
                return
            self.consumer.subscribe(self.topics, listener=_Handoff(self))
            self.started.set()
            health = asyncio.create_task(self._watch_health(stop), name="kafka-health")
            try:
                await self._consume(stop)
            finally:
                health.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await health
                await self._finish()
        finally:
            client_log.removeHandler(errors)

    async def _consume(self, stop: asyncio.Event) -> None:
        fetch_delay_s = 0.1
        while not stop.is_set():
            try:
                batches = await self.consumer.getmany(timeout_ms=100, max_records=self.max_batch)
            except KafkaError as exc:
                self._fail("fetch", f"fetch failed: {_describe(exc)}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=fetch_delay_s)
                fetch_delay_s = min(fetch_delay_s * 2, 5.0)
                continue
            fetch_delay_s = 0.1
            if not batches:
                if self._processed:  # left over while the previous commit was in flight
                    self._start_commit()
                continue
            self._recover("fetch")
            received = self.sink.clock()
            for tp, messages in batches.items():
                await self._apply(tp, messages, received)
            await self._decide()
            if self._dead_lettered:
                await self._flush_dead_letters()
            # Only now, with every event applied and decided, are the offsets committed.
            self._start_commit()

    FINAL_COMMIT_TIMEOUT_S = 10.0
    """At a stop, how long to wait for the last commits (the broker may be away: then the
    next owner re-reads those events, harmlessly); 2 s when the last probe found no broker."""

    async def _finish(self) -> None:
        try:
            async with asyncio.timeout(self.FINAL_COMMIT_TIMEOUT_S if self.up else 2.0):
                if self._commit is not None:
                    with contextlib.suppress(Exception):
                        await self._commit
                offsets = self._safe_offsets(self.consumer.assignment())
                if offsets:
                    await self.consumer.commit(offsets)
        except Exception as exc:
            self._count_error("commit")
            log.warning("final commit failed", error=_describe(exc))
        await self.consumer.stop()
        if self._dead_letter is not None:
            await self._flush_dead_letters()
            await self._dead_letter.stop()

    def _start_commit(self) -> None:
        """Commit the processed offsets without waiting for the broker's answer: its round trip
        (milliseconds; awaited, about a tenth of the time at full ingest speed in ``bench``)
        overlaps the next batch. Exactly the offsets of applied and decided events are
        committed, in order, one commit at a time; while one is in flight newer offsets wait
        for the next call. A failed commit is counted, shown in /healthz and retried with
        the next one (commits are cumulative: a later offset covers an earlier one)."""
        if self._commit is not None:
            if not self._commit.done():
                return
            commit, self._commit = self._commit, None
            self._commit_done(commit)
        if time.monotonic() < self._commit_not_before:
            return
        # A partition revoked since its batch was processed is the rebalance's to commit.
        assigned = self.consumer.assignment()
        offsets = {tp: offset for tp, offset in self._processed.items() if tp in assigned}
        self._processed = {}
        if offsets:
            self._committing = offsets
            self._commit = asyncio.create_task(self.consumer.commit(offsets))

    def _commit_done(self, commit: asyncio.Task[None]) -> None:
        exc = commit.exception() if not commit.cancelled() else asyncio.CancelledError()
        if exc is None:
            self._recover("commit")
            return
        self._fail("commit", f"commit failed: {_describe(exc)}")
        self._commit_not_before = time.monotonic() + 1.0
        # Offsets processed since are newer and cover these; otherwise commit these again.
        assigned = self.consumer.assignment()
        for tp, offset in self._committing.items():
            if tp in assigned:
                self._processed.setdefault(tp, offset)
